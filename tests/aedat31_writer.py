"""A small AEDAT 3.1 writer for tests, written from libcaer's headers, not from our reader.

Layout (libcaer ``events/common.h``, ``polarity.h``, ``special.h``, ``imu6.h``):

* text header: ``#`` lines ending with CRLF, first ``#!AER-DAT3.1``, last ``#!END-HEADER``;
* packets: a 28-byte little-endian header ``int16 eventType, int16 eventSource, int32 eventSize,
  int32 eventTSOffset, int32 eventTSOverflow, int32 eventCapacity, int32 eventNumber,
  int32 eventValid``, then ``eventCapacity * eventSize`` bytes of events (slots past
  ``eventNumber`` are unused and zeroed here);
* polarity event (type 1, 8 bytes): ``uint32 data`` (bit 0 valid, bit 1 polarity ON, bits 2-16 y,
  bits 17-31 x) then ``int32 timestamp``; full time = ``tsOverflow << 31 | timestamp``;
* special event (type 0, 8 bytes): ``uint32 data`` (bit 0 valid, bits 1-7 type, bits 8-31 data),
  ``int32 timestamp``;
* IMU6 event (type 3, 36 bytes): ``uint32 info`` (bit 0 valid), ``int32 timestamp``, 7 float32
  (accel x/y/z, gyro x/y/z, temperature).
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

SPECIAL, POLARITY, IMU6 = 0, 1, 3
PACKET_HEADER = struct.Struct("<hhiiiiii")
TS_OVERFLOW_SHIFT = 31
TS_MASK = (1 << TS_OVERFLOW_SHIFT) - 1


def header(
    sources: dict[int, str] | None = None,
    extra_lines: Sequence[str] = (),
    start_time: str = "2017-01-01 12:00:00 (TZ+0000)",
) -> bytes:
    """A cAER-style text header (CRLF line ends)."""
    sources = {1: "DVS128"} if sources is None else sources
    lines = ["#!AER-DAT3.1", "#Format: RAW"]
    lines += [f"#Source {k}: {v}" for k, v in sources.items()]
    lines += [f"#Start-Time: {start_time}", *extra_lines, "#!END-HEADER"]
    return "".join(f"{line}\r\n" for line in lines).encode("ascii")


def packet(
    event_type: int,
    event_size: int,
    ts_overflow: int,
    body: bytes,
    number: int,
    valid: int,
    capacity: int | None = None,
    source: int = 1,
    ts_offset: int = 4,
) -> bytes:
    """One packet: header plus ``body`` padded with zeros to ``capacity * event_size`` bytes."""
    capacity = number if capacity is None else capacity
    head = PACKET_HEADER.pack(
        event_type, source, event_size, ts_offset, ts_overflow, capacity, number, valid
    )
    padded = body + bytes(max(0, capacity * event_size - len(body)))
    return head + padded


def _split_overflow(t: np.ndarray) -> tuple[int, np.ndarray]:
    t = np.asarray(t, dtype=np.int64)
    overflow = t >> TS_OVERFLOW_SHIFT
    if len(t) and overflow.min() != overflow.max():
        raise ValueError("events of one packet must share one tsOverflow")
    return (int(overflow[0]) if len(t) else 0), (t & TS_MASK).astype("<i4")


def polarity_packet(
    x: np.ndarray,
    y: np.ndarray,
    t: np.ndarray,
    p: np.ndarray,
    valid: np.ndarray | None = None,
    capacity: int | None = None,
    source: int = 1,
) -> bytes:
    """A polarity packet for full 64-bit times ``t`` (all with the same ``t >> 31``)."""
    n = len(t)
    valid = np.ones(n, bool) if valid is None else np.asarray(valid, bool)
    overflow, ts = _split_overflow(t)
    data = (
        (np.asarray(x, np.uint32) << 17)
        | (np.asarray(y, np.uint32) << 2)
        | (np.asarray(p, np.uint32) << 1)
        | valid.astype(np.uint32)
    )
    words = np.empty((n, 2), "<u4")
    words[:, 0] = data
    words[:, 1] = ts.view("<u4")
    return packet(POLARITY, 8, overflow, words.tobytes(), n, int(valid.sum()), capacity, source)


def special_packet(
    t: np.ndarray, kinds: np.ndarray | None = None, capacity: int | None = None
) -> bytes:
    """A special-event packet (type 0, 8-byte events), all valid."""
    n = len(t)
    kinds = np.full(n, 2, np.uint32) if kinds is None else np.asarray(kinds, np.uint32)
    overflow, ts = _split_overflow(t)
    words = np.empty((n, 2), "<u4")
    words[:, 0] = (kinds << 1) | 1
    words[:, 1] = ts.view("<u4")
    return packet(SPECIAL, 8, overflow, words.tobytes(), n, n, capacity)


def imu6_packet(t: np.ndarray, capacity: int | None = None) -> bytes:
    """An IMU6 packet (type 3, 36-byte events), all valid, with made-up sensor values."""
    n = len(t)
    overflow, ts = _split_overflow(t)
    dtype = np.dtype([("info", "<u4"), ("ts", "<i4"), ("values", "<f4", (7,))])
    ev = np.zeros(n, dtype)
    ev["info"] = 1
    ev["ts"] = ts
    ev["values"] = np.arange(7, dtype=np.float32) + 0.5
    return packet(IMU6, 36, overflow, ev.tobytes(), n, n, capacity)


def polarity_packets(
    events: np.ndarray, per_packet: int, valid: np.ndarray | None = None, capacity_extra: int = 0
) -> list[bytes]:
    """Split structured events (fields x, y, t, p) into polarity packets of at most
    ``per_packet`` events, also breaking wherever ``t >> 31`` changes."""
    valid = np.ones(len(events), bool) if valid is None else valid
    overflow = events["t"] >> TS_OVERFLOW_SHIFT
    breaks = set(range(0, len(events), per_packet)) | set(np.flatnonzero(np.diff(overflow)) + 1)
    edges = [*sorted(b for b in breaks if b < len(events)), len(events)]
    out = []
    for a, b in itertools.pairwise(edges):
        e = events[a:b]
        out.append(
            polarity_packet(
                e["x"], e["y"], e["t"], e["p"], valid[a:b], capacity=b - a + capacity_extra
            )
        )
    return out


def write_file(path: str | Path, packets: Iterable[bytes], head: bytes | None = None) -> Path:
    """Write a header (default :func:`header`) and the packets; returns the path."""
    path = Path(path)
    with open(path, "wb") as f:
        f.write(header() if head is None else head)
        for pk in packets:
            f.write(pk)
    return path


def random_events(
    n: int, seed: int = 0, t0: int = 0, width: int = 128, height: int = 128
) -> np.ndarray:
    """``n`` random events (x, y, t, p) with non-decreasing times from ``t0`` (mean step 2 us)."""
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, [("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])
    ev["x"] = rng.integers(0, width, n)
    ev["y"] = rng.integers(0, height, n)
    ev["t"] = t0 + np.cumsum(rng.integers(0, 5, n))
    ev["p"] = rng.integers(0, 2, n).astype(bool)
    return ev


def write_large(path: str | Path, n_events: int, per_packet: int = 4096, seed: int = 0) -> Path:
    """A large all-valid DVS128 file built without a per-packet loop (for benchmarks)."""
    ev = random_events(n_events, seed)
    n_full, rest = divmod(n_events, per_packet)
    words_per = 7 + 2 * per_packet
    grid = np.zeros((n_full, words_per), "<u4")
    head = np.frombuffer(
        PACKET_HEADER.pack(POLARITY, 1, 8, 4, 0, per_packet, per_packet, per_packet), "<u4"
    )
    grid[:, :7] = head
    data = (ev["x"].astype(np.uint32) << 17) | (ev["y"].astype(np.uint32) << 2)
    data |= (ev["p"].astype(np.uint32) << 1) | 1
    body = grid[:, 7:].reshape(n_full, per_packet, 2)
    m = n_full * per_packet
    body[:, :, 0] = data[:m].reshape(n_full, per_packet)
    body[:, :, 1] = ev["t"][:m].astype(np.uint32).reshape(n_full, per_packet)
    packets = [grid.tobytes()]
    if rest:
        e = ev[m:]
        packets.append(polarity_packet(e["x"], e["y"], e["t"], e["p"]))
    return write_file(path, packets)


def spikingjelly_load_aedat_v3() -> Callable[..., dict]:
    """SpikingJelly's own ``load_aedat_v3``, compiled from its installed source (importing
    ``spikingjelly.datasets`` needs torchvision, loguru and matplotlib, not installed): the
    independent AEDAT 3.1 decoder our reader and writer are checked against."""
    import ast
    import importlib.util
    from typing import Union

    import pytest

    spec = importlib.util.find_spec("spikingjelly")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("spikingjelly is not installed")
    source = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "utils.py"
    tree = ast.parse(source.read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "load_aedat_v3")
    namespace = {"struct": struct, "np": np, "Union": Union, "Path": Path}
    exec(compile(ast.Module([fn], []), str(source), "exec"), namespace)
    return namespace["load_aedat_v3"]
