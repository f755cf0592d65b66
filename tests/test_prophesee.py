"""Prophesee EVT2 / EVT3 / DAT readers against expelliarmus' own decode, its reference .npy,
a spec-based EVT2 encoder, and corrupted copies of the real samples."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from expelliarmus import Wizard

from dvsapp.errors import EventFileError
from dvsapp.events.detect import detect_format
from dvsapp.events.readers.prophesee import (
    DatReader,
    Evt2Reader,
    Evt3Reader,
    header_sensor,
    parse_header,
)

EVT2_SAMPLES = {"evt2_sample.raw": 539_481, "evt2.raw": 521_252}


def assert_same_events(ours: np.ndarray, ref: np.ndarray) -> None:
    """Field by field against an expelliarmus-dtype array (t, x, y, p as 0/1)."""
    assert len(ours) == len(ref)
    for f in ("x", "y", "t"):
        np.testing.assert_array_equal(ours[f], ref[f], err_msg=f)
    np.testing.assert_array_equal(ours["p"], ref["p"] == 1)


def wizard_read(path: Path, encoding: str) -> np.ndarray:
    return Wizard(encoding=encoding, fpath=path).read()


def finishes(fn: Callable[[], object], seconds: float = 20.0) -> BaseException | None:
    """Run ``fn`` in a thread (ctypes calls release the GIL); fail the test if it hangs.
    Returns the exception it raised, if any."""
    box: list[BaseException] = []

    def target() -> None:
        try:
            fn()
        except BaseException as e:
            box.append(e)

    th = threading.Thread(target=target, daemon=True)
    th.start()
    th.join(seconds)
    assert not th.is_alive(), "reader hung"
    return box[0] if box else None


# -- a spec-based EVT2 encoder (Prophesee "EVT 2.0 format": 32-bit little-endian words) ----
def encode_evt2(events: np.ndarray, header: bytes = b"% evt 2.0\n% geometry 640x480\n") -> bytes:
    """CD_ON (0x1) / CD_OFF (0x0): type<<28 | t[5:0]<<22 | x<<11 | y, after a TIME_HIGH
    (0x8 << 28 | t[33:6]) whenever the upper time bits change."""
    words, high = [], None
    for x, y, t, p in zip(events["x"], events["y"], events["t"], events["p"], strict=True):
        t = int(t) % (1 << 34)
        if t >> 6 != high:
            high = t >> 6
            words.append((0x8 << 28) | high)
        words.append((int(p) << 28) | ((t & 63) << 22) | (int(x) << 11) | int(y))
    return header + np.array(words, dtype="<u4").tobytes()


def random_events(n: int, seed: int, w: int = 640, h: int = 480, t0: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, dtype=[("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])
    ev["x"], ev["y"] = rng.integers(0, w, n), rng.integers(0, h, n)
    ev["t"] = t0 + np.cumsum(rng.integers(0, 200, n))
    ev["p"] = rng.random(n) < 0.5
    return ev


# -- real samples ---------------------------------------------------------------------
def test_evt3_sample_equals_reference_npy(samples_dir: Path) -> None:
    reader = Evt3Reader(samples_dir / "evt3_sample.raw")
    assert reader.sensor_size == (1280, 720, 2)
    assert reader.metadata["sensor_size_source"] == "plugin_name"
    assert_same_events(reader.read_all(), np.load(samples_dir / "evt3_sample.npy"))


@pytest.mark.parametrize("name", sorted(EVT2_SAMPLES))
def test_evt2_samples_equal_expelliarmus(samples_dir: Path, name: str) -> None:
    reader = Evt2Reader(samples_dir / name)
    events = reader.read_all()
    assert len(events) == EVT2_SAMPLES[name]
    assert reader.sensor_size == (640, 480, 2)
    assert_same_events(events, wizard_read(samples_dir / name, "evt2"))


def test_dat_sample(samples_dir: Path) -> None:
    reader = DatReader(samples_dir / "sample_ncars.dat")
    events = reader.read_all()
    assert len(events) == 2009 and int(events["p"].sum()) == 1350
    assert reader.sensor_size == (304, 240, 2)  # ATIS default: the header has no size
    assert reader.metadata["dat_event_type"] == "Event2D"
    assert_same_events(events, wizard_read(samples_dir / "sample_ncars.dat", "dat"))


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("evt2_sample.raw", Evt2Reader),
        ("evt2.raw", Evt2Reader),
        ("evt3_sample.raw", Evt3Reader),
        ("sample_ncars.dat", DatReader),
    ],
)
def test_detection(samples_dir: Path, name: str, cls: type) -> None:
    assert detect_format(samples_dir / name) is cls
    head = (samples_dir / name).read_bytes()[:65536]
    others = {Evt2Reader, Evt3Reader, DatReader} - {cls}
    assert not any(o.sniff(head) for o in others)


@pytest.mark.parametrize(
    ("name", "cls", "max_events"),
    [
        ("evt2_sample.raw", Evt2Reader, 9_973),
        ("evt3_sample.raw", Evt3Reader, 4_999),
        ("sample_ncars.dat", DatReader, 97),
    ],
)
def test_small_packets_equal_read_all(samples_dir: Path, name: str, cls: type, max_events: int):
    reader = cls(samples_dir / name)
    packets = list(reader.packets(max_events=max_events))
    assert max(len(p) for p in packets) <= max_events
    np.testing.assert_array_equal(np.concatenate(packets), reader.read_all())


def test_evt3_tiny_chunks_split_vector_words(samples_dir: Path, tmp_path: Path) -> None:
    """Chunks smaller than one EVT3 vector word (12 events) still give every event once."""
    data = (samples_dir / "evt3_sample.raw").read_bytes()
    path = tmp_path / "cut.raw"
    path.write_bytes(data[: 166 + 2 * 6000])
    full = Evt3Reader(path).read_all()
    for n in (1, 5, 13):
        packets = list(Evt3Reader(path).packets(max_events=n))
        assert max(len(p) for p in packets) <= n
        np.testing.assert_array_equal(np.concatenate(packets), full)


@pytest.mark.parametrize(
    ("name", "cls"),
    [("evt2.raw", Evt2Reader), ("evt3_sample.raw", Evt3Reader), ("sample_ncars.dat", DatReader)],
)
def test_seek_equals_filtering(samples_dir: Path, name: str, cls: type) -> None:
    reader = cls(samples_dir / name)
    full = reader.read_all()
    t = full["t"]
    for start in (
        int(t[0]),
        int(t[len(t) // 3]),
        int(t[len(t) // 2]) + 1,
        int(t[-1]),
        int(t[-1]) + 1,
    ):
        np.testing.assert_array_equal(
            np.concatenate([*reader.packets(start_us=start, max_events=20_000), full[:0]]),
            full[t >= start],
        )


def test_file_name_extension_does_not_matter(samples_dir: Path, tmp_path: Path) -> None:
    """expelliarmus' Wizard refuses names not ending in .raw; detection is by content."""
    path = tmp_path / "recording.bin"
    path.write_bytes((samples_dir / "evt3_sample.raw").read_bytes())
    assert detect_format(path) is Evt3Reader
    assert len(Evt3Reader(path).read_all()) == 219_596


# -- synthetic EVT2 -------------------------------------------------------------------
def test_evt2_decode_equals_spec_encoder(tmp_path: Path) -> None:
    events = random_events(5000, seed=1)
    path = tmp_path / "synth.raw"
    path.write_bytes(encode_evt2(events))
    reader = Evt2Reader(path)
    assert reader.sensor_size == (640, 480, 2)
    assert reader.metadata["sensor_size_source"] == "geometry"
    np.testing.assert_array_equal(reader.read_all(), events)


def test_evt2_34_bit_clock_wrap_is_unwrapped(tmp_path: Path) -> None:
    events = random_events(3000, seed=2, t0=(1 << 34) - 100_000)
    assert events["t"][-1] > 1 << 34  # crosses the wrap
    path = tmp_path / "wrap.raw"
    path.write_bytes(encode_evt2(events))  # the encoder keeps 34 bits, as a camera does
    for n in (1000, 1 << 17):
        got = np.concatenate(list(Evt2Reader(path).packets(max_events=n)))
        np.testing.assert_array_equal(got, events)


def test_unknown_geometry_is_scanned(tmp_path: Path) -> None:
    events = random_events(2000, seed=3, w=300, h=200)
    path = tmp_path / "nogeom.raw"
    path.write_bytes(encode_evt2(events, header=b"% evt 2.0\n% plugin_name mystery\n"))
    reader = Evt2Reader(path)
    want = (int(events["x"].max()) + 1, int(events["y"].max()) + 1, 2)
    assert reader.sensor_size == want
    assert reader.metadata["sensor_size_source"].startswith("scan")


@pytest.mark.parametrize(
    ("lines", "size", "source"),
    [
        ([b"evt 3.0", b"geometry 1280x720"], (1280, 720), "geometry"),
        ([b"format EVT3;height=480;width=640"], (640, 480), "format"),
        (
            [b"Data file containing Event2D events", b"Width 1280", b"Height 720"],
            (1280, 720),
            "width/height",
        ),
        ([b"evt 2.0", b"plugin_name hal_plugin_gen31_fx3"], (640, 480), "plugin_name"),
        ([b"evt 3.0", b"plugin_name hal_plugin_imx636_evk4"], (1280, 720), "plugin_name"),
        ([b"evt 3.0", b"plugin_name hal_plugin_gen4_evk2"], (1280, 720), "plugin_name"),
        ([b"evt 3.0", b"plugin_name other"], None, ""),
    ],
)
def test_header_sensor(lines: list[bytes], size: tuple[int, int] | None, source: str) -> None:
    header = parse_header(b"".join(b"% " + ln + b"\n" for ln in lines) + b"\x00\x01")
    assert header is not None
    assert header_sensor(header) == (size, source)


def test_header_sniffing() -> None:
    assert Evt3Reader.sniff(b"% format EVT3;height=720;width=1280\n% end\n\x00")
    assert Evt2Reader.sniff(b"% format EVT2;height=480;width=640\n% end\n\x00")
    assert not Evt2Reader.sniff(b"% format EVT21;height=720;width=1280\n% end\n")  # EVT 2.1
    assert not Evt2Reader.sniff(b"% evt 2.0")  # the header does not end
    assert DatReader.sniff(b"% Data file containing Event2D events.\n% Version 2\n\x00\x08")
    assert not DatReader.sniff(b"% Data file containing Event2D events.\n\x00\x10")  # size 16


# -- corrupt and truncated ------------------------------------------------------------
@pytest.mark.parametrize("cut", [5, 60, 163])
def test_truncated_inside_header_fails_without_hanging(samples_dir: Path, tmp_path: Path, cut: int):
    """expelliarmus' own header skipper loops forever on these files."""
    path = tmp_path / "cut.raw"
    path.write_bytes((samples_dir / "evt2_sample.raw").read_bytes()[:cut])
    err = finishes(lambda: Evt2Reader(path).read_all())
    assert isinstance(err, EventFileError) and "header" in str(err)


@pytest.mark.parametrize(
    ("name", "cls", "encoding", "cut", "unit"),
    [
        ("evt2_sample.raw", Evt2Reader, "evt2", 2, 4),
        ("evt3_sample.raw", Evt3Reader, "evt3", 1, 2),
        ("sample_ncars.dat", DatReader, "dat", 3, 8),
    ],
)
def test_partial_last_word_raises_after_the_whole_ones(
    samples_dir: Path, tmp_path: Path, name: str, cls: type, encoding: str, cut: int, unit: int
) -> None:
    data = (samples_dir / name).read_bytes()
    good = tmp_path / f"good{Path(name).suffix}"
    good.write_bytes(data[: len(data) - unit])  # one whole unit shorter: still valid
    bad = tmp_path / f"bad{Path(name).suffix}"
    bad.write_bytes(data[: len(data) - cut])
    got: list[np.ndarray] = []
    with pytest.raises(EventFileError, match="truncated") as info:
        got.extend(cls(bad).packets())
    assert info.value.offset == len(data) - unit
    np.testing.assert_array_equal(np.concatenate(got), cls(good).read_all())


def test_unknown_word_type_is_located(samples_dir: Path, tmp_path: Path) -> None:
    data = bytearray((samples_dir / "evt2_sample.raw").read_bytes())
    at = 164 + 4 * 70_001
    data[at + 3] = (data[at + 3] & 0x0F) | 0x90  # type nibble 0x9: not an EVT2 word
    path = tmp_path / "bad.raw"
    path.write_bytes(bytes(data))
    err = finishes(lambda: Evt2Reader(path).read_all())
    assert isinstance(err, EventFileError)
    assert "word type 0x9" in str(err) and err.offset == at


def test_event_outside_sensor_raises(samples_dir: Path, tmp_path: Path) -> None:
    data = bytearray((samples_dir / "evt2_sample.raw").read_bytes())
    words = np.frombuffer(bytes(data[164:]), dtype="<u4").copy()
    i = int(np.flatnonzero((words >> 28) == 1)[1000])
    words[i] = (words[i] & ~np.uint32(0x7FF << 11)) | np.uint32(700 << 11)  # x = 700 >= 640
    path = tmp_path / "oob.raw"
    path.write_bytes(bytes(data[:164]) + words.tobytes())
    with pytest.raises(EventFileError, match="outside the 640x480 sensor"):
        Evt2Reader(path).read_all()


def test_dat_bad_polarity_and_event_type(samples_dir: Path, tmp_path: Path) -> None:
    data = bytearray((samples_dir / "sample_ncars.dat").read_bytes())
    start = 91 + 2
    bad_p = bytearray(data)
    bad_p[start + 8 * 10 + 7] |= 0x50  # polarity nibble 5 in event 10
    path = tmp_path / "p.dat"
    path.write_bytes(bytes(bad_p))
    with pytest.raises(EventFileError) as info:
        DatReader(path).read_all()
    assert info.value.offset == start + 8 * 10
    bad_type = bytearray(data)
    bad_type[91] = 0x0E
    path.write_bytes(bytes(bad_type))
    with pytest.raises(EventFileError, match="unsupported DAT events"):
        DatReader(path)


def test_random_corruption_never_hangs_or_escapes(samples_dir: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    data = (samples_dir / "evt3_sample.raw").read_bytes()[:120_000]
    for k in range(12):
        mutated = bytearray(data)
        for i in rng.integers(166, len(data), 6):
            mutated[i] = int(rng.integers(256))
        path = tmp_path / f"m{k}.raw"
        path.write_bytes(bytes(mutated))
        err = finishes(lambda p=path: Evt3Reader(p).read_all())
        assert err is None or isinstance(err, EventFileError), err


def test_corrupt_file_gives_only_our_one_line_on_stderr(tmp_path: Path) -> None:
    """expelliarmus' C decoder prints "ERROR: event type not recognised" on fd 2 before it
    fails; `dvsapp info` must show only its own one-line error (a fresh process: fd level)."""
    import subprocess
    import sys

    header = b"% evt 2.0\n% geometry 640x480\n"
    data = bytearray(encode_evt2(random_events(5000, seed=5), header=header))
    at = len(header) + 4 * 3001
    data[at + 3] = (data[at + 3] & 0x0F) | 0x90  # type nibble 0x9: not an EVT2 word
    path = tmp_path / "bad.raw"
    path.write_bytes(bytes(data))
    r = subprocess.run(
        [sys.executable, "-m", "dvsapp", "info", str(path)], capture_output=True, text=True
    )
    assert r.returncode == 2
    assert r.stderr.splitlines() == [r.stderr.strip()], r.stderr
    assert r.stderr.startswith("dvsapp: error: ") and "word type 0x9" in r.stderr
    assert "not recognised" not in r.stderr
