"""N-MNIST / N-Caltech101 ``.bin``: tonic's decode on the real samples, streaming, seek, labels
from the folder layout, detection by extension plus content, forced formats, bad files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dvsapp.cli import main
from dvsapp.errors import ConfigError, EventFileError, UnknownFormatError
from dvsapp.events.detect import detect_format, format_names, open_reader
from dvsapp.events.readers import Aedat2Reader, NpyReader
from dvsapp.events.readers.atis_bin import (
    NCALTECH101_CLASSES,
    SNIFF_MIN_EVENTS,
    NCaltech101Reader,
    NMnistReader,
    implausible,
    plausible,
)
from dvsapp.events.sources import ReplaySource
from dvsapp.events.span import last_timestamp
from dvsapp.events.types import LabelSegment

tonic_io = pytest.importorskip("tonic.io")


def encode(x, y, t, p) -> bytes:
    """Events in the datasets' 40-bit layout (x, y, p|t[22:16], t[15:8], t[7:0])."""
    x, y, t, p = (np.asarray(a, dtype=np.int64) for a in (x, y, t, p))
    raw = np.empty((len(t), 5), dtype=np.uint8)
    raw[:, 0], raw[:, 1] = x, y
    raw[:, 2] = (p.astype(bool).astype(np.int64) << 7) | ((t >> 16) & 0x7F)
    raw[:, 3], raw[:, 4] = (t >> 8) & 0xFF, t & 0xFF
    return raw.tobytes()


def synthetic(n: int = 3000, size: int = 34, seed: int = 0, t0: int = 500) -> dict:
    rng = np.random.default_rng(seed)
    t = t0 + np.cumsum(rng.integers(0, 90, n))  # ties included
    return {
        "x": rng.integers(0, size, n),
        "y": rng.integers(0, size, n),
        "t": t,
        "p": rng.random(n) < 0.5,
    }


def write(path: Path, events: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode(events["x"], events["y"], events["t"], events["p"]))
    return path


@pytest.fixture(scope="module")
def nmnist_files(samples_dir: Path) -> list[Path]:
    files = sorted((samples_dir / "nmnist").glob("T*/[0-9]/*.bin"))
    if not files:
        pytest.skip("no N-MNIST samples in ../shared/samples/nmnist")
    return files


@pytest.fixture(scope="module")
def caltech_file(samples_dir: Path) -> Path:
    path = samples_dir / "ncaltech101" / "Faces_easy" / "image_0001.bin"
    if not path.is_file():
        pytest.skip("no N-Caltech101 sample in ../shared/samples/ncaltech101")
    return path


def assert_equals_tonic(events: np.ndarray, path: Path) -> None:
    """tonic's decode in its datasets' dtype (all int64, p 0/1 with 1 = ON) against ours."""
    ref = tonic_io.read_mnist_file(str(path), dtype=np.dtype([(c, int) for c in "xytp"]))
    assert len(events) == len(ref)
    for f in ("x", "y", "t"):
        np.testing.assert_array_equal(events[f], ref[f])
    np.testing.assert_array_equal(events["p"], ref["p"] == 1)


# -- decode ---------------------------------------------------------------------------
def test_every_nmnist_sample_equals_tonic(nmnist_files: list[Path]) -> None:
    assert len(nmnist_files) >= 1000
    for path in nmnist_files:
        with open_reader(path) as reader:
            assert type(reader) is NMnistReader and reader.sensor_size == (34, 34, 2)
            assert_equals_tonic(reader.read_all(), path)


def test_ncaltech101_sample_equals_tonic(caltech_file: Path) -> None:
    with open_reader(caltech_file) as reader:
        assert type(reader) is NCaltech101Reader
        events = reader.read_all()
        assert len(events) == 67_445 == reader.max_events_hint()
        assert reader.sensor_size == (int(events["x"].max()) + 1, int(events["y"].max()) + 1, 2)
        assert reader.metadata["sensor_size_from"].startswith("bounding box of the events")
    assert_equals_tonic(events, caltech_file)


def test_synthetic_round_trip_through_tonic(tmp_path: Path) -> None:
    ev = synthetic(n=2000, size=200, seed=3)
    ev["t"][-1] = (1 << 23) - 1  # the largest timestamp the field holds
    path = write(tmp_path / "any" / "s.bin", ev)
    events = NCaltech101Reader(path).read_all()
    for f in ("x", "y", "t", "p"):
        np.testing.assert_array_equal(events[f], ev[f])
    assert_equals_tonic(events, path)


# -- streaming and seek ---------------------------------------------------------------
@pytest.mark.parametrize("max_events", [1, 7, 1000, 4999, 5000, 1 << 20])
def test_packets_split_anywhere_equal_one_read(tmp_path: Path, max_events: int) -> None:
    path = write(tmp_path / "Train" / "1" / "a.bin", synthetic(5000))
    reader = NMnistReader(path)
    full = reader.read_all()
    packets = list(reader.packets(max_events=max_events))
    assert max(len(p) for p in packets) <= max_events
    np.testing.assert_array_equal(np.concatenate(packets), full)


@pytest.mark.parametrize("which", ["synthetic", "ncaltech101"])
def test_seek(tmp_path: Path, request: pytest.FixtureRequest, which: str) -> None:
    if which == "synthetic":  # with ties
        path = write(tmp_path / "Train" / "2" / "b.bin", synthetic(5000, seed=5))
    else:
        path = request.getfixturevalue("caltech_file")
    with open_reader(path) as reader:
        full = reader.read_all()
        t = full["t"]
        starts = (0, int(t[0]), int(t[1234]), int(t[1234]) + 1, int(t[-1]), int(t[-1]) + 1)
        for start in starts:
            got = np.concatenate([*reader.packets(start_us=start, max_events=333), full[:0]])
            np.testing.assert_array_equal(got, full[t >= start])


# -- labels from the folder layout ----------------------------------------------------
def test_nmnist_labels(nmnist_files: list[Path], tmp_path: Path) -> None:
    real = nmnist_files[0]
    with open_reader(real) as reader:
        t = reader.read_all()["t"]
        digit = int(real.parent.name)
        assert reader.labels == [LabelSegment(digit, str(digit), int(t[0]), int(t[-1]) + 1)]
        assert reader.metadata["dataset"] == "N-MNIST"
    test7 = tmp_path / "Test" / "7" / "00001.bin"
    test7.parent.mkdir(parents=True)
    shutil.copy(real, test7)
    with open_reader(test7) as reader:
        assert reader.labels == [LabelSegment(7, "7", int(t[0]), int(t[-1]) + 1)]
    loose = tmp_path / "7" / "00001.bin"  # a digit folder, but not under Train/ or Test/
    loose.parent.mkdir()
    shutil.copy(real, loose)
    with open_reader(loose) as reader:
        assert type(reader) is NMnistReader and reader.labels == []
        assert reader.metadata["dataset"] == "N-MNIST-like"


def test_ncaltech101_labels(caltech_file: Path, tmp_path: Path) -> None:
    assert len(NCALTECH101_CLASSES) == 101 and "Faces" not in NCALTECH101_CLASSES
    assert list(NCALTECH101_CLASSES) == sorted(NCALTECH101_CLASSES)  # tonic's dirs.sort()
    with open_reader(caltech_file) as reader:
        t = reader.read_all()["t"]
        assert reader.labels == [LabelSegment(1, "Faces_easy", int(t[0]), int(t[-1]) + 1)]
    for folder, want in (("airplanes", 5), ("yin_yang", 100), ("my_stuff", None)):
        path = tmp_path / folder / "image_0001.bin"
        path.parent.mkdir()
        shutil.copy(caltech_file, path)
        with open_reader(path) as reader:
            assert type(reader) is NCaltech101Reader  # by the coordinates when unknown
            assert [s.label for s in reader.labels] == ([] if want is None else [want])


def test_category_folder_decides_even_for_small_coordinates(tmp_path: Path) -> None:
    path = write(tmp_path / "ant" / "image_0003.bin", synthetic(500, size=30))
    reader = open_reader(path)
    assert type(reader) is NCaltech101Reader and reader.sensor_size[:2] <= (30, 30)
    assert reader.labels[0].name == "ant"


# -- detection ------------------------------------------------------------------------
def test_detection_needs_plausible_content(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    for name, data in {
        "random.bin": rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes(),
        "zeros.bin": bytes(5000),
        "text.bin": b"HELLO WORLD, this is not a recording\n" * 50,
        "short.bin": encode(*synthetic(SNIFF_MIN_EVENTS - 1).values()),
    }.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(UnknownFormatError, match="unknown format") as info:
            detect_format(tmp_path / name)
        assert "not plausible N-MNIST/N-Caltech101 events (" in str(info.value)
        assert "--format nmnist or ncaltech101 reads it anyway" in str(info.value)
    ev = synthetic(200)
    assert plausible(encode(*ev.values()))
    late = dict(ev, t=ev["t"] + 2_000_000)
    assert "later than" in implausible(encode(*late.values()))
    back = dict(ev, t=ev["t"].copy())
    back["t"][120] = 0
    assert implausible(encode(*back.values())) == "the timestamp goes back at byte 600"
    tall = dict(ev, y=np.full(200, 240))
    assert "outside the 304x240 ATIS" in implausible(encode(*tall.values()))
    assert implausible(bytes(80)) == "the timestamps never advance"


def test_other_formats_named_bin_keep_their_format(tmp_path: Path, samples_dir: Path) -> None:
    if not (samples_dir / "MovingDarkBox.aedat").is_file():
        pytest.skip("no MovingDarkBox.aedat in ../shared/samples")
    aedat = tmp_path / "box.bin"
    shutil.copy(samples_dir / "MovingDarkBox.aedat", aedat)
    assert detect_format(aedat) is Aedat2Reader
    npy = tmp_path / "Train" / "3" / "rows.bin"
    npy.parent.mkdir(parents=True)
    with open(npy, "wb") as f:
        np.save(f, np.zeros((10, 4)))
    assert detect_format(npy) is NpyReader


def test_other_extension_needs_fmt(nmnist_files: list[Path], tmp_path: Path) -> None:
    path = tmp_path / "sample.dat"
    shutil.copy(nmnist_files[0], path)
    with pytest.raises(UnknownFormatError):
        detect_format(path)
    with open_reader(path, fmt="N-MNIST") as reader:
        assert type(reader) is NMnistReader
        assert_equals_tonic(reader.read_all(), nmnist_files[0])
    with pytest.raises(ConfigError) as info:
        open_reader(path, fmt="mnist")
    assert "\n" not in str(info.value)
    assert all(name in str(info.value) for name in format_names())
    assert {"nmnist", "ncaltech101", "aedat4", "aedat2.0", "npz"} <= set(format_names())


# -- bad files ------------------------------------------------------------------------
def test_truncated_final_event(nmnist_files: list[Path], tmp_path: Path) -> None:
    data = nmnist_files[0].read_bytes()
    n = len(data) // 5
    path = tmp_path / "Train" / "0" / "cut.bin"
    path.parent.mkdir(parents=True)
    path.write_bytes(data[:-3])
    with pytest.raises(EventFileError) as info:
        open_reader(path)  # detected, then refused with what is wrong
    msg = f"truncated final event: 2 trailing bytes after {n - 1} complete 5-byte events"
    assert info.value.message == msg and info.value.offset == (n - 1) * 5
    assert str(info.value).endswith(f"(at byte {(n - 1) * 5})")


@pytest.mark.parametrize("max_events", [100, 1000, 1 << 17])
def test_timestamps_going_backwards(tmp_path: Path, max_events: int) -> None:
    ev = synthetic(2000)
    ev["t"][1000:] -= ev["t"][1000] - ev["t"][999] + 5  # event 1000 steps 5 us back
    path = write(tmp_path / "Train" / "4" / "back.bin", ev)
    with pytest.raises(EventFileError, match="timestamps go backwards") as info:
        NMnistReader(path).read_all()
    with pytest.raises(EventFileError) as per_packet:
        list(NMnistReader(path).packets(max_events=max_events))
    assert info.value.offset == per_packet.value.offset == 1000 * 5


def test_wrapped_clock_is_refused(tmp_path: Path) -> None:
    ev = synthetic(100)
    ev["t"][50:] = (ev["t"][50:] - ev["t"][50]) + 10  # back to 10 us ...
    ev["t"][:50] += (1 << 23) - 1 - ev["t"][49]  # ... after 8388607 us
    path = write(tmp_path / "w.bin", ev)
    with pytest.raises(EventFileError, match="23-bit timestamp wrapped") as info:
        NMnistReader(path).read_all()
    assert info.value.offset == 250


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "Test" / "1" / "empty.bin"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"")
    for open_it in (lambda: open_reader(path), lambda: open_reader(path, fmt="nmnist")):
        with pytest.raises(EventFileError, match=r"empty file \(0 bytes\)"):
            open_it()
    with pytest.raises(EventFileError, match="empty"):
        NCaltech101Reader(path)


def test_coordinates_out_of_range(caltech_file: Path, tmp_path: Path) -> None:
    with open_reader(caltech_file) as reader:
        events = reader.read_all()
    first = int(np.argmax((events["x"] >= 34) | (events["y"] >= 34)))
    with pytest.raises(EventFileError, match="outside the 34x34 N-MNIST sensor") as info:
        open_reader(caltech_file, fmt="nmnist").read_all()
    assert info.value.offset == first * 5
    ev = synthetic(100, size=100)
    ev["y"][60] = 240  # tonic's overflow marker: refused, at open (the bounding-box scan)
    path = write(tmp_path / "marker.bin", ev)
    with pytest.raises(EventFileError, match=r"304x240 ATIS sensor.*overflow marker") as info:
        NCaltech101Reader(path)
    assert info.value.offset == 300


# -- replay, span scan, CLI -----------------------------------------------------------
def test_replay_and_span_with_fmt(nmnist_files: list[Path], tmp_path: Path) -> None:
    path = tmp_path / "digit.raw"
    shutil.copy(nmnist_files[0], path)
    t = NMnistReader(path).read_all()["t"]
    assert last_timestamp(path, fmt="nmnist") == int(t[-1])
    assert last_timestamp(nmnist_files[0]) == int(t[-1])
    source = ReplaySource(path, speed=float("inf"), fmt="nmnist")
    source.start()
    got = []
    while len(events := source.poll()):
        got.append(events)
    source.stop()
    np.testing.assert_array_equal(np.concatenate(got)["t"], t)


def test_cli_info_json(capsys: pytest.CaptureFixture[str], caltech_file: Path) -> None:
    assert main(["info", str(caltech_file), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "ncaltech101" and info["events"] == 67_445
    assert (info["width"], info["height"]) == (151, 173)
    assert info["labels"] == [
        {"label": 1, "name": "Faces_easy", "t_start_us": 6, "t_end_us": 299_365}
    ]
    assert info["metadata"]["sensor_size_from"].startswith("bounding box")


def test_cli_convert_and_forced_formats(
    capsys: pytest.CaptureFixture[str], nmnist_files: list[Path], tmp_path: Path
) -> None:
    src = nmnist_files[0]
    dst = tmp_path / "digit.npz"
    assert main(["convert", str(src), str(dst)]) == 0
    with open_reader(src) as a, open_reader(dst) as b:
        np.testing.assert_array_equal(b.read_all(), a.read_all())
        assert b.sensor_size == (34, 34, 2) and b.labels == a.labels
    disguised = tmp_path / "digit.dat"
    shutil.copy(src, disguised)
    capsys.readouterr()
    assert main(["info", str(disguised), "--json", "--format", "nmnist"]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "nmnist"
    out = tmp_path / "again.npz"
    assert main(["convert", str(disguised), str(out), "--input-format", "nmnist"]) == 0
    capsys.readouterr()
    assert main(["info", str(disguised), "--format", "bogus"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown format 'bogus'" in err[0] and "ncaltech101" in err[0]
    assert main(["info", str(disguised)]) == 2  # not detected without the .bin name
    assert "unknown format" in capsys.readouterr().err
    assert main(["play", str(disguised), "--format", "nmnist", "--speed", "max"]) == 0
    assert "(nmnist, 34x34)" in capsys.readouterr().out
