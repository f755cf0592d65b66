"""The .npy (tonic DVSGesture, structured) and .npz readers, against numpy's own loading."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from dvsapp.errors import EventFileError
from dvsapp.events.detect import detect_format
from dvsapp.events.readers.numpy_files import NpyReader, NpzReader, zip_member_names
from dvsapp.events.types import LabelSegment


def gesture_rows(n: int, seed: int = 0) -> np.ndarray:
    """tonic's DVSGesture cache layout: float x, y, p, t (ms, fractional, sorted)."""
    rng = np.random.default_rng(seed)
    rows = np.empty((n, 4))
    rows[:, 0], rows[:, 1] = rng.integers(0, 128, n), rng.integers(0, 128, n)
    rows[:, 2] = rng.integers(0, 2, n)
    # ms: whole microseconds plus 0.0 .. 0.9 us, so that rounding and truncation differ
    rows[:, 3] = (np.cumsum(rng.integers(1, 2000, n)) + rng.integers(0, 10, n) / 10) / 1000
    return rows


@pytest.fixture
def gesture_file(tmp_path: Path) -> tuple[Path, np.ndarray]:
    folder = tmp_path / "user01_fluorescent"
    folder.mkdir()
    rows = gesture_rows(20_000)
    path = folder / "3.npy"
    np.save(path, rows)
    return path, rows


# -- .npy -----------------------------------------------------------------------------
def test_tonic_gesture_npy(gesture_file: tuple[Path, np.ndarray]) -> None:
    path, rows = gesture_file
    assert detect_format(path) is NpyReader
    reader = NpyReader(path)
    assert reader.sensor_size == (128, 128, 2)
    assert isinstance(reader._array, np.memmap)  # streams from the map
    assert (
        reader.metadata["target"] == 3 and reader.metadata["target_name"] == "right_arm_clockwise"
    )
    events = reader.read_all()
    np.testing.assert_array_equal(events["x"], rows[:, 0].astype(int))
    np.testing.assert_array_equal(events["y"], rows[:, 1].astype(int))
    np.testing.assert_array_equal(events["p"], rows[:, 2] == 1)
    want_t = [round(v * 1000) for v in rows[:, 3].tolist()]  # rounded, not truncated
    assert events["t"].tolist() == want_t


def test_structured_npy_is_expelliarmus_reference(samples_dir: Path) -> None:
    path = samples_dir / "evt3_sample.npy"
    reader = NpyReader(path)
    ref = np.load(path)
    assert reader.sensor_size == (int(ref["x"].max()) + 1, int(ref["y"].max()) + 1, 2)
    assert reader.sensor_size == (1280, 720, 2)
    events = reader.read_all()
    for f in ("x", "y", "t"):
        np.testing.assert_array_equal(events[f], ref[f])
    np.testing.assert_array_equal(events["p"], ref["p"] == 1)


def test_structured_npy_field_order_and_signed_polarity(tmp_path: Path) -> None:
    arr = np.zeros(4, dtype=[("t", "<f8"), ("p", "i1"), ("y", "<u2"), ("x", "<i4"), ("z", "u1")])
    arr["t"], arr["p"], arr["x"], arr["y"] = (
        [1.4, 2.6, 3.0, 9.5],
        [-1, 1, -1, 1],
        [0, 5, 2, 1],
        [7, 0, 1, 2],
    )
    path = tmp_path / "s.npy"
    np.save(path, arr)
    events = NpyReader(path).read_all()
    assert events["t"].tolist() == [1, 3, 3, 10]  # round half to even, as np.rint
    assert events["p"].tolist() == [False, True, False, True]
    assert NpyReader(path).sensor_size == (6, 8, 2)


@pytest.mark.parametrize("kind", ["gesture", "structured"])
def test_npy_small_packets_and_seek(tmp_path: Path, kind: str) -> None:
    if kind == "gesture":
        path = tmp_path / "g.npy"
        np.save(path, gesture_rows(5000, seed=4))
    else:
        path = tmp_path / "s.npy"
        arr = np.zeros(5000, dtype=[("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])
        arr["x"], arr["y"], arr["t"] = 3, 4, np.repeat(np.arange(2500) * 7, 2)  # ties
        np.save(path, arr)
    reader = NpyReader(path)
    full = reader.read_all()
    packets = list(reader.packets(max_events=77))
    assert max(len(p) for p in packets) <= 77
    np.testing.assert_array_equal(np.concatenate(packets), full)
    t = full["t"]
    for start in (int(t[0]), int(t[1234]), int(t[1234]) + 1, int(t[-1]), int(t[-1]) + 1):
        got = np.concatenate([*reader.packets(start_us=start, max_events=100), full[:0]])
        np.testing.assert_array_equal(got, full[t >= start])


def test_npy_refuses_objects_and_other_layouts(tmp_path: Path) -> None:
    obj = tmp_path / "obj.npy"
    np.save(obj, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(EventFileError, match="objects"):
        NpyReader(obj)
    for i, arr in enumerate(
        [np.arange(10), np.zeros((5, 3)), np.zeros(3, dtype=[("x", "i2"), ("t", "i8")])]
    ):
        path = tmp_path / f"bad{i}.npy"
        np.save(path, arr)
        with pytest.raises(EventFileError):
            NpyReader(path)


def test_npy_truncated(gesture_file: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    data = gesture_file[0].read_bytes()
    for cut in (4, 60, len(data) - 5):
        path = tmp_path / "cut.npy"
        path.write_bytes(data[:cut])
        with pytest.raises(EventFileError):
            NpyReader(path).read_all()


@pytest.mark.parametrize(
    ("col", "value", "match"),
    [(0, 128, "outside"), (1, -1, "outside"), (2, 2, "not an x, y, p"), (0, 3.5, "not an x, y, p")],
)
def test_gesture_values_checked(tmp_path: Path, col: int, value: float, match: str) -> None:
    rows = gesture_rows(1000)
    rows[600, col] = value
    path = tmp_path / "bad.npy"
    np.save(path, rows)
    with pytest.raises(EventFileError, match=match) as info:
        NpyReader(path).read_all()
    assert info.value.offset == 128 + 600 * 32  # header, then 600 rows of 4 float64


def test_unsorted_npy_raises(tmp_path: Path) -> None:
    rows = gesture_rows(100)
    rows[50, 3] = 0.0
    path = tmp_path / "unsorted.npy"
    np.save(path, rows)
    with pytest.raises(EventFileError, match="backwards"):
        NpyReader(path).read_all()


# -- .npz -----------------------------------------------------------------------------
def npz_arrays(n: int = 3000, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.integers(0, 346, n).astype(np.int16),
        "y": rng.integers(0, 260, n).astype(np.int16),
        "t": np.cumsum(rng.integers(0, 50, n)).astype(np.int64) + 10**12,
        "p": rng.random(n) < 0.5,
        "width": np.array(346),
        "height": np.array(260),
        "label_ids": np.array([0, 7]),
        "label_names": np.array(["hand_clapping", "arm_roll"]),
        "label_t_start_us": np.array([10**12, 10**12 + 500]),
        "label_t_end_us": np.array([10**12 + 400, 10**12 + 900]),
    }


@pytest.mark.parametrize("save", [np.savez, np.savez_compressed])
def test_npz_written_by_numpy(tmp_path: Path, save) -> None:
    arrays = npz_arrays()
    path = tmp_path / "rec.npz"
    save(path, **arrays)
    assert detect_format(path) is NpzReader
    reader = NpzReader(path)
    assert reader.sensor_size == (346, 260, 2)
    assert reader.labels == [
        LabelSegment(0, "hand_clapping", 10**12, 10**12 + 400),
        LabelSegment(7, "arm_roll", 10**12 + 500, 10**12 + 900),
    ]
    events = reader.read_all()
    for f in ("x", "y", "t", "p"):
        np.testing.assert_array_equal(events[f], arrays[f])
    packets = list(reader.packets(max_events=101))
    assert max(len(p) for p in packets) <= 101
    np.testing.assert_array_equal(np.concatenate(packets), events)
    t = events["t"]
    for start in (int(t[0]), int(t[2000]), int(t[2000]) + 1, int(t[-1]) + 1):
        got = np.concatenate([*reader.packets(start_us=start, max_events=64), events[:0]])
        np.testing.assert_array_equal(got, events[t >= start])


def test_npz_sniff(tmp_path: Path) -> None:
    ours, other = tmp_path / "ours.npz", tmp_path / "other.npz"
    np.savez(ours, **npz_arrays())
    np.savez(other, events=np.zeros(3), labels=np.zeros(2))
    assert NpzReader.sniff(ours.read_bytes()[:65536])
    assert zip_member_names(ours.read_bytes())[1]  # the walk reaches the central directory
    assert not NpzReader.sniff(other.read_bytes()[:65536])
    assert not NpzReader.sniff(b"PK\x03\x04" + b"\x00" * 40)


def test_npz_missing_member_and_objects(tmp_path: Path) -> None:
    arrays = npz_arrays()
    del arrays["height"]
    path = tmp_path / "noh.npz"
    np.savez(path, **arrays)
    with pytest.raises(EventFileError, match=r"height\.npy"):
        NpzReader(path)
    arrays = npz_arrays()
    arrays["x"] = np.array([object()] * 3000, dtype=object)
    path = tmp_path / "obj.npz"
    np.savez(path, **arrays)
    with pytest.raises(EventFileError, match="'x'"):
        NpzReader(path)


def test_npz_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "rec.npz"
    np.savez(path, **npz_arrays())
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(EventFileError):
        NpzReader(cut).read_all()
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("y.npy")
    flipped = bytearray(data)
    flipped[info.header_offset + 200] ^= 0xFF  # inside y's stored data: CRC mismatch
    bad = tmp_path / "crc.npz"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(EventFileError):
        NpzReader(bad).read_all()


def test_npz_out_of_sensor(tmp_path: Path) -> None:
    arrays = npz_arrays()
    arrays["x"][100] = 346
    path = tmp_path / "oob.npz"
    np.savez(path, **arrays)
    with pytest.raises(EventFileError, match="outside"):
        NpzReader(path).read_all()
