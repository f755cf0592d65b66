"""AEDAT 3.1 (cAER / libcaer) reader, the format of the IBM DVS128 Gesture recordings.

Layout (libcaer ``include/libcaer/events/common.h`` and ``polarity.h``):

* A text header of lines starting with ``#``, the first ``#!AER-DAT3.1`` and the last
  ``#!END-HEADER`` (CRLF line ends; LF is accepted). cAER writes ``#Format: RAW``,
  ``#Source <id>: <name>`` and ``#Start-Time: ...``; some versions add the source's
  configuration as XML comment lines (``<attr key="dvsSizeX" ...>128</attr>``).
* Then packets: a 28-byte little-endian header ``int16 eventType, int16 eventSource,
  int32 eventSize, int32 eventTSOffset, int32 eventTSOverflow, int32 eventCapacity,
  int32 eventNumber, int32 eventValid`` followed by ``eventCapacity * eventSize`` bytes of
  events, of which the first ``eventNumber`` are in use.
* Polarity events (type 1, 8 bytes): ``uint32 data`` then ``int32 timestamp``; data bit 0 is
  the valid mark, bit 1 the polarity (1 = ON), bits 2-16 y, bits 17-31 x. The full time is
  ``eventTSOverflow << 31 | timestamp`` in microseconds.

We keep valid polarity events only and skip every other packet type (special events, frames,
IMU, ...). ``p=True`` is ON, as in libcaer, so polarity needs no conversion.

Orientation: we take x and y as stored, with row y = 0 at the top (our convention). libcaer
>= 2.0.1 (March 2017) documents the polarity origin as the upper-left corner ("like in
OpenCV/computer graphics"); libcaer 1.x documented it as lower-left ("like in OpenGL") and its
DVS128 driver did not flip y, so recordings made with cAER on libcaer 1.x may be upside down
relative to the scene. We do not flip: SpikingJelly (``datasets.utils.load_aedat_v3`` plus its
frame integration) and tonic (``io.read_dvs_ibm`` and the ``DVSGesture`` ``.npy`` files) both use
the stored x, y with y as the row index and no flip, so our frames equal the frames models are
trained on with those libraries. Both libraries also ignore the valid bit; we honour it.

Sensor size comes from the header when it says (``dvsSizeX``/``dvsSizeY`` XML attributes, else a
known ``#Source`` name such as DVS128 or DAVIS346); otherwise it defaults to 128x128, the
DVS128 Gesture sensor (``metadata["sensor_size_from"]`` says which).

Streaming reads a bounded chunk (4 MiB) of packets at a time, walks their headers and decodes
all their polarity events in one vectorised pass. Seeking (and ``read_all``, which sizes its one
output array from it) uses an index of the polarity packets' offsets, first timestamps and event
counts, built once by walking only the packet headers. AEDAT 3.0 files are refused with a clear
error (only 3.1 is checked against libcaer). Corrupt data raises EventFileError naming the byte
offset of the bad packet or event; the intact packets before it are delivered first.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Iterator
from typing import Any, ClassVar, NamedTuple

import numpy as np

from dvsapp.errors import EventFileError
from dvsapp.events.dvsgesture import labels_path_for, parse_labels_csv
from dvsapp.events.readers.base import DEFAULT_PACKET_EVENTS, EventReader
from dvsapp.events.types import EVENT_DTYPE, SensorSize

MAGIC = b"#!AER-DAT3.1"
#: Any AEDAT 3.x: sniffed so that a 3.0 file gets a clear "unsupported version" error.
MAGIC_3X = b"#!AER-DAT3."
HEADER_END = b"#!END-HEADER"
PACKET_HEADER = struct.Struct("<hhiiiiii")
PACKET_HEADER_BYTES = PACKET_HEADER.size  # 28
POLARITY_EVENT = 1
POLARITY_EVENT_BYTES = 8
TS_OVERFLOW_SHIFT = 31
#: Bytes of packets decoded at once while streaming.
CHUNK_BYTES = 4 << 20
#: Bytes read at once while walking packet headers for the seek index.
INDEX_CHUNK_BYTES = 64 << 10
#: Limits on the text header, so a garbled file cannot make us read it all as one "line".
MAX_HEADER_LINE = 1 << 20
MAX_HEADER_BYTES = 16 << 20
DEFAULT_SENSOR_SIZE: SensorSize = (128, 128, 2)
#: Polarity addresses have 15 bits.
MAX_ADDRESS = 1 << 15
#: Sensor sizes of libcaer devices by ``#Source`` name prefix (``caer_*_info.dvsSize{X,Y}``).
SOURCE_SIZES: dict[str, tuple[int, int]] = {
    "DVS128": (128, 128),
    "EDVS": (128, 128),
    "DAVIS240": (240, 180),
    "DAVIS346": (346, 260),
    "DAVIS640": (640, 480),
}
_SIZE_ATTR = {
    axis: re.compile(rb'key="dvsSize' + axis + rb'"[^>]*>\s*(\d+)\s*<') for axis in (b"X", b"Y")
}
_SOURCE_LINE = re.compile(r"^#-?Source (\d+): *(.*)$")


class _Packet(NamedTuple):
    """One packet header, validated, at ``offset`` in the file."""

    offset: int
    type: int
    size: int
    overflow: int
    capacity: int
    number: int

    @property
    def end(self) -> int:
        return self.offset + PACKET_HEADER_BYTES + self.capacity * self.size

    @property
    def events_offset(self) -> int:
        return self.offset + PACKET_HEADER_BYTES


class Aedat31Reader(EventReader):
    """Streaming, vectorised reader of AEDAT 3.1 polarity events (DVS128 Gesture)."""

    format_name: ClassVar[str] = "aedat3.1"
    description: ClassVar[str] = "AEDAT 3.1 (cAER/libcaer event packets; DVS128 Gesture)"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        try:
            self._file_size = os.path.getsize(self.path)
            with open(self.path, "rb") as f:
                lines, self._data_start = _read_header(self.path, f)
        except FileNotFoundError:
            raise EventFileError(self.path, "no such file") from None
        except IsADirectoryError:
            raise EventFileError(self.path, "is a directory, not a recording") from None
        except OSError as e:
            raise EventFileError(self.path, f"cannot read: {e.strerror or e}") from None
        self.sensor_size, size_from = _sensor_size(lines)
        self.metadata = _header_metadata(lines)
        self.metadata.update(
            sensor_size_from=size_from, data_offset=self._data_start, file_bytes=self._file_size
        )
        csv = labels_path_for(self.path)
        if csv.is_file():
            self.labels = parse_labels_csv(csv)
            self.metadata["labels_file"] = csv.name
        self._index: PacketIndex | None = None

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head.startswith(MAGIC_3X)

    # -- streaming -------------------------------------------------------------------
    def _iter_packets(
        self, start_us: int | None, max_events: int = DEFAULT_PACKET_EVENTS
    ) -> Iterator[tuple[np.ndarray, int | None]]:
        pos = self._start_offset(start_us)
        trimming = start_us is not None
        stats = _Stats()
        with open(self.path, "rb") as f:
            for events, offset in self._decoded_chunks(f, pos, stats, _Sink()):
                if trimming:
                    events = events[events["t"] >= start_us]
                    trimming = len(events) == 0
                for i in range(0, len(events), max_events):
                    yield events[i : i + max_events], offset
        if start_us is None:
            self.metadata.update(stats.as_dict())

    def read_all(self, start_us: int | None = None, end_us: int | None = None) -> np.ndarray:
        """As :meth:`EventReader.read_all` (same order checks), but decodes straight into one
        array sized from the packet headers: no per-packet arrays and no final join."""
        pos = self._start_offset(start_us)
        sink = _Sink(np.empty(self._events_from(pos), EVENT_DTYPE), self.path)
        lo = hi = 0
        last: int | None = None
        stats = _Stats()
        with open(self.path, "rb") as f:
            for events, offset in self._decoded_chunks(f, pos, stats, sink):
                t = events["t"]
                last = _check_order(self.path, t, last, offset)
                if start_us is not None and hi == lo:
                    lo += int(np.count_nonzero(t < start_us))
                hi = sink.used
                if end_us is not None and last >= end_us:
                    hi -= int(np.count_nonzero(t >= end_us))
                    break
            else:
                if start_us is None:
                    self.metadata.update(stats.as_dict())
        return sink.buffer[lo:hi]

    def _decoded_chunks(
        self, f: Any, pos: int, stats: _Stats, sink: _Sink
    ) -> Iterator[tuple[np.ndarray, int]]:
        """Decoded valid polarity events, one bounded chunk of packets at a time."""
        buf = bytearray(CHUNK_BYTES)
        view = np.frombuffer(buf, np.uint8)
        while pos < self._file_size:
            f.seek(pos)
            n = self._read_exactly(f, buf, min(len(buf), self._file_size - pos), pos)
            packets, stop = self._walk(buf, n, pos)
            pieces = [pk for pk in packets if pk.type == POLARITY_EVENT and pk.number > 0]
            if pieces and pieces[-1].events_offset + 8 * pieces[-1].number > pos + n:
                big = pieces.pop()  # its events straddle the end of the chunk
                if not pieces and big.offset == pos:
                    stats.add([big])
                    yield from self._decode_big(f, big, view, stats, sink)
                    pos = big.end
                    continue
                stop = big.offset  # decode it with the next chunk
            stats.add([pk for pk in packets if pk.offset < stop])
            if pieces:
                events = self._decode(view, pos, pieces, sink)
                stats.valid_events += len(events)
                yield events, pieces[0].offset
            pos = stop

    def _decode_big(
        self, f: Any, pk: _Packet, view: np.ndarray, stats: _Stats, sink: _Sink
    ) -> Iterator[tuple[np.ndarray, int]]:
        """A polarity packet larger than the chunk buffer, decoded a buffer's worth at a time."""
        step = len(view) // POLARITY_EVENT_BYTES
        for first in range(0, pk.number, step):
            count = min(step, pk.number - first)
            start = pk.events_offset + first * POLARITY_EVENT_BYTES
            f.seek(start)
            self._read_exactly(f, memoryview(view), count * POLARITY_EVENT_BYTES, start)
            part = pk._replace(offset=start - PACKET_HEADER_BYTES, capacity=count, number=count)
            events = self._decode(view, start, [part], sink)
            stats.valid_events += len(events)
            yield events, start

    def _read_exactly(self, f: Any, buf: bytearray | memoryview, n: int, pos: int) -> int:
        """Read ``n`` bytes into ``buf``; a short read means the file shrank after opening."""
        got = f.readinto(memoryview(buf)[:n])
        if got != n:
            raise EventFileError(self.path, "file ended early (changed while reading?)", pos + got)
        return n

    def _walk(self, buf: bytearray, n: int, pos: int) -> tuple[list[_Packet], int]:
        """Validated headers of the packets whose header lies in ``buf[:n]`` (read at file
        offset ``pos``), and the offset of the first packet not walked."""
        packets = []
        rel = 0
        size = self._file_size
        while rel + PACKET_HEADER_BYTES <= n:
            try:
                pk = _check_packet(self.path, PACKET_HEADER.unpack_from(buf, rel), pos + rel, size)
            except EventFileError:
                if packets:  # deliver the good packets first; the next walk starts here
                    return packets, pos + rel
                raise
            packets.append(pk)
            rel = pk.end - pos
        at = pos + rel
        if not packets and at < size and at + PACKET_HEADER_BYTES > size:
            raise EventFileError(
                self.path, f"truncated packet header ({size - at} of 28 bytes)", at
            )
        return packets, at

    def _decode(self, view: np.ndarray, pos: int, pieces: list[_Packet], sink: _Sink) -> np.ndarray:
        """Valid polarity events of ``pieces`` (packets whose events lie in ``view``, which
        holds the file from offset ``pos``), written to the sink's next slots. Temporaries
        live in the sink's reused scratch arrays: fresh ones cost a page fault per 4 KiB."""
        counts = [pk.number for pk in pieces]
        total = sum(counts)
        raw_buf, tmp, xs, ys = sink.scratch(total)
        slices = [view[pk.events_offset - pos :][: 8 * pk.number] for pk in pieces]
        raw = slices[0] if len(slices) == 1 else np.concatenate(slices, out=raw_buf[: 8 * total])
        words = raw.view("<u4")
        data, ts = words[0::2], words[1::2].view("<i4")
        valid = None
        if not np.bitwise_and(data, 1, out=tmp[:total]).all():
            valid = tmp[:total].astype(bool)
            data, ts = data[valid], ts[valid]
        m = len(data)
        x = np.right_shift(data, 17, out=xs[:m])
        y = np.bitwise_and(np.right_shift(data, 2, out=ys[:m]), 0x7FFF, out=ys[:m])
        self._check_events(x, y, ts, pieces, valid)
        out = sink.take(m)
        out["x"] = x
        out["y"] = y
        out["p"] = np.bitwise_and(data, 2, out=tmp[:m])
        overflow = np.array([pk.overflow for pk in pieces], np.int64)
        if overflow.any():
            high = np.repeat(overflow << TS_OVERFLOW_SHIFT, counts)
            out["t"] = (high if valid is None else high[valid]) | ts
        else:
            out["t"] = ts
        return out

    def _check_events(
        self,
        x: np.ndarray,
        y: np.ndarray,
        ts: np.ndarray,
        pieces: list[_Packet],
        valid: np.ndarray | None,
    ) -> None:
        """Raise, naming the event's byte offset, on an address outside the sensor or a
        negative timestamp (corrupt data)."""
        if len(x) == 0:
            return
        w, h, _ = self.sensor_size
        if int(x.max()) < w and int(y.max()) < h and int(ts.min()) >= 0:
            return
        i = int(np.argmax((x >= w) | (y >= h) | (ts < 0)))
        raw_i = i if valid is None else int(np.flatnonzero(valid)[i])
        offset = _event_offset(pieces, raw_i)
        if ts[i] < 0:
            raise EventFileError(self.path, f"negative event timestamp {int(ts[i])}", offset)
        raise EventFileError(
            self.path,
            f"event address x={int(x[i])}, y={int(y[i])} outside the {w}x{h} sensor "
            f"(size {self.metadata['sensor_size_from']})",
            offset,
        )

    # -- seeking ---------------------------------------------------------------------
    def packet_index(self) -> PacketIndex:
        """Offsets, first full timestamps and event counts of the non-empty polarity packets;
        built once by walking the packet headers only."""
        if self._index is None:
            rows = []
            stats = _Stats()
            with open(self.path, "rb") as f:
                for pk, t in self._first_timestamps(f, stats):
                    rows.append((pk.offset, t, pk.number))
            table = np.array(rows, np.int64).reshape(-1, 3)
            self._index = PacketIndex(table[:, 0], table[:, 1], table[:, 2])
            self.metadata.update(stats.as_dict(events=False))
        return self._index

    def _first_timestamps(self, f: Any, stats: _Stats) -> Iterator[tuple[_Packet, int]]:
        """Every non-empty polarity packet with its first event's full time (headers only)."""
        buf = bytearray(INDEX_CHUNK_BYTES)
        pos = self._data_start
        while pos < self._file_size:
            f.seek(pos)
            n = self._read_exactly(f, buf, min(len(buf), self._file_size - pos), pos)
            packets, stop = self._walk(buf, n, pos)
            stats.add(packets)
            for pk in packets:
                if pk.type == POLARITY_EVENT and pk.number > 0:
                    ts = self._first_ts(f, buf, n, pos, pk)
                    yield pk, (pk.overflow << TS_OVERFLOW_SHIFT) | ts
            pos = stop

    def _first_ts(self, f: Any, buf: bytearray, n: int, pos: int, pk: _Packet) -> int:
        """The first event's 32-bit timestamp of ``pk``, from ``buf`` (the file from ``pos``)
        or from the file."""
        rel = pk.events_offset - pos + 4
        if rel + 4 <= n:
            return struct.unpack_from("<i", buf, rel)[0]
        f.seek(pk.events_offset + 4)
        word = bytearray(4)
        self._read_exactly(f, word, 4, pk.events_offset + 4)
        return struct.unpack("<i", word)[0]

    def _start_offset(self, start_us: int | None) -> int:
        """Where to start reading for ``start_us``: the last polarity packet whose first event
        is before it (every earlier packet holds only earlier events: times never decrease)."""
        if start_us is None:
            return self._data_start
        index = self.packet_index()
        if len(index.first_t) == 0 or np.any(np.diff(index.first_t) < 0):
            return self._data_start  # no usable index: read from the start and filter
        i = int(np.searchsorted(index.first_t, start_us, side="left")) - 1
        return int(index.offsets[i]) if i >= 0 else self._data_start

    def _events_from(self, pos: int) -> int:
        """Upper bound on the valid polarity events from file offset ``pos`` on."""
        index = self.packet_index()
        return int(index.events[index.offsets >= pos].sum())


def read_aedat31(
    path: str | os.PathLike[str], start_us: int | None = None, end_us: int | None = None
) -> np.ndarray:
    """All valid polarity events of an AEDAT 3.1 file in ``[start_us, end_us)`` (for benchmarks
    and scripts)."""
    with Aedat31Reader(path) as reader:
        return reader.read_all(start_us, end_us)


class PacketIndex(NamedTuple):
    """Per non-empty polarity packet: file offset, first event's full time, eventNumber."""

    offsets: np.ndarray
    first_t: np.ndarray
    events: np.ndarray


class _Sink:
    """Where decoded events go: consecutive slots of one preallocated array, or fresh arrays."""

    def __init__(
        self, buffer: np.ndarray | None = None, path: os.PathLike[str] | None = None
    ) -> None:
        self.buffer = buffer
        self.path = path
        self.used = 0
        self._scratch: tuple[np.ndarray, ...] = ()

    def scratch(self, n: int) -> tuple[np.ndarray, ...]:
        """Reused work arrays for ``n`` events: raw bytes, then three uint32 arrays."""
        if not self._scratch or len(self._scratch[1]) < n:
            n = max(n, CHUNK_BYTES // POLARITY_EVENT_BYTES)
            self._scratch = (np.empty(8 * n, np.uint8), *(np.empty(n, np.uint32) for _ in range(3)))
        return self._scratch

    def take(self, n: int) -> np.ndarray:
        if self.buffer is None:
            return np.empty(n, EVENT_DTYPE)
        if self.used + n > len(self.buffer):
            raise EventFileError(
                self.path or "", "more events than indexed (changed while reading?)"
            )
        out = self.buffer[self.used : self.used + n]
        self.used += n
        return out


def _event_offset(pieces: list[_Packet], i: int) -> int:
    """File offset of the ``i``-th event of the concatenated ``pieces``."""
    ends = np.cumsum([pk.number for pk in pieces])
    k = int(np.searchsorted(ends, i, side="right"))
    before = int(ends[k - 1]) if k else 0
    return pieces[k].events_offset + POLARITY_EVENT_BYTES * (i - before)


def _check_order(
    path: os.PathLike[str], t: np.ndarray, last: int | None, offset: int
) -> int | None:
    """The last time of ``t``, after checking that times never go backwards (as
    :meth:`EventReader.packets` does)."""
    if len(t) == 0:
        return last
    if last is not None and t[0] < last:
        raise EventFileError(
            path, f"timestamps go backwards ({int(t[0])} us after {last} us)", offset
        )
    back = np.flatnonzero(t[1:] < t[:-1])
    if len(back):
        i = int(back[0])
        raise EventFileError(
            path, f"timestamps go backwards ({int(t[i + 1])} us after {int(t[i])} us)", offset
        )
    return int(t[-1])


# -- packet headers ------------------------------------------------------------------------
def _check_packet(
    path: os.PathLike[str], fields: tuple[int, ...], offset: int, file_size: int
) -> _Packet:
    """A validated packet header; raises EventFileError naming ``offset`` on bad sizes."""
    etype, _source, size, ts_off, overflow, capacity, number, valid = fields

    def fail(msg: str) -> EventFileError:
        return EventFileError(path, f"bad packet header (type {etype}): {msg}", offset)

    if size <= 0 or capacity < 0 or number < 0 or valid < 0:
        raise fail(
            f"negative or zero size/count (size={size}, capacity={capacity}, "
            f"number={number}, valid={valid})"
        )
    if number > capacity or valid > number:
        raise fail(f"inconsistent counts (capacity={capacity}, number={number}, valid={valid})")
    if overflow < 0:
        raise fail(f"negative tsOverflow {overflow}")
    if not 0 <= ts_off <= size - 4:
        raise fail(f"timestamp offset {ts_off} outside the {size}-byte event")
    if etype == POLARITY_EVENT and (size != POLARITY_EVENT_BYTES or ts_off != 4):
        raise fail(f"polarity events are 8 bytes with the timestamp at 4, not {size} and {ts_off}")
    end = offset + PACKET_HEADER_BYTES + capacity * size
    if end > file_size:
        raise EventFileError(
            path,
            f"truncated packet (type {etype}): its {capacity} x {size}-byte events need "
            f"{capacity * size} bytes, only {file_size - offset - PACKET_HEADER_BYTES} remain",
            offset,
        )
    return _Packet(offset, etype, size, overflow, capacity, number)


class _Stats:
    """Packet and event counts of one full pass, for ``metadata``."""

    def __init__(self) -> None:
        self.packets = 0
        self.polarity_packets = 0
        self.polarity_slots = 0
        self.valid_events = 0
        self.other_types: dict[int, int] = {}

    def add(self, packets: list[_Packet]) -> None:
        for pk in packets:
            self.packets += 1
            if pk.type == POLARITY_EVENT:
                self.polarity_packets += 1
                self.polarity_slots += pk.number
            else:
                self.other_types[pk.type] = self.other_types.get(pk.type, 0) + 1

    def as_dict(self, events: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "packets": self.packets,
            "polarity_packets": self.polarity_packets,
            "other_packets_by_type": {str(k): v for k, v in sorted(self.other_types.items())},
        }
        if events:
            out["events"] = self.valid_events
            out["invalid_events_skipped"] = self.polarity_slots - self.valid_events
        return out


# -- text header ---------------------------------------------------------------------------
def _read_header(path: os.PathLike[str], f: Any) -> tuple[list[str], int]:
    """The header lines (without line ends) and the offset of the first packet."""
    lines: list[str] = []
    offset = 0
    while True:
        raw = f.readline(MAX_HEADER_LINE + 1)
        if not raw:
            raise EventFileError(
                path, "header has no '#!END-HEADER' line (file ends inside the header)", offset
            )
        if not lines and not raw.startswith(MAGIC):
            first = raw[:40].rstrip(b"\r\n").decode("latin-1")
            raise EventFileError(path, f"expected '#!AER-DAT3.1' as first line, got {first!r}", 0)
        if not raw.startswith(b"#"):
            raise EventFileError(path, "garbled header: a line does not start with '#'", offset)
        if len(raw) > MAX_HEADER_LINE or offset + len(raw) > MAX_HEADER_BYTES:
            raise EventFileError(path, "garbled header: line or header too long", offset)
        lines.append(raw.rstrip(b"\r\n").decode("latin-1"))
        offset += len(raw)
        if raw.rstrip(b"\r\n") == HEADER_END:
            return lines, offset


def _header_metadata(lines: list[str]) -> dict[str, Any]:
    meta: dict[str, Any] = {"version": "3.1", "header_lines": len(lines)}
    sources = {}
    for line in lines:
        m = _SOURCE_LINE.match(line)
        if m and "<" not in m.group(2):
            sources[m.group(1)] = m.group(2).strip()
        elif line.startswith("#Format:"):
            meta["format"] = line.partition(":")[2].strip()
        elif line.startswith("#Start-Time:"):
            meta["start_time"] = line.partition(":")[2].strip()
    if sources:
        meta["sources"] = sources
    return meta


def _sensor_size(lines: list[str]) -> tuple[SensorSize, str]:
    """(sensor size, where it came from): XML size attributes, a known source, or the default."""
    text = "\n".join(lines).encode("latin-1")
    found = [_SIZE_ATTR[a].search(text) for a in (b"X", b"Y")]
    if found[0] and found[1]:
        w, h = int(found[0].group(1)), int(found[1].group(1))
        if 0 < w <= MAX_ADDRESS and 0 < h <= MAX_ADDRESS:
            return (w, h, 2), "from the header's dvsSizeX/dvsSizeY"
    for line in lines:
        m = _SOURCE_LINE.match(line)
        name = m.group(2).strip() if m else ""
        for prefix, (w, h) in SOURCE_SIZES.items():
            if name.upper().startswith(prefix):
                return (w, h, 2), f"from the header's source name {name!r}"
    return DEFAULT_SENSOR_SIZE, "assumed: DVS128 Gesture default, the header names no known size"
