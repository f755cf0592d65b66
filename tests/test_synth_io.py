"""Writing synthetic recordings: ``write_aedat31`` / ``write_labels_csv`` against independent
decoders, ``write_recording`` read back through the readers, and the ``synth`` CLI."""

from __future__ import annotations

import argparse
from pathlib import Path

import aedat31_writer as w
import numpy as np
import pytest

from dvsapp.errors import ConfigError, EventFileError
from dvsapp.events.detect import open_reader
from dvsapp.events.dvsgesture import labels_path_for, parse_labels_csv
from dvsapp.events.readers.aedat31 import Aedat31Reader
from dvsapp.events.types import DVS_GESTURE_CLASSES, EVENT_DTYPE, LabelSegment
from dvsapp.events.writers import write_aedat31, write_labels_csv
from dvsapp.synth import cli
from dvsapp.synth.generate import synth_recording, write_recording

START = "2017-03-30 09:41:35 (TZ+0200)"


def random_events(n: int, seed: int, t0: int) -> np.ndarray:
    ev = w.random_events(n, seed, t0=t0)
    out = np.empty(n, EVENT_DTYPE)
    for name in ("x", "y", "t", "p"):
        out[name] = ev[name]
    return out


def overflowing_events() -> np.ndarray:
    """Events spanning the 2^31 and 2^32 us tsOverflow boundaries (and a timestamp of 0)."""
    parts = [
        random_events(500, 1, 0),
        random_events(900, 2, (1 << 31) - 900),
        random_events(300, 3, (1 << 32) - 100),
    ]
    return np.concatenate(parts)


# -- write_aedat31 ----------------------------------------------------------------------------
def test_aedat31_bytes_equal_the_independent_libcaer_spec_writer(tmp_path: Path) -> None:
    events = overflowing_events()
    ours = write_aedat31(tmp_path / "ours.aedat", events, packet_events=256, start_time=START)
    assert ours == tmp_path / "ours.aedat"
    ref = w.write_file(
        tmp_path / "ref.aedat", w.polarity_packets(events, 256), w.header(start_time=START)
    )
    assert ours.read_bytes() == ref.read_bytes()
    head = ours.read_bytes()[:200].split(b"#!END-HEADER\r\n")[0].decode()
    assert head.splitlines()[:3] == ["#!AER-DAT3.1", "#Format: RAW", "#Source 1: DVS128"]


def test_aedat31_round_trips_through_our_reader_with_overflowing_times(tmp_path: Path) -> None:
    events = overflowing_events()
    path = write_aedat31(tmp_path / "r.aedat", events, (128, 128), packet_events=333)
    reader = open_reader(path)
    assert isinstance(reader, Aedat31Reader)
    assert reader.sensor_size == (128, 128, 2)
    back = reader.read_all()
    assert back.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(back, events)
    assert back["t"].max() > 1 << 32
    assert reader.metadata["start_time"]  # the current time when none is given


def test_aedat31_matches_spikingjelly_load_aedat_v3(tmp_path: Path) -> None:
    load_aedat_v3 = w.spikingjelly_load_aedat_v3()
    events = overflowing_events()
    path = write_aedat31(tmp_path / "sj.aedat", events, packet_events=1000)
    theirs = load_aedat_v3(str(path))
    for name in ("x", "y", "t"):
        np.testing.assert_array_equal(np.asarray(theirs[name], np.int64), events[name])
    np.testing.assert_array_equal(np.asarray(theirs["p"]).astype(bool), events["p"])


def test_aedat31_of_no_events_is_a_header_only_file(tmp_path: Path) -> None:
    path = write_aedat31(tmp_path / "empty.aedat", np.zeros(0, EVENT_DTYPE), start_time=START)
    assert path.read_bytes() == w.header(start_time=START)
    assert len(open_reader(path).read_all()) == 0


def bad(field: str, value: int) -> np.ndarray:
    ev = random_events(50, 4, 10)
    ev[field][20] = value
    return ev


@pytest.mark.parametrize(
    ("events", "kwargs", "message"),
    [
        (bad("t", 5), {}, "backwards"),
        (bad("x", 128), {}, r"outside 128x128"),
        (bad("y", -1), {}, r"outside 128x128"),
        (random_events(5, 4, 10), {"sensor_size": (64, 64)}, "outside 64x64"),
        (random_events(5, 4, -20), {}, "below 0"),
        (random_events(5, 4, 1 << 62), {}, "2\\^62"),
        (np.zeros(5), {}, "not an event array"),
        (random_events(5, 4, 10), {"packet_events": 0}, "packet_events"),
        (random_events(5, 4, 10), {"source": "DVS\r\n128"}, "source"),
        (random_events(5, 4, 10), {"sensor_size": (1 << 16, 128)}, "15 bits|cannot write a"),
    ],
)
def test_aedat31_bad_input_is_a_one_line_error_and_leaves_no_file(
    tmp_path: Path, events: np.ndarray, kwargs: dict, message: str
) -> None:
    out = tmp_path / "bad.aedat"
    with pytest.raises(EventFileError, match=message) as info:
        write_aedat31(out, events, **kwargs)
    assert "\n" not in str(info.value) and str(out) in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_aedat31_into_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(EventFileError, match="folder does not exist"):
        write_aedat31(tmp_path / "nope" / "x.aedat", random_events(5, 1, 0))


# -- write_labels_csv -------------------------------------------------------------------------
def test_labels_csv_round_trips_through_the_dataset_parser(tmp_path: Path) -> None:
    segments = [
        LabelSegment(0, DVS_GESTURE_CLASSES[0], 100, 2_000_000),
        LabelSegment(10, DVS_GESTURE_CLASSES[10], 2_500_000, 4_000_000),
        LabelSegment(3, DVS_GESTURE_CLASSES[3], 4_000_000, 1 << 33),
    ]
    path = write_labels_csv(tmp_path / "u_labels.csv", segments)
    assert path.read_text().splitlines()[:2] == [
        "class,startTime_usec,endTime_usec",
        "1,100,2000000",
    ]
    assert parse_labels_csv(path) == segments


@pytest.mark.parametrize(
    "segment",
    [LabelSegment(11, "x", 0, 10), LabelSegment(0, "x", 10, 10), LabelSegment(0, "x", -1, 5)],
)
def test_labels_csv_refuses_bad_segments(tmp_path: Path, segment: LabelSegment) -> None:
    with pytest.raises(EventFileError, match="segment 0"):
        write_labels_csv(tmp_path / "l.csv", [segment])
    assert list(tmp_path.iterdir()) == []


# -- write_recording ----------------------------------------------------------------------------
KW = {"classes": [1, 5, 0], "gesture_s": 0.3, "gap_s": 0.1}


def test_write_recording_reads_back_equal_in_both_formats(tmp_path: Path) -> None:
    paths = write_recording(tmp_path / "new", "rec", 4, **KW)
    out = tmp_path / "new"
    assert paths == [out / "rec.aedat", out / "rec_labels.csv", out / "rec.aedat4"]
    events, labels = synth_recording(4, **KW)
    r31 = open_reader(paths[0])
    assert r31.format_name == "aedat3.1" and r31.sensor_size == (128, 128, 2)
    np.testing.assert_array_equal(r31.read_all(), events)
    assert r31.labels == labels
    assert parse_labels_csv(labels_path_for(paths[0])) == labels
    assert labels_path_for(paths[2]) == paths[1]
    r4 = open_reader(paths[2])
    assert r4.format_name == "aedat4" and tuple(r4.sensor_size) == (128, 128, 2)
    np.testing.assert_array_equal(r4.read_all(), r31.read_all())


def test_write_recording_is_byte_identical_for_identical_arguments(tmp_path: Path) -> None:
    a = write_recording(tmp_path / "a", "rec", 9, **KW)
    b = write_recording(tmp_path / "b", "rec", 9, **KW)
    for pa, pb in zip(a, b, strict=True):
        assert pa.read_bytes() == pb.read_bytes(), pa.name
    c = write_recording(tmp_path / "c", "rec", 10, formats=("aedat31",), **KW)
    assert [p.name for p in c] == ["rec.aedat", "rec_labels.csv"]
    assert c[0].read_bytes() != a[0].read_bytes()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"formats": ("aedat5",)}, "formats"),
        ({"formats": ()}, "formats"),
        ({"name": "a/b"}, "plain file name"),
        ({"name": ""}, "plain file name"),
    ],
)
def test_write_recording_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    args = {"name": "rec", **kwargs}
    name = args.pop("name")
    with pytest.raises(ConfigError, match=message):
        write_recording(tmp_path, name, 0, **args, **KW)
    assert list(tmp_path.iterdir()) == []


# -- CLI ------------------------------------------------------------------------------------------
def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="dvsapp")
    cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["synth", *argv])


def test_cli_writes_the_files_and_says_which(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "synth"
    args = parse(
        [str(out), "--files", "2", "--seed", "5", "--gesture-s", "0.2", "--gap-s", "0.05",
         "--classes", "hand_clapping, 3,air_drums", "--format", "aedat31"]
    )  # fmt: skip
    assert args.func is cli.run
    assert args.func(args) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [
        "synth_seed0005.aedat",
        "synth_seed0005_labels.csv",
        "synth_seed0006.aedat",
        "synth_seed0006_labels.csv",
    ]
    printed = capsys.readouterr().out
    for name in names:
        assert str(out / name) in printed
    assert "wrote 4 files" in printed
    labels = parse_labels_csv(out / "synth_seed0006_labels.csv")
    assert [s.label for s in labels] == [0, 3, 8]
    assert (labels[0].t_start_us, labels[0].t_end_us) == (50_000, 250_000)
    events, _ = synth_recording(6, classes=[0, 3, 8], gesture_s=0.2, gap_s=0.05)
    np.testing.assert_array_equal(open_reader(out / "synth_seed0006.aedat").read_all(), events)


def test_cli_defaults() -> None:
    args = parse(["out"])
    assert (args.files, args.seed, args.gesture_s, args.gap_s, args.format, args.classes) == (
        1, 0, 2.0, 0.3, "both", None
    )  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--files", "0"], "--files"),
        (["--seed", "-1"], "--seed"),
        (["--classes", "jazz_hands"], "jazz_hands"),
        (["--classes", "11"], "index 11"),
        (["--classes", "0,,1"], "--classes"),
        (["--gesture-s", "0"], "gesture_s"),
        (["--gap-s", "-1"], "gap_s"),
    ],
)
def test_cli_bad_arguments_are_one_line_config_errors(
    tmp_path: Path, argv: list[str], message: str
) -> None:
    args = parse([str(tmp_path / "o"), *argv])
    with pytest.raises(ConfigError, match=message) as info:
        cli.run(args)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_cli_refuses_a_file_as_the_output_folder(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ConfigError, match="not a folder"):
        cli.run(parse([str(f)]))
