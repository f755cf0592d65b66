"""AEDAT 4.0 reader against dv-processing's own decode, stream choice, streaming, seeking and
corrupted copies of the real sample."""

from __future__ import annotations

from pathlib import Path

import dv_processing as dv
import numpy as np
import pytest

from dvsapp.errors import EventFileError
from dvsapp.events.detect import detect_format
from dvsapp.events.readers.aedat4 import Aedat4Reader

N_EVENTS = 111_954


def dv_decode(path: Path, stream: str = "events") -> np.ndarray:
    """Every event of ``stream`` as dv-processing reads it (timestamp, x, y, polarity)."""
    rec = dv.io.MonoCameraRecording(str(path))
    parts = []
    while (batch := rec.getNextEventBatch(stream)) is not None:
        parts.append(batch.numpy())
    return np.concatenate(parts)


def assert_equals_dv(ours: np.ndarray, ref: np.ndarray) -> None:
    assert len(ours) == len(ref)
    np.testing.assert_array_equal(ours["t"], ref["timestamp"])
    np.testing.assert_array_equal(ours["x"], ref["x"])
    np.testing.assert_array_equal(ours["y"], ref["y"])
    np.testing.assert_array_equal(ours["p"], ref["polarity"] == 1)


@pytest.fixture(scope="module")
def sample(samples_dir: Path) -> Path:
    return samples_dir / "sample.aedat4"


def test_sample_equals_dv_processing(sample: Path) -> None:
    reader = Aedat4Reader(sample)
    events = reader.read_all()
    assert len(events) == N_EVENTS and int(events["p"].sum()) == 55_023
    assert reader.sensor_size == (320, 240, 2)
    assert int(events["t"][0]) == 1_605_537_493_718_345  # Unix time kept
    assert reader.metadata["source"] == "DVXplorer_DXB00010"
    assert_equals_dv(events, dv_decode(sample))


def test_detection(sample: Path) -> None:
    assert detect_format(sample) is Aedat4Reader
    assert not Aedat4Reader.sniff(b"#!AER-DAT3.1\r\n")


def test_small_packets_equal_read_all(sample: Path) -> None:
    reader = Aedat4Reader(sample)
    packets = list(reader.packets(max_events=333))
    assert max(len(p) for p in packets) <= 333
    np.testing.assert_array_equal(np.concatenate(packets), reader.read_all())


def test_seek_equals_filtering(sample: Path) -> None:
    reader = Aedat4Reader(sample)
    full = reader.read_all()
    t = full["t"]
    for start in (
        int(t[0]) - 5,
        int(t[5000]),
        int(t[N_EVENTS // 2]) + 1,
        int(t[-1]),
        int(t[-1]) + 1,
    ):
        got = list(reader.packets(start_us=start))
        np.testing.assert_array_equal(np.concatenate([*got, full[:0]]), full[t >= start])


@pytest.fixture(scope="module")
def two_streams(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file with an IMU stream and two event streams, written by dv-processing."""
    path = tmp_path_factory.mktemp("multi") / "multi.aedat4"
    cfg = dv.io.MonoCameraWriter.Config("cam")
    cfg.addImuStream()
    cfg.addEventStream((64, 48), "left")
    cfg.addEventStream((32, 16), "right")
    writer = dv.io.MonoCameraWriter(str(path), cfg)
    for name, n in (("left", 5), ("right", 3)):
        store = dv.EventStore()
        for i in range(n):
            store.push_back(100 + i, 2 * i, i, bool(i % 2))
        writer.writeEvents(store, streamName=name)
    del writer
    return path


@pytest.mark.parametrize(
    ("stream", "name", "size", "n"),
    [
        (None, "left", (64, 48), 5),
        ("right", "right", (32, 16), 3),
        (2, "right", (32, 16), 3),
        ("1", "left", (64, 48), 5),
    ],
)
def test_stream_choice(two_streams: Path, stream: str | int | None, name: str, size: tuple, n: int):
    reader = Aedat4Reader(two_streams, stream=stream)
    assert reader.metadata["stream_name"] == name and reader.sensor_size == (*size, 2)
    events = reader.read_all()
    assert len(events) == n
    assert_equals_dv(events, dv_decode(two_streams, name))


@pytest.mark.parametrize("stream", ["imu", "nope", 0, 7])
def test_absent_stream_lists_the_event_streams(two_streams: Path, stream: str | int) -> None:
    with pytest.raises(EventFileError) as info:
        Aedat4Reader(two_streams, stream=stream)
    msg = str(info.value)
    assert str(two_streams) in msg and "1 'left' (64x48), 2 'right' (32x16)" in msg


def test_no_event_stream(tmp_path: Path) -> None:
    path = tmp_path / "imu.aedat4"
    cfg = dv.io.MonoCameraWriter.Config("cam")
    cfg.addImuStream()
    writer = dv.io.MonoCameraWriter(str(path), cfg)
    del writer
    with pytest.raises(EventFileError, match="no event stream"):
        Aedat4Reader(path)


# -- corrupt and truncated ------------------------------------------------------------
def read_fails_cleanly(path: Path) -> EventFileError:
    with pytest.raises(EventFileError) as info:
        Aedat4Reader(path).read_all()
    msg = str(info.value)
    assert str(path) in msg and "\n" not in msg
    return info.value


@pytest.mark.parametrize("cut", [10, 100, 1500, 5000, 500_000])
def test_truncated(sample: Path, tmp_path: Path, cut: int) -> None:
    path = tmp_path / "cut.aedat4"
    path.write_bytes(sample.read_bytes()[:cut])
    read_fails_cleanly(path)


def test_truncated_packet_table_only_still_reads(sample: Path, tmp_path: Path) -> None:
    """dv-processing refuses a file whose trailing packet table is cut; all packets are here."""
    path = tmp_path / "notable.aedat4"
    path.write_bytes(sample.read_bytes()[:949_000])
    assert len(Aedat4Reader(path).read_all()) == N_EVENTS


def test_corrupt_compressed_packets(sample: Path, tmp_path: Path) -> None:
    """dv-processing's getNextEventBatch did not return within 20 s on such files."""
    data = bytearray(sample.read_bytes())
    for i in np.random.default_rng(1).integers(1200, len(data), 20):
        data[i] ^= 0xFF
    path = tmp_path / "flipped.aedat4"
    path.write_bytes(bytes(data))
    assert "corrupt" in read_fails_cleanly(path).message


def test_garbage_after_magic(tmp_path: Path) -> None:
    path = tmp_path / "junk.aedat4"
    path.write_bytes(b"#!AER-DAT4.0\r\n" + bytes(range(256)) * 8)
    read_fails_cleanly(path)


def test_malformed_xml(sample: Path, tmp_path: Path) -> None:
    data = bytearray(sample.read_bytes())
    data[600] ^= 0xFF
    path = tmp_path / "xml.aedat4"
    path.write_bytes(bytes(data))
    read_fails_cleanly(path)
