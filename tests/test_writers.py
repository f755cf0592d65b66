"""Writers: .npz and AEDAT 4.0 round trips (read back independently by numpy and
dv-processing), atomic output and the errors they raise."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dv_processing as dv
import numpy as np
import pytest

from dvsapp.errors import EventFileError
from dvsapp.events.readers.aedat4 import Aedat4Reader
from dvsapp.events.readers.numpy_files import NpzReader
from dvsapp.events.readers.prophesee import Evt2Reader, Evt3Reader
from dvsapp.events.types import EVENT_DTYPE, LabelSegment, make_events
from dvsapp.events.writers import to_event_store, write_aedat4, write_npz

LABELS = [LabelSegment(2, "left_hand_wave", 5, 900), LabelSegment(10, "other_gestures", 900, 2000)]


def dv_decode(path: Path) -> np.ndarray:
    rec = dv.io.MonoCameraRecording(str(path))
    parts = []
    while (batch := rec.getNextEventBatch()) is not None:
        parts.append(batch.numpy())
    return np.concatenate(parts)


def synthetic(n: int = 5000, w: int = 320, h: int = 240, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.integers(0, 30, n)) + 1_600_000_000_000_000
    return make_events(rng.integers(0, w, n), rng.integers(0, h, n), t, rng.random(n) < 0.5)


def chunks(events: np.ndarray, n: int) -> Iterator[np.ndarray]:
    for i in range(0, len(events), n):
        yield events[i : i + n]


def leftovers(folder: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in keep)


# -- .npz -----------------------------------------------------------------------------
@pytest.mark.parametrize("compress", [False, True])
def test_npz_round_trip(samples_dir: Path, tmp_path: Path, compress: bool) -> None:
    src = Evt2Reader(samples_dir / "evt2_sample.raw")
    events = src.read_all()
    out = tmp_path / "evt2.npz"
    n = write_npz(out, src.packets(max_events=50_000), src.sensor_size, LABELS, compress=compress)
    assert n == len(events) == 539_481
    with np.load(out, allow_pickle=False) as z:  # independent reader
        for f in ("x", "y", "t", "p"):
            np.testing.assert_array_equal(z[f], events[f])
        assert (int(z["width"]), int(z["height"])) == (640, 480)
        assert z["label_names"].tolist() == ["left_hand_wave", "other_gestures"]
        assert z["x"].dtype == np.int16 and z["t"].dtype == np.int64 and z["p"].dtype == bool
    reader = NpzReader(out)
    assert reader.sensor_size == (640, 480, 2) and reader.labels == LABELS
    np.testing.assert_array_equal(reader.read_all(), events)
    assert leftovers(tmp_path, {"evt2.npz"}) == []


def test_npz_accepts_other_event_dtypes(tmp_path: Path) -> None:
    events = synthetic(300)
    theirs = np.zeros(300, dtype=[("t", "<u8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])
    for f in ("t", "x", "y", "p"):
        theirs[f] = events[f]
    out = tmp_path / "o.npz"
    assert write_npz(out, [theirs[:100], theirs[100:100], theirs[100:]], (320, 240, 2)) == 300
    np.testing.assert_array_equal(NpzReader(out).read_all(), events)
    assert NpzReader(out).labels == []


def test_npz_empty(tmp_path: Path) -> None:
    out = tmp_path / "empty.npz"
    assert write_npz(out, [], (128, 128, 2)) == 0
    assert len(NpzReader(out).read_all()) == 0


# -- AEDAT 4.0 ------------------------------------------------------------------------
def test_aedat4_round_trip_of_the_sample(samples_dir: Path, tmp_path: Path) -> None:
    src = Aedat4Reader(samples_dir / "sample.aedat4")
    events = src.read_all()
    out = tmp_path / "copy.aedat4"
    assert write_aedat4(out, src.packets(max_events=10_000), src.sensor_size) == len(events)
    ref = dv_decode(out)  # dv-processing, independently of our reader
    np.testing.assert_array_equal(ref["timestamp"], events["t"])
    np.testing.assert_array_equal(ref["x"], events["x"])
    np.testing.assert_array_equal(ref["y"], events["y"])
    np.testing.assert_array_equal(ref["polarity"] == 1, events["p"])
    assert dv.io.MonoCameraRecording(str(out)).getEventResolution() == (320, 240)
    back = Aedat4Reader(out)
    assert back.sensor_size == (320, 240, 2) and back.metadata["source"] == "dvsapp"
    np.testing.assert_array_equal(back.read_all(), events)
    assert leftovers(tmp_path, {"copy.aedat4"}) == []


def test_aedat4_from_evt3_any_output_name(samples_dir: Path, tmp_path: Path) -> None:
    """dv-processing's writer aborts the process on a name not ending in .aedat4 (its
    recording class refuses one): the temporary file has that suffix whatever the output is
    called."""
    src = Evt3Reader(samples_dir / "evt3_sample.raw")
    out = tmp_path / "evt3.bin"
    write_aedat4(out, src.packets(), src.sensor_size)
    np.testing.assert_array_equal(Aedat4Reader(out).read_all(), src.read_all())
    named = out.rename(tmp_path / "evt3.aedat4")
    assert dv.io.MonoCameraRecording(str(named)).getEventResolution() == (1280, 720)
    assert len(dv_decode(named)) == 219_596


def test_event_store_conversion() -> None:
    events = synthetic(1000)
    got = to_event_store(events).numpy()
    np.testing.assert_array_equal(got["timestamp"], events["t"])
    np.testing.assert_array_equal(got["x"], events["x"])
    np.testing.assert_array_equal(got["y"], events["y"])
    np.testing.assert_array_equal(got["polarity"] == 1, events["p"])


# -- failures leave nothing behind ----------------------------------------------------
WRITERS = [write_npz, write_aedat4]


@pytest.mark.parametrize("writer", WRITERS)
def test_failure_midway_leaves_no_file(tmp_path: Path, writer) -> None:
    out = tmp_path / ("out.npz" if writer is write_npz else "out.aedat4")
    out.write_bytes(b"previous content")

    def packets() -> Iterator[np.ndarray]:
        yield synthetic(100)
        raise RuntimeError("disk on fire")

    with pytest.raises(EventFileError) as info:
        writer(out, packets(), (320, 240, 2))
    assert str(out) in str(info.value) and "disk on fire" in str(info.value)
    assert out.read_bytes() == b"previous content"
    assert leftovers(tmp_path, {out.name}) == []


@pytest.mark.parametrize("writer", WRITERS)
def test_input_errors_pass_unchanged(tmp_path: Path, writer) -> None:
    def packets() -> Iterator[np.ndarray]:
        yield synthetic(10)
        raise EventFileError("/data/in.raw", "corrupt data", 1234)

    with pytest.raises(EventFileError) as info:
        writer(tmp_path / "o.aedat4", packets(), (320, 240, 2))
    assert info.value.path == "/data/in.raw" and info.value.offset == 1234
    assert leftovers(tmp_path, set()) == []


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize(
    ("packets", "match"),
    [
        ([make_events([5], [240], [1], [True])], "outside 320x240"),
        ([make_events([-1], [0], [1], [True])], "outside 320x240"),
        ([make_events([1, 2], [0, 0], [9, 3], [True, False])], "backwards"),
        ([make_events([1], [0], [9], [True]), make_events([1], [0], [8], [True])], "backwards"),
        ([np.zeros(3, dtype=[("a", "i4")])], "not an event array"),
    ],
)
def test_bad_packets(tmp_path: Path, writer, packets: list[np.ndarray], match: str) -> None:
    out = tmp_path / "bad.aedat4"
    with pytest.raises(EventFileError, match=match) as info:
        writer(out, packets, (320, 240, 2))
    assert info.value.path == str(out)
    assert leftovers(tmp_path, set()) == []


def test_aedat4_refuses_negative_time(tmp_path: Path) -> None:
    with pytest.raises(EventFileError, match="below 0"):
        write_aedat4(tmp_path / "n.aedat4", [make_events([1], [1], [-5], [True])], (8, 8, 2))


@pytest.mark.parametrize("writer", WRITERS)
def test_missing_folder_and_bad_sensor(tmp_path: Path, writer) -> None:
    with pytest.raises(EventFileError, match="folder does not exist"):
        writer(tmp_path / "no" / "such.npz", [], (8, 8, 2))
    with pytest.raises(EventFileError, match="0x8"):
        writer(tmp_path / "zero.npz", [np.zeros(0, dtype=EVENT_DTYPE)], (0, 8, 2))
