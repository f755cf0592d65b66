"""AEDAT 3.1 reader: decoding against an independent writer, overflow, streaming, seeking,
malformed files, and a cross-check with SpikingJelly's own ``load_aedat_v3``."""

from __future__ import annotations

import struct
from pathlib import Path

import aedat31_writer as w
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dvsapp.errors import EventFileError
from dvsapp.events.detect import detect_format
from dvsapp.events.readers import aedat31
from dvsapp.events.readers.aedat31 import Aedat31Reader, read_aedat31
from dvsapp.events.readers.base import EventReader
from dvsapp.events.types import EVENT_DTYPE


def as_ours(events: np.ndarray) -> np.ndarray:
    """The writer's events in our dtype (fields x, y, t, p compared exactly)."""
    out = np.empty(len(events), EVENT_DTYPE)
    for name in ("x", "y", "t", "p"):
        out[name] = events[name]
    return out


def mixed_file(tmp_path: Path, n: int = 3000, seed: int = 1) -> tuple[Path, np.ndarray, list[int]]:
    """Polarity packets with invalid events and spare capacity, interleaved with special and
    IMU6 packets. Returns the path, the events a reader must return, and packet offsets."""
    rng = np.random.default_rng(seed)
    events = w.random_events(n, seed, t0=1000)
    valid = rng.random(n) > 0.1
    packets = []
    for i, pk in enumerate(w.polarity_packets(events, 257, valid, capacity_extra=5)):
        packets.append(pk)
        if i % 3 == 0:
            packets.append(w.special_packet(np.array([1000 + i, 1001 + i]), capacity=4))
        if i % 4 == 1:
            packets.append(w.imu6_packet(np.array([1000 + i] * 3)))
    path = w.write_file(tmp_path / "mixed.aedat", packets)
    return path, as_ours(events[valid]), packets_offsets(packets)


def packets_offsets(packets: list[bytes]) -> list[int]:
    offsets, at = [], len(w.header())
    for pk in packets:
        offsets.append(at)
        at += len(pk)
    return offsets


def collect(reader: EventReader, **kwargs: object) -> np.ndarray:
    parts = list(reader.packets(**kwargs))
    return np.concatenate(parts) if parts else np.zeros(0, EVENT_DTYPE)


# -- decoding --------------------------------------------------------------------------------
def test_decodes_valid_polarity_events_only(tmp_path: Path) -> None:
    path, expected, _ = mixed_file(tmp_path)
    reader = Aedat31Reader(path)
    got = reader.read_all()
    assert got.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(got, expected)
    assert reader.sensor_size == (128, 128, 2)


def test_metadata_counts_after_a_full_pass(tmp_path: Path) -> None:
    path, expected, offsets = mixed_file(tmp_path, n=1000)
    reader = Aedat31Reader(path)
    assert sum(len(p) for p in reader.packets()) == len(expected)
    meta = reader.metadata
    assert meta["packets"] == len(offsets)
    assert meta["polarity_packets"] == 4
    assert meta["other_packets_by_type"] == {"0": 2, "3": 1}
    assert meta["events"] == len(expected)
    assert meta["invalid_events_skipped"] == 1000 - len(expected)
    assert meta["sources"] == {"1": "DVS128"}


def test_timestamp_overflow_gives_64_bit_times(tmp_path: Path) -> None:
    events = w.random_events(4000, seed=3, t0=(1 << 31) - 4000)
    events["t"][3000:] += 3 << 31  # a jump over two more overflows
    assert (events["t"] >> 31).min() == 0 and (events["t"] >> 31).max() == 4
    path = w.write_file(tmp_path / "ovf.aedat", w.polarity_packets(events, 700))
    got = Aedat31Reader(path).read_all()
    np.testing.assert_array_equal(got, as_ours(events))
    assert got["t"].max() > 1 << 33


def test_streaming_in_small_packets_equals_read_all(tmp_path: Path) -> None:
    path, expected, _ = mixed_file(tmp_path)
    reader = Aedat31Reader(path)
    parts = list(reader.packets(max_events=7))
    assert max(len(p) for p in parts) <= 7
    np.testing.assert_array_equal(np.concatenate(parts), expected)
    np.testing.assert_array_equal(EventReader.read_all(reader), reader.read_all())


def test_tiny_chunks_exercise_straddling_and_oversized_packets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, expected, _ = mixed_file(tmp_path)
    monkeypatch.setattr(aedat31, "CHUNK_BYTES", 1000)  # < one 257-event packet
    monkeypatch.setattr(aedat31, "INDEX_CHUNK_BYTES", 100)
    reader = Aedat31Reader(path)
    np.testing.assert_array_equal(collect(reader), expected)
    np.testing.assert_array_equal(reader.read_all(), expected)
    s = int(expected["t"][len(expected) // 2])
    np.testing.assert_array_equal(reader.read_all(s), expected[expected["t"] >= s])


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n=st.integers(0, 600),
    per_packet=st.integers(1, 90),
    extra=st.integers(0, 3),
    chunk=st.sampled_from([64, 200, 1 << 12, 1 << 22]),
    invalid_rate=st.sampled_from([0.0, 0.3, 1.0]),
    seed=st.integers(0, 1000),
)
def test_random_packetisations_decode_exactly(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    n: int,
    per_packet: int,
    extra: int,
    chunk: int,
    invalid_rate: float,
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    events = w.random_events(n, seed)
    valid = rng.random(n) >= invalid_rate
    packets = w.polarity_packets(events, per_packet, valid, capacity_extra=extra)
    packets.insert(len(packets) // 2, w.imu6_packet(np.zeros(2, np.int64)))
    path = w.write_file(tmp_path / f"h{seed}.aedat", packets)
    monkeypatch.setattr(aedat31, "CHUNK_BYTES", chunk)
    expected = as_ours(events[valid])
    reader = Aedat31Reader(path)
    np.testing.assert_array_equal(reader.read_all(), expected)
    np.testing.assert_array_equal(collect(reader, max_events=5), expected)


def test_header_only_file_has_no_events(tmp_path: Path) -> None:
    path = w.write_file(tmp_path / "empty.aedat", [])
    reader = Aedat31Reader(path)
    assert len(reader.read_all()) == 0
    assert list(reader.packets()) == []
    assert len(reader.read_all(start_us=5)) == 0


def test_read_aedat31_helper(tmp_path: Path) -> None:
    path, expected, _ = mixed_file(tmp_path, n=500)
    np.testing.assert_array_equal(read_aedat31(path), expected)


# -- seeking ---------------------------------------------------------------------------------
def test_index_holds_polarity_packet_offsets_and_first_times(tmp_path: Path) -> None:
    events = w.random_events(1000, seed=5)
    packets = w.polarity_packets(events, 100)
    packets.insert(1, w.special_packet(np.array([7])))
    path = w.write_file(tmp_path / "idx.aedat", packets)
    index = Aedat31Reader(path).packet_index()
    offsets = packets_offsets(packets)
    np.testing.assert_array_equal(index.offsets, [offsets[0], *offsets[2:]])
    np.testing.assert_array_equal(index.first_t, events["t"][::100])
    np.testing.assert_array_equal(index.events, [100] * 10)


def test_seek_equals_filtering(tmp_path: Path) -> None:
    path, expected, _ = mixed_file(tmp_path)
    reader = Aedat31Reader(path)
    t = expected["t"]
    starts = [0, int(t[0]), int(t[1]), int(t[len(t) // 3]), int(t[-1]), int(t[-1]) + 1]
    starts += [int(t[i]) + 1 for i in (10, 400, 2000)]
    for s in starts:
        np.testing.assert_array_equal(collect(reader, start_us=s, max_events=50), expected[t >= s])
        for e in (s, s + 1, s + 500, int(t[-1]) + 10):
            window = expected[(t >= s) & (t < e)]
            np.testing.assert_array_equal(reader.read_all(s, e), window)
            np.testing.assert_array_equal(EventReader.read_all(reader, s, e), window)


def test_seek_starts_near_the_target_packet(tmp_path: Path) -> None:
    events = w.random_events(2000, seed=7)
    packets = w.polarity_packets(events, 100)
    path = w.write_file(tmp_path / "seek.aedat", packets)
    reader = Aedat31Reader(path)
    offsets = packets_offsets(packets)
    # The first time of packet 12, +1: packet 12 holds the first event at or after it.
    s = int(events["t"][1200]) + 1
    start = reader._start_offset(s)
    assert start == offsets[12]
    first_packet = next(reader.packets(start_us=s))
    assert first_packet["t"][0] >= s


def test_seek_ties_across_packet_boundaries(tmp_path: Path) -> None:
    events = w.random_events(30, seed=0)
    events["t"] = [5] * 10 + [7] * 10 + [7] * 10
    path = w.write_file(tmp_path / "ties.aedat", w.polarity_packets(events, 10))
    reader = Aedat31Reader(path)
    for s in (5, 6, 7, 8):
        assert len(collect(reader, start_us=s)) == int((events["t"] >= s).sum())


# -- labels, sniffing, geometry ----------------------------------------------------------------
def test_labels_from_csv_beside_the_recording(tmp_path: Path) -> None:
    path, _, _ = mixed_file(tmp_path)
    rec = path.with_name("user05_led.aedat")
    path.rename(rec)
    rec.with_name("user05_led_labels.csv").write_text(
        "class,startTime_usec,endTime_usec\n3,200,900\n1,100,400\n"
    )
    reader = Aedat31Reader(rec)
    assert [(s.label, s.name, s.t_start_us, s.t_end_us) for s in reader.labels] == [
        (0, "hand_clapping", 100, 400),
        (2, "left_hand_wave", 200, 900),
    ]
    assert reader.metadata["labels_file"] == "user05_led_labels.csv"


def test_no_labels_without_csv(tmp_path: Path) -> None:
    path, _, _ = mixed_file(tmp_path, n=10)
    assert Aedat31Reader(path).labels == []


def test_sniff_and_detection(tmp_path: Path) -> None:
    path, _, _ = mixed_file(tmp_path, n=10)
    assert Aedat31Reader.sniff(path.read_bytes()[:64])
    assert not Aedat31Reader.sniff(b"#!AER-DAT2.0\r\n")
    assert not Aedat31Reader.sniff(b"#!END-HEADER\r\n")
    assert detect_format(path) is Aedat31Reader


def test_aedat_3_0_is_refused_clearly(tmp_path: Path) -> None:
    path = tmp_path / "old.aedat"
    path.write_bytes(b"#!AER-DAT3.0\r\n#!END-HEADER\r\n")
    assert Aedat31Reader.sniff(path.read_bytes())
    with pytest.raises(EventFileError, match=r"AER-DAT3\.1") as info:
        Aedat31Reader(path)
    assert info.value.offset == 0


def test_sensor_size_from_xml_source_name_or_default(tmp_path: Path) -> None:
    xml = (
        '#-Source 1: <node name="sourceInfo" path="/1/sourceInfo/">'
        '<attr key="dvsSizeX" type="short">240</attr>'
        '<attr key="dvsSizeY" type="short">180</attr></node>'
    )
    cases = [
        (w.header(extra_lines=[xml]), (240, 180, 2), "dvsSize"),
        (w.header({1: "DAVIS346B"}), (346, 260, 2), "source name"),
        (w.header({}), (128, 128, 2), "assumed"),
    ]
    for i, (head, size, why) in enumerate(cases):
        path = w.write_file(tmp_path / f"s{i}.aedat", [], head)
        reader = Aedat31Reader(path)
        assert reader.sensor_size == size
        assert why in reader.metadata["sensor_size_from"]


def test_lf_line_ends_are_accepted(tmp_path: Path) -> None:
    events = w.random_events(50)
    head = b"#!AER-DAT3.1\n#Format: RAW\n#!END-HEADER\n"
    path = w.write_file(tmp_path / "lf.aedat", w.polarity_packets(events, 20), head)
    np.testing.assert_array_equal(Aedat31Reader(path).read_all(), as_ours(events))


# -- malformed files ---------------------------------------------------------------------------
def good_file(tmp_path: Path) -> tuple[Path, np.ndarray, list[bytes]]:
    events = w.random_events(300, seed=11)
    packets = w.polarity_packets(events, 100)
    return w.write_file(tmp_path / "good.aedat", packets), events, packets


def raised(path: Path) -> EventFileError:
    """The EventFileError raised by opening and fully reading ``path``."""
    with pytest.raises(EventFileError) as info:
        reader = Aedat31Reader(path)
        for _ in reader.packets():
            pass
    assert str(path) in str(info.value)
    return info.value


@pytest.mark.parametrize(
    ("content", "offset", "message"),
    [
        (b"garbage\r\n", 0, "AER-DAT3.1"),
        (b"#!AER-DAT3.1\r\n#Format: RAW\r\n", 28, "END-HEADER"),
        (b"#!AER-DAT3.1\r\n#ok\r\nno hash\r\n#!END-HEADER\r\n", 19, "'#'"),
        (b"#!AER-DAT3.1\r\n" + b"#" + b"x" * (2 << 20), 14, "too long"),
    ],
)
def test_bad_text_headers(tmp_path: Path, content: bytes, offset: int, message: str) -> None:
    path = tmp_path / "bad.aedat"
    path.write_bytes(content)
    err = raised(path)
    assert err.offset == offset
    assert message in err.message


def test_truncated_final_packet_raises_after_the_good_packets(tmp_path: Path) -> None:
    path, events, packets = good_file(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-5])
    last = len(data) - len(packets[-1])
    reader = Aedat31Reader(path)
    got = []
    with pytest.raises(EventFileError, match="truncated packet") as info:
        for packet in reader.packets(max_events=100):
            got.append(packet)
    assert info.value.offset == last
    with pytest.raises(EventFileError):
        reader.read_all()
    # Whatever was yielded before the error is exactly the intact packets' events.
    np.testing.assert_array_equal(np.concatenate(got), as_ours(events[: len(np.concatenate(got))]))


def test_truncated_packet_header(tmp_path: Path) -> None:
    path, _, _ = good_file(tmp_path)
    size = path.stat().st_size
    with open(path, "ab") as f:
        f.write(b"\x01\x00\x01\x00\x08\x00")
    err = raised(path)
    assert err.offset == size
    assert "truncated packet header" in err.message


def patched_header(packets: list[bytes], i: int, **fields: int) -> list[bytes]:
    """Packets with header fields of packet ``i`` replaced."""
    names = ["type", "source", "size", "ts_offset", "overflow", "capacity", "number", "valid"]
    values = dict(zip(names, w.PACKET_HEADER.unpack_from(packets[i]), strict=True))
    values.update(fields)
    out = list(packets)
    out[i] = w.PACKET_HEADER.pack(*values.values()) + packets[i][w.PACKET_HEADER.size :]
    return out


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"capacity": -1}, "negative"),
        ({"number": -3}, "negative"),
        ({"size": 0}, "negative or zero"),
        ({"size": -8}, "negative or zero"),
        ({"number": 101}, "inconsistent"),
        ({"valid": 101}, "inconsistent"),
        ({"size": 12}, "8 bytes"),
        ({"overflow": -1}, "tsOverflow"),
        ({"capacity": (1 << 31) - 1}, "truncated packet"),
        ({"type": 5, "size": (1 << 31) - 1}, "truncated packet"),
    ],
)
def test_bad_packet_headers(tmp_path: Path, fields: dict[str, int], message: str) -> None:
    _, _, packets = good_file(tmp_path)
    path = w.write_file(tmp_path / "badpk.aedat", patched_header(packets, 1, **fields))
    err = raised(path)
    assert err.offset == packets_offsets(packets)[1]
    assert message in err.message


def test_corrupt_sizes_fail_fast_in_the_index(tmp_path: Path) -> None:
    _, _, packets = good_file(tmp_path)
    path = w.write_file(tmp_path / "idx.aedat", patched_header(packets, 2, capacity=1 << 30))
    with pytest.raises(EventFileError) as info:
        Aedat31Reader(path).read_all(start_us=10)
    assert info.value.offset == packets_offsets(packets)[2]


def test_address_outside_the_sensor(tmp_path: Path) -> None:
    events = w.random_events(100)
    events["x"][50] = 200
    packets = w.polarity_packets(events, 40)
    path = w.write_file(tmp_path / "x.aedat", packets)
    err = raised(path)
    assert err.offset == packets_offsets(packets)[1] + 28 + 8 * 10  # event 50 = packet 1, #10
    assert "x=200" in err.message
    assert "outside the 128x128 sensor" in err.message


def test_backwards_time_is_an_error(tmp_path: Path) -> None:
    events = w.random_events(100, t0=1000)
    late, early = events[50:], events[:50]
    path = w.write_file(
        tmp_path / "back.aedat", w.polarity_packets(np.concatenate([late, early]), 50)
    )
    with pytest.raises(EventFileError, match="backwards"):
        Aedat31Reader(path).read_all()
    with pytest.raises(EventFileError, match="backwards"):
        collect(Aedat31Reader(path))


# -- cross-check with SpikingJelly's loader ----------------------------------------------------
def test_matches_spikingjelly_load_aedat_v3(tmp_path: Path) -> None:
    load_aedat_v3 = w.spikingjelly_load_aedat_v3()
    # SpikingJelly ignores the valid bit and reads all eventCapacity slots, so every event
    # here is valid and capacity == number; it does skip non-polarity packets by type.
    events = w.random_events(3000, seed=9, t0=(1 << 31) - 3000)
    packets = w.polarity_packets(events, 400)
    packets.insert(2, w.special_packet(np.array([5, 6])))
    packets.insert(4, w.imu6_packet(np.array([5, 6, 7])))
    path = w.write_file(tmp_path / "sj.aedat", packets)
    theirs = load_aedat_v3(str(path))
    ours = Aedat31Reader(path).read_all()
    for name in ("x", "y", "t"):
        np.testing.assert_array_equal(ours[name], theirs[name])
    np.testing.assert_array_equal(ours["p"], theirs["p"].astype(bool))
    assert (ours["t"] >= 1 << 31).any()


def test_negative_timestamp_names_the_event(tmp_path: Path) -> None:
    events = w.random_events(60)
    packets = w.polarity_packets(events, 30)
    raw = bytearray(b"".join(packets))
    at = len(packets[0]) + 28 + 8 * 7 + 4  # timestamp word of event 7 of packet 1
    raw[at : at + 4] = struct.pack("<i", -5)
    path = w.write_file(tmp_path / "neg.aedat", [bytes(raw)])
    err = raised(path)
    assert err.offset == len(w.header()) + at - 4
    assert "negative" in err.message


def test_full_read_all_fills_metadata(tmp_path: Path) -> None:
    path, expected, offsets = mixed_file(tmp_path, n=500)
    reader = Aedat31Reader(path)
    reader.read_all()
    assert reader.metadata["events"] == len(expected)
    assert reader.metadata["packets"] == len(offsets)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_mutated_files_decode_or_fail_cleanly(tmp_path: Path, data: st.DataObject) -> None:
    """Truncated or byte-flipped files give in-sensor, ordered events or one EventFileError."""
    path, _, _ = mixed_file(tmp_path, n=800, seed=4)
    raw = bytearray(path.read_bytes())
    cut = data.draw(st.integers(0, len(raw)), label="truncate_at")
    del raw[cut:]
    for pos in data.draw(st.lists(st.integers(0, max(0, cut - 1)), max_size=6), label="flips"):
        if raw:
            raw[pos] ^= data.draw(st.integers(1, 255), label="xor")
    path.write_bytes(bytes(raw))
    try:
        reader = Aedat31Reader(path)
        w_, h_, _ = reader.sensor_size
        got = collect(reader, max_events=100)
        np.testing.assert_array_equal(reader.read_all(), got)
        if len(got):
            assert got["x"].max() < w_ and got["y"].max() < h_
            assert np.all(np.diff(got["t"]) >= 0) and got["t"].min() >= 0
    except EventFileError as e:
        assert str(path) in str(e) and "\n" not in str(e)


def test_file_shrinking_after_open_is_an_error(tmp_path: Path) -> None:
    path, _, _ = mixed_file(tmp_path)
    data = path.read_bytes()
    for read in (lambda r: r.read_all(), lambda r: collect(r), lambda r: r.packet_index()):
        path.write_bytes(data)
        reader = Aedat31Reader(path)
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(EventFileError, match="changed while reading"):
            read(reader)
