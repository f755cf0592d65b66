"""AEDAT 2.0 (jAER) reader: real DVS128 and DAVIS-header files, synthetic DAVIS/DVS128 files
encoded here from known events (the reverse of the decoder), streaming, seeking, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dvsapp.errors import EventFileError
from dvsapp.events.readers.aedat2 import CIFAR10_CLASSES, INDEX_STRIDE, Aedat2Reader
from dvsapp.events.types import EVENT_DTYPE, LabelSegment

DAVIS346 = "eu.seebetter.ini.chips.davis.Davis346red"


# -- writing test files --------------------------------------------------------------------
def header_bytes(
    chip: str | None = None, newline: bytes = b"\r\n", extra: tuple[str, ...] = ()
) -> bytes:
    lines = [
        "#!AER-DAT2.0",
        "# This is a raw AE data file - do not edit",
        "# Timestamps tick: 1 us",
    ]
    lines += ["# Creation time: System.currentTimeMillis() 1234567890123"]
    if chip is not None:
        lines.append(f"# AEChip: {chip}")
    lines += list(extra)
    return b"".join(line.encode() + newline for line in lines)


def write_aedat2(path: Path, addr: np.ndarray, ts: np.ndarray, header: bytes) -> Path:
    records = np.empty((len(addr), 2), dtype=">u4")
    records[:, 0] = np.asarray(addr, dtype=np.int64) & 0xFFFFFFFF
    records[:, 1] = np.asarray(ts, dtype=np.int64) & 0xFFFFFFFF
    path.write_bytes(header + records.tobytes())
    return path


def expected(x: np.ndarray, y: np.ndarray, t: np.ndarray, p: np.ndarray) -> np.ndarray:
    out = np.empty(len(t), dtype=EVENT_DTYPE)
    out["x"], out["y"], out["t"], out["p"] = x, y, t, p
    return out


def dvs128_addresses(x: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Our (x, y, p) encoded the way jAER's DVS128 extractor reads them back."""
    x_raw, y_raw = 127 - np.asarray(x, np.int64), 127 - np.asarray(y, np.int64)
    return (y_raw << 8) | (x_raw << 1) | (~np.asarray(p, bool)).astype(np.int64)


def davis_addresses(x, y, p, width: int, height: int) -> np.ndarray:
    """Our (x, y, p) encoded as jAER DAVIS DVS addresses (x and y mirrored, bit 11 = ON)."""
    x_raw, y_raw = width - 1 - np.asarray(x, np.int64), height - 1 - np.asarray(y, np.int64)
    return (y_raw << 22) | (x_raw << 12) | (np.asarray(p, np.int64) << 11)


def random_events(rng: np.random.Generator, n: int, width: int, height: int) -> np.ndarray:
    t = 1_000 + np.cumsum(rng.integers(0, 40, n))
    x, y = rng.integers(0, width, n), rng.integers(0, height, n)
    return expected(x, y, t, rng.integers(0, 2, n).astype(bool))


def davis_file(tmp_path: Path, rng: np.random.Generator, n: int, chip: str, w: int, h: int):
    """A DAVIS recording mixing DVS, APS, IMU and external-input records; (path, DVS events)."""
    ev = random_events(rng, n, w, h)
    dvs = davis_addresses(ev["x"], ev["y"], ev["p"], w, h)
    kind = rng.integers(0, 10, n)  # 0-5 DVS, 6-7 APS, 8 IMU, 9 external input
    adc = rng.integers(0, 1024, n)
    aps = (1 << 31) | (rng.integers(0, h, n) << 22) | (rng.integers(0, w, n) << 12) | adc
    aps |= rng.integers(0, 2, n) << 10  # reset/signal read cycle
    imu = 0x80000C00 | (rng.integers(0, 7, n) << 28) | (rng.integers(0, 1 << 16, n) << 12)
    ext = (1 << 10) | (rng.integers(0, 2, n) << 11) | rng.integers(0, 4, n) << 1
    addr = np.select([kind <= 5, kind <= 7, kind == 8], [dvs, aps, imu], ext)
    path = write_aedat2(tmp_path / "davis.aedat", addr, ev["t"], header_bytes(chip))
    return path, ev[kind <= 5]


# -- the real samples ------------------------------------------------------------------------
def test_moving_dark_box_counts(samples_dir: Path) -> None:
    with Aedat2Reader(samples_dir / "MovingDarkBox.aedat") as reader:
        ev = reader.read_all()
        assert reader.sensor_size == (128, 128, 2)
        assert reader.metadata["chip"] == "DVS128" and reader.metadata["aechip"] is None
        assert reader.metadata["header_bytes"] == 216
        assert reader.labels == []
    assert ev.dtype == EVENT_DTYPE
    assert len(ev) == 489_834
    assert int(ev["t"][-1] - ev["t"][0]) == 39_810_046
    assert int(ev["p"].sum()) == 246_923
    assert ev["x"].min() == 0 and ev["x"].max() == 127
    assert ev["y"].min() == 0 and ev["y"].max() == 127
    assert np.all(np.diff(ev["t"]) >= 0)


def test_moving_dark_box_equals_tonic_decode(samples_dir: Path) -> None:
    tonic_io = pytest.importorskip("tonic.io")
    path = str(samples_dir / "MovingDarkBox.aedat")
    version, start, _ = tonic_io.read_aedat_header_from_file(path)
    raw = tonic_io.get_aer_events_from_file(path, version, start)
    a = raw["address"].astype(np.int64)
    # jAER DVS128: x = 127 - bits 1-7, row from the bottom = bits 8-14, raw bit 0 == 0 is ON.
    ref = expected(127 - ((a >> 1) & 0x7F), 127 - ((a >> 8) & 0x7F), raw["timeStamp"], a & 1 == 0)
    ev = Aedat2Reader(path).read_all()
    np.testing.assert_array_equal(ev, ref)


def test_davis346_header_only_sample(samples_dir: Path) -> None:
    reader = Aedat2Reader(samples_dir / "sample_aedat_header.aedat")
    assert reader.sensor_size == (346, 260, 2)
    assert reader.metadata["chip"] == "DAVIS346"
    assert reader.metadata["aechip"] == DAVIS346
    assert reader.metadata["creation_time_ms"] == 1_695_355_587_880
    assert reader.metadata["records"] == 0
    assert list(reader.packets()) == []
    assert len(reader.read_all()) == 0
    assert len(reader.read_all(start_us=10)) == 0


def test_sniff(samples_dir: Path) -> None:
    assert Aedat2Reader.sniff((samples_dir / "MovingDarkBox.aedat").read_bytes()[:4096])
    assert Aedat2Reader.sniff((samples_dir / "sample_aedat_header.aedat").read_bytes())
    assert not Aedat2Reader.sniff((samples_dir / "sample.aedat4").read_bytes()[:4096])
    assert not Aedat2Reader.sniff(b"#!AER-DAT3.1\r\n#Format: RAW\r\n")
    assert not Aedat2Reader.sniff(b"#!AER-DAT1.0\r\n")


# -- synthetic DAVIS and DVS128 ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("chip", "w", "h"),
    [
        (DAVIS346, 346, 260),
        ("eu.seebetter.ini.chips.davis.Davis346B", 346, 260),
        ("eu.seebetter.ini.chips.davis.DAVIS240C", 240, 180),
        ("eu.seebetter.ini.chips.davis.Davis640", 640, 480),
    ],
)
def test_davis_keeps_only_dvs_events(tmp_path: Path, chip: str, w: int, h: int) -> None:
    rng = np.random.default_rng(w)
    path, ref = davis_file(tmp_path, rng, 20_000, chip, w, h)
    reader = Aedat2Reader(path)
    assert reader.sensor_size == (w, h, 2)
    np.testing.assert_array_equal(reader.read_all(), ref)


def test_davis_orientation_corners(tmp_path: Path) -> None:
    # jAER shows raw (0, 0) at x = W-1 on the bottom row: ours is the bottom-right pixel.
    w, h = 346, 260
    raw_xy = [(0, 0), (w - 1, 0), (0, h - 1), (w - 1, h - 1)]
    addr = [(ry << 22) | (rx << 12) | (1 << 11) for rx, ry in raw_xy]
    path = write_aedat2(tmp_path / "c.aedat", addr, [1, 2, 3, 4], header_bytes(DAVIS346, b"\n"))
    ev = Aedat2Reader(path).read_all()
    assert list(zip(ev["x"].tolist(), ev["y"].tolist(), strict=True)) == [
        (w - 1, h - 1),
        (0, h - 1),
        (w - 1, 0),
        (0, 0),
    ]
    assert ev["p"].all()


def test_dvs128_drops_special_events(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ev = random_events(rng, 5_000, 128, 128)
    addr = dvs128_addresses(ev["x"], ev["y"], ev["p"])
    special = rng.random(len(ev)) < 0.1
    addr[special] |= np.where(rng.random(special.sum()) < 0.5, 0x8000, 0x80000000)
    path = write_aedat2(tmp_path / "s.aedat", addr, ev["t"], header_bytes())
    np.testing.assert_array_equal(Aedat2Reader(path).read_all(), ev[~special])


def test_dvs128_aechip_and_lf_header(tmp_path: Path) -> None:
    ev = random_events(np.random.default_rng(2), 100, 128, 128)
    header = header_bytes("ch.unizh.ini.jaer.chip.retina.DVS128", b"\n")
    path = write_aedat2(
        tmp_path / "d.aedat", dvs128_addresses(ev["x"], ev["y"], ev["p"]), ev["t"], header
    )
    reader = Aedat2Reader(path)
    assert reader.metadata["chip"] == "DVS128" and reader.metadata["header_bytes"] == len(header)
    np.testing.assert_array_equal(reader.read_all(), ev)


def test_binary_data_starting_with_hash_is_not_header(tmp_path: Path) -> None:
    # A DAVIS address whose first big-endian byte is '#' (0x23): the record is not text.
    addr = davis_addresses([100], [259 - 140], [1], 346, 260)
    assert addr[0] >> 24 == 0x23
    path = write_aedat2(tmp_path / "h.aedat", addr, [5], header_bytes(DAVIS346))
    ev = Aedat2Reader(path).read_all()
    assert ev.tolist() == [(100, 119, 5, True)]


def test_end_of_ascii_header_line_is_honoured(tmp_path: Path) -> None:
    # Eight bytes that read as a printable '#' line: only the terminator marks them as data.
    record = b"#AB\x00\x00\x00\x00\n"
    header = header_bytes("eu.seebetter.ini.chips.davis.Davis640", extra=("#End Of ASCII Header",))
    path = tmp_path / "e.aedat"
    path.write_bytes(header + record)
    a = int.from_bytes(record[:4], "big")
    ev = Aedat2Reader(path).read_all()
    assert ev.tolist() == [(639 - ((a >> 12) & 0x3FF), 479 - (a >> 22), 10, bool(a >> 11 & 1))]


# -- streaming and seeking -------------------------------------------------------------------
@pytest.fixture(scope="module")
def mixed_davis(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    tmp = tmp_path_factory.mktemp("davis")
    return davis_file(tmp, np.random.default_rng(3), 5 * INDEX_STRIDE + 123, DAVIS346, 346, 260)


@pytest.mark.parametrize("max_events", [1, 7, 1000, 1 << 17])
def test_small_packets_equal_read_all(mixed_davis, max_events: int) -> None:
    path, ref = mixed_davis
    packets = list(Aedat2Reader(path).packets(max_events=max_events))
    assert all(0 < len(p) <= max_events for p in packets)
    np.testing.assert_array_equal(np.concatenate(packets), ref)


def test_seek_equals_filtering(mixed_davis) -> None:
    path, ref = mixed_davis
    reader = Aedat2Reader(path)
    t = ref["t"]
    starts = [
        None,
        -5,
        0,
        int(t[0]),
        int(t[1]),
        int(t[len(t) // 3]) + 1,
        int(t[-1]),
        int(t[-1]) + 1,
    ]
    starts += [int(v) for v in np.random.default_rng(4).choice(t, 20)]
    for start in starts:
        want = ref if start is None else ref[t >= start]
        for max_events in (333, 1 << 17):
            got = list(reader.packets(start_us=start, max_events=max_events))
            np.testing.assert_array_equal(
                np.concatenate(got) if got else ref[:0], want, err_msg=f"start_us={start}"
            )


def test_read_all_window(mixed_davis) -> None:
    path, ref = mixed_davis
    t0, t1 = int(ref["t"][1000]), int(ref["t"][9000])
    got = Aedat2Reader(path).read_all(start_us=t0, end_us=t1)
    np.testing.assert_array_equal(got, ref[(ref["t"] >= t0) & (ref["t"] < t1)])


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(0, 300),
    max_events=st.integers(1, 50),
    seed=st.integers(0, 2**32 - 1),
    start=st.one_of(st.none(), st.integers(0, 15_000)),
)
def test_dvs128_roundtrip_property(tmp_path_factory, n, max_events, seed, start) -> None:
    rng = np.random.default_rng(seed)
    ev = random_events(rng, n, 128, 128)
    path = tmp_path_factory.mktemp("prop") / "p.aedat"
    write_aedat2(path, dvs128_addresses(ev["x"], ev["y"], ev["p"]), ev["t"], header_bytes())
    packets = list(Aedat2Reader(path).packets(start_us=start, max_events=max_events))
    got = np.concatenate(packets) if packets else ev[:0]
    np.testing.assert_array_equal(got, ev if start is None else ev[ev["t"] >= start])


# -- timestamps ------------------------------------------------------------------------------
def test_timestamp_wrap_is_unwrapped(tmp_path: Path) -> None:
    n = 3 * INDEX_STRIDE
    t = (1 << 32) - 2 * INDEX_STRIDE * 3 + 3 * np.arange(n, dtype=np.int64)  # crosses 2^32
    ev = expected(np.full(n, 5), np.full(n, 6), t, np.ones(n, bool))
    path = write_aedat2(tmp_path / "w.aedat", dvs128_addresses(5, 6, [True] * n), t, header_bytes())
    reader = Aedat2Reader(path)
    np.testing.assert_array_equal(reader.read_all(), ev)
    for start in (int(t[100]), (1 << 32) - 1, 1 << 32, int(t[-50])):
        np.testing.assert_array_equal(reader.read_all(start_us=start), ev[t >= start])


def test_timestamps_going_backwards_raise_with_offset(tmp_path: Path) -> None:
    t = np.arange(20) * 10
    t[10] = 5  # a backwards step, far too small to be a 32-bit wrap
    header = header_bytes()
    path = write_aedat2(
        tmp_path / "b.aedat", dvs128_addresses([1] * 20, [2] * 20, [1] * 20), t, header
    )
    with pytest.raises(EventFileError, match="backwards") as info:
        list(Aedat2Reader(path).packets(max_events=4))
    assert info.value.offset == len(header) + 8 * 8  # the packet holding records 8-11


# -- errors ----------------------------------------------------------------------------------
def test_truncated_body_names_offset(tmp_path: Path) -> None:
    header = header_bytes()
    path = write_aedat2(tmp_path / "t.aedat", [2, 4, 6], [1, 2, 3], header)
    path.write_bytes(path.read_bytes() + b"\x00\x00\x01\x02\x00")
    with pytest.raises(EventFileError, match="truncated") as info:
        Aedat2Reader(path)
    assert info.value.offset == len(header) + 24
    assert str(path) in str(info.value) and f"(at byte {len(header) + 24})" in str(info.value)


def test_truncated_real_file(samples_dir: Path, tmp_path: Path) -> None:
    path = tmp_path / "cut.aedat"
    path.write_bytes((samples_dir / "MovingDarkBox.aedat").read_bytes()[: 216 + 8 * 1000 + 3])
    with pytest.raises(EventFileError) as info:
        Aedat2Reader(path)
    assert info.value.offset == 216 + 8 * 1000


@pytest.mark.parametrize(
    ("content", "offset", "message"),
    [
        (b"", 0, "AER-DAT2.0"),
        (b"\x00\x00\x00\x01\x00\x00\x00\x02", 0, "AER-DAT2.0"),
        (b"#!AER-DAT3.1\r\n", 0, "not 2.x"),
        (b"#!AER-DAT2.0", 0, "AER-DAT2.0"),
        (b"#!AER-DAT2.0\r\n# This is a raw AE data file - do n", 14, "header ends"),
    ],
)
def test_bad_header(tmp_path: Path, content: bytes, offset: int, message: str) -> None:
    path = tmp_path / "bad.aedat"
    path.write_bytes(content)
    with pytest.raises(EventFileError, match=message) as info:
        Aedat2Reader(path)
    assert info.value.offset == offset
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(EventFileError, match="cannot read"):
        Aedat2Reader(tmp_path / "nope.aedat")


def test_unsupported_aechip(tmp_path: Path) -> None:
    header = header_bytes("ch.unizh.ini.jaer.chip.dvs320.DVS320")
    path = write_aedat2(tmp_path / "u.aedat", [0], [0], header)
    with pytest.raises(EventFileError, match="unsupported AEChip") as info:
        Aedat2Reader(path)
    assert info.value.offset == header.index(b"# AEChip")


def test_davis_address_beyond_sensor(tmp_path: Path) -> None:
    addr = davis_addresses(np.arange(10), np.zeros(10), np.ones(10), 346, 260)
    addr = np.insert(addr, 3, 0x80000000 | (999 << 12))  # APS record: not checked
    addr[7] = (259 << 22) | (346 << 12)  # DVS x_raw = 346 on a 346-wide chip
    header = header_bytes(DAVIS346)
    path = write_aedat2(tmp_path / "x.aedat", addr, np.arange(11), header)
    with pytest.raises(EventFileError, match="outside the DAVIS346") as info:
        Aedat2Reader(path).read_all()
    assert info.value.offset == len(header) + 7 * 8


def test_dvs128_address_with_high_bits(tmp_path: Path) -> None:
    addr = dvs128_addresses(np.arange(6), np.arange(6), np.ones(6))
    addr[4] |= 1 << 20
    header = header_bytes()
    path = write_aedat2(tmp_path / "hb.aedat", addr, np.arange(6), header)
    with pytest.raises(EventFileError, match="not DVS128") as info:
        Aedat2Reader(path).read_all()
    assert info.value.offset == len(header) + 4 * 8


# -- CIFAR10-DVS labels ------------------------------------------------------------------------
def test_cifar10_classes() -> None:
    assert CIFAR10_CLASSES == (
        "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("relpath", "label"),
    [
        ("cifar10_dog_7.aedat", LabelSegment(5, "dog", 100, 501)),
        ("truck/cifar10_truck_999.aedat", LabelSegment(9, "truck", 100, 501)),
        ("airplane/0.aedat", LabelSegment(0, "airplane", 100, 501)),
        ("recordings/box.aedat", None),
        ("cifar10_unicorn_1.aedat", None),
    ],
)
def test_cifar10_label(tmp_path: Path, relpath: str, label: LabelSegment | None) -> None:
    path = tmp_path / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    write_aedat2(
        path, dvs128_addresses([1] * 5, [2] * 5, [1] * 5), np.arange(100, 600, 100), header_bytes()
    )
    assert Aedat2Reader(path).labels == ([] if label is None else [label])


def test_davis_file_in_class_folder_has_no_label(tmp_path: Path) -> None:
    (tmp_path / "cat").mkdir()
    addr = davis_addresses([1], [1], [1], 346, 260)
    path = write_aedat2(tmp_path / "cat" / "rec.aedat", addr, [7], header_bytes(DAVIS346))
    assert Aedat2Reader(path).labels == []
