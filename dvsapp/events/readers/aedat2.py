"""AEDAT 2.0 (jAER) reader: DVS128 recordings (CIFAR10-DVS) and DAVIS polarity events.

File layout
    A text header of ``#`` lines (CRLF or LF), the first being ``#!AER-DAT2.0``, then records
    of 8 bytes: big-endian int32 address, big-endian int32 timestamp (1 us ticks). The header
    ends at the first line that does not start with ``#`` or that is not printable text (jAER
    writes no terminator; newer writers add ``#End Of ASCII Header``, which is honoured).
    ``# AEChip: <java class>`` names the camera; without it (CIFAR10-DVS, jAER's own
    ``MovingDarkBox.aedat``) the file is read as DVS128.

DVS128 addresses (jAER ``ch.unizh.ini.jaer.chip.retina.DVS128.Extractor``)
    bit 0 polarity, bits 1-7 x, bits 8-14 y; bit 15 (sync) or bit 31 (special) mark special
    events, which are dropped; any of bits 16-30 set is not a DVS128 address (an error).
    jAER: ``type = 1 - bit0`` (raw 0 is ON), ``x = 127 - x_raw``, ``y = y_raw`` with the
    origin at the bottom-left (OpenGL). Ours (origin top-left, ``p=True`` ON):
    ``x = 127 - x_raw``, ``y = 127 - y_raw``, ``p = (bit0 == 0)``.

    The other decoders differ: SpikingJelly (``datasets/cifar10_dvs.py``) returns
    ``x = 127 - y_raw, y = 127 - x_raw, p = 1 - bit0``, i.e. our frame transposed; tonic 1.7.0
    ``io.read_dvs_128`` returns ``x = y_raw, y = x_raw, p = bit0`` (transposed, unflipped, and
    with ON/OFF swapped), and raises before that because of its 3-value header (issue #302).

DAVIS addresses (jAER ``eu.seebetter.ini.chips.DavisChip`` / ``DavisBaseCamera``)
    bit 31 set: APS (frame) sample, or IMU sample when bits 10-11 are also set
    (``ADDRESS_TYPE_IMU = 0x80000C00``). Bit 31 clear: DVS, where bit 10 set marks an external
    input (special) event. Polarity events: y bits 22-30, x bits 12-21, polarity bit 11
    (1 = ON). jAER: ``x = sizeX - 1 - x_raw``, ``y = y_raw`` (origin bottom-left). Ours:
    ``x = W - 1 - x_raw``, ``y = H - 1 - y_raw``, ``p = bit11`` (tonic's ``read_davis_346``
    agrees). Only polarity events are kept; an x or y beyond the chip is an error.

Timestamps
    Read as unsigned 32-bit. jAER's int32 clock wraps every 2^32 us (71.6 min); a drop of
    more than 3 * 2^30 (both sides within 2^30 us of the wrap point) counts as a wrap and adds
    2^32. Any other backwards step is left to :class:`EventReader` ("timestamps go
    backwards"). Wraps are detected over all records (DVS, APS, IMU) so that streaming and the
    seek index agree.

Chips
    DVS128 (``DVS128*``, ``Tmpdiff128``), DAVIS128, DAVIS208 (208x192), DAVIS240A/B/C and
    DVS240 (240x180), DAVIS346 and its variants (346x260), DAVIS640 (640x480). Any other
    AEChip (DavisRGBW640, SBret10, DVS320, ...) is refused with an EventFileError.

Streaming, seeking, errors
    The body is an ``np.memmap``, decoded in chunks of at least 65,536 records. A sparse
    index (every 4,096th record's timestamp, unwrapped) is searched to start a seek one
    stride before ``start_us``. A body that is not a whole number of records, a malformed
    header, or an address beyond the chip raises EventFileError with the byte offset.

CIFAR10-DVS
    A DVS128 file named ``cifar10_<class>_<n>.aedat`` or kept in a folder named after one of
    the :data:`CIFAR10_CLASSES` gets one :class:`LabelSegment` covering the recording.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dvsapp.errors import EventFileError
from dvsapp.events.readers.base import DEFAULT_PACKET_EVENTS, EventReader
from dvsapp.events.types import EVENT_DTYPE, LabelSegment

#: CIFAR-10 class names in label order (CIFAR10-DVS uses the same classes).
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

MAGIC = b"#!AER-DAT"
RECORD_BYTES = 8
#: Records per entry of the sparse seek index (32 KiB of file apart), at least.
INDEX_STRIDE = 1 << 12
#: Most entries in the seek index (bounds the pages it touches in very large files).
MAX_INDEX_ENTRIES = 1 << 16
#: Records decoded at once, at least (small ``max_events`` are served by splitting).
MIN_CHUNK_RECORDS = 1 << 16
#: Longest header line read before the data is taken to be binary.
MAX_HEADER_LINE = 1 << 20
MAX_HEADER_BYTES = 64 << 20
#: A timestamp drop larger than this is a wrap of jAER's 32-bit clock.
WRAP_DROP = 3 << 30

_NOT_TEXT = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_VERSION = re.compile(rb"^#!AER-DAT(\d+)\.(\d+)\s*$")
_AECHIP = re.compile(rb"^#\s*AEChip:\s*(\S+)")
_CREATION_MS = re.compile(rb"^#\s*Creation time:\s*System\.currentTimeMillis\(\)\s*(-?\d+)")
_CIFAR_NAME = re.compile(r"^cifar10_([a-z]+)_\d+\.aedat$", re.IGNORECASE)
_HEADER_END = b"#End Of ASCII Header"

# DAVIS masks (jAER DavisChip).
_DAVIS_NOT_DVS = 0x80000400  # bit 31 (APS/IMU) or bit 10 (external input) set
_DAVIS_XSHIFT, _DAVIS_XMASK = 12, 0x3FF
_DAVIS_YSHIFT = 22  # bits 22-30 (bit 31 is clear for kept events)
_DAVIS_POLSHIFT = 11


@dataclass(frozen=True)
class ChipLayout:
    """An address layout and the DVS pixel array it addresses."""

    name: str
    family: str  # "dvs128" or "davis"
    width: int
    height: int


DVS128 = ChipLayout("DVS128", "dvs128", 128, 128)

#: (prefix of the lower-cased simple class name, layout), first match wins.
_CHIP_PREFIXES: tuple[tuple[str, ChipLayout], ...] = (
    ("dvs128", DVS128),
    ("tmpdiff128", DVS128),
    ("davis346", ChipLayout("DAVIS346", "davis", 346, 260)),
    ("davis240", ChipLayout("DAVIS240", "davis", 240, 180)),
    ("dvs240", ChipLayout("DAVIS240", "davis", 240, 180)),
    ("davis640", ChipLayout("DAVIS640", "davis", 640, 480)),
    ("davis128", ChipLayout("DAVIS128", "davis", 128, 128)),
    ("davis208", ChipLayout("DAVIS208", "davis", 208, 192)),
)


def chip_layout(aechip: str | None) -> ChipLayout | None:
    """The layout for a jAER AEChip class name (DVS128 when absent); None when unknown."""
    if aechip is None:
        return DVS128
    simple = aechip.rsplit(".", 1)[-1].lower()
    for prefix, layout in _CHIP_PREFIXES:
        if simple.startswith(prefix):
            return layout
    return None


@dataclass
class Aedat2Header:
    """What the text header says, and where the binary records start."""

    version: str
    data_start: int
    aechip: str | None = None
    aechip_offset: int | None = None
    creation_time_ms: int | None = None
    lines: list[str] = field(default_factory=list)


def _is_header_line(line: bytes) -> bool:
    """A complete ``#`` line of printable text (anything else is binary data)."""
    if not line.startswith(b"#") or not line.endswith(b"\n"):
        return False
    body = line[:-2] if line.endswith(b"\r\n") else line[:-1]
    return _NOT_TEXT.search(body) is None


def _is_cut_header_line(line: bytes, f: Any) -> bool:
    """A printable ``#`` line without its newline at the end of the file."""
    if line.endswith(b"\n") or len(line) >= MAX_HEADER_LINE or f.read(1):
        return False
    return _NOT_TEXT.search(line.rstrip(b"\r")) is None


def read_header(path: str | os.PathLike[str]) -> Aedat2Header:
    """Parse the ``#`` header line by line (never reading the body); EventFileError if bad."""
    with open(path, "rb") as f:
        first = f.readline(MAX_HEADER_LINE)
        m = _VERSION.match(first.rstrip(b"\r\n"))
        if not first.endswith(b"\n") or m is None:
            raise EventFileError(path, "not an AEDAT 2.0 file: no '#!AER-DAT2.0' first line", 0)
        version = f"{int(m.group(1))}.{int(m.group(2))}"
        if m.group(1) != b"2":
            raise EventFileError(path, f"AEDAT version {version} is not 2.x", 0)
        header = Aedat2Header(version=version, data_start=len(first))
        _read_header_lines(f, path, header)
    return header


def _read_header_lines(f: Any, path: str | os.PathLike[str], header: Aedat2Header) -> None:
    """Consume the ``#`` lines after the first, filling ``header``."""
    pos = header.data_start
    while True:
        line = f.readline(MAX_HEADER_LINE)
        if not line.startswith(b"#"):
            break
        if not _is_header_line(line):
            if _is_cut_header_line(line, f):
                raise EventFileError(path, "header ends inside a '#' line (file truncated?)", pos)
            break
        _parse_header_line(line, pos, header)
        pos += len(line)
        if pos > MAX_HEADER_BYTES:
            raise EventFileError(path, "header longer than 64 MiB: not an AEDAT 2.0 file", pos)
        if line.rstrip(b"\r\n") == _HEADER_END:
            break
    header.data_start = pos


def _parse_header_line(line: bytes, pos: int, header: Aedat2Header) -> None:
    text = line.rstrip(b"\r\n")
    header.lines.append(text.decode("utf-8", errors="replace"))
    if (m := _AECHIP.match(text)) is not None:
        header.aechip = m.group(1).decode("ascii", errors="replace")
        header.aechip_offset = pos
    elif (m := _CREATION_MS.match(text)) is not None:
        header.creation_time_ms = int(m.group(1))


def cifar10_label(path: Path) -> tuple[int, str] | None:
    """CIFAR10-DVS class from ``cifar10_<class>_<n>.aedat`` or a class-named parent folder."""
    m = _CIFAR_NAME.match(path.name)
    candidates = [m.group(1).lower()] if m else []
    candidates.append(path.parent.name.lower())
    for name in candidates:
        if name in CIFAR10_CLASSES:
            return CIFAR10_CLASSES.index(name), name
    return None


# -- timestamps ---------------------------------------------------------------------------
class _Unwrapper:
    """Turns raw uint32 timestamps (as int64) into monotonic int64 across 2^32 wraps."""

    def __init__(self, wraps: int = 0, prev: int | None = None) -> None:
        self.wraps = wraps
        self.prev = prev

    def __call__(self, ts: np.ndarray) -> np.ndarray:
        """Unwrap ``ts`` in place (int64 raw values) and return it."""
        if len(ts) == 0:
            return ts
        inner = np.flatnonzero(ts[1:] + WRAP_DROP < ts[:-1])
        at_start = self.prev is not None and int(ts[0]) + WRAP_DROP < self.prev
        self.prev = int(ts[-1])
        if len(inner) or at_start:
            steps = np.zeros(len(ts), dtype=np.int64)
            steps[inner + 1] = 1
            steps[0] += int(at_start)
            w = np.cumsum(steps)
            w += self.wraps
            self.wraps = int(w[-1])
            ts += w << 32
        elif self.wraps:
            ts += self.wraps << 32
        return ts


def unwrap_index(ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unwrapped copies of sparse timestamps and the wrap count at each."""
    t = ts.astype(np.int64)
    steps = np.zeros(len(t), dtype=np.int64)
    steps[1:] = t[1:] + WRAP_DROP < t[:-1]
    wraps = np.cumsum(steps)
    return t + (wraps << 32), wraps


# -- address decoding ---------------------------------------------------------------------
class _BadRecord(Exception):
    """An impossible address at ``index`` (relative to the decoded chunk)."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.message = message


def decode_dvs128(raw: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Events from an (n, 8) uint8 view of big-endian records; ``keep`` mask when filtered."""
    keep = None
    if raw[:, :2].any() or (raw[:, 2] & 0x80).any():
        addr = raw[:, :4].copy().view(">u4")[:, 0]
        bad = ((addr & 0x7FFF0000) != 0) & ((addr & 0x80000000) == 0)
        if bad.any():
            i = int(np.argmax(bad))
            raise _BadRecord(i, f"address 0x{int(addr[i]):08x} has bits 16-30 set: not DVS128")
        keep = (addr & 0x80008000) == 0
        raw, t = raw[keep], t[keep]
    lo = np.invert(raw[:, 3])  # bits 0-7 inverted: x = 127 - x_raw, p = (bit0 == 0)
    hi = np.invert(raw[:, 2])  # bits 8-15 inverted: y = 127 - y_raw
    out = np.empty(len(t), dtype=EVENT_DTYPE)
    out["x"] = lo >> 1
    out["y"] = hi & 0x7F
    out["p"] = lo & 1
    out["t"] = t
    return out, keep


def decode_davis(
    addr: np.ndarray, t: np.ndarray, layout: ChipLayout
) -> tuple[np.ndarray, np.ndarray | None]:
    """Polarity events from native uint32 DAVIS addresses; ``keep`` mask when filtered."""
    keep = None
    is_dvs = (addr & _DAVIS_NOT_DVS) == 0
    if not is_dvs.all():
        keep = is_dvs
        addr, t = addr[keep], t[keep]
    rx = (addr >> _DAVIS_XSHIFT) & _DAVIS_XMASK
    ry = addr >> _DAVIS_YSHIFT
    if len(addr) and (rx.max() >= layout.width or ry.max() >= layout.height):
        i = int(np.argmax((rx >= layout.width) | (ry >= layout.height)))
        where = i if keep is None else int(np.flatnonzero(keep)[i])
        raise _BadRecord(
            where,
            f"DVS address x={int(rx[i])} y={int(ry[i])} is outside the {layout.name} "
            f"array ({layout.width}x{layout.height})",
        )
    out = np.empty(len(t), dtype=EVENT_DTYPE)
    out["x"] = (layout.width - 1) - rx
    out["y"] = (layout.height - 1) - ry
    out["p"] = (addr >> _DAVIS_POLSHIFT) & 1
    out["t"] = t
    return out, keep


# -- the reader ---------------------------------------------------------------------------
class Aedat2Reader(EventReader):
    """jAER AEDAT 2.0 recordings: DVS128 (CIFAR10-DVS) and DAVIS polarity events."""

    format_name: ClassVar[str] = "aedat2.0"
    description: ClassVar[str] = "jAER AEDAT 2.0 (DVS128, CIFAR10-DVS, DAVIS polarity events)"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        try:
            self.header = read_header(self.path)
            size = self.path.stat().st_size
        except OSError as e:
            raise EventFileError(self.path, f"cannot read: {e.strerror or e}") from None
        self.layout = self._resolve_layout()
        self.sensor_size = (self.layout.width, self.layout.height, 2)
        self.num_records = self._count_records(size)
        self._records: np.ndarray | None = None
        self._index: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.metadata = self._metadata()
        self.labels = self._cifar10_labels()

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head.startswith(MAGIC + b"2.")

    # -- opening ---------------------------------------------------------------------
    def _resolve_layout(self) -> ChipLayout:
        layout = chip_layout(self.header.aechip)
        if layout is None:
            raise EventFileError(
                self.path,
                f"unsupported AEChip {self.header.aechip!r}: known are DVS128 and "
                "DAVIS128/208/240/346/640",
                self.header.aechip_offset,
            )
        return layout

    def _count_records(self, size: int) -> int:
        n, rest = divmod(size - self.header.data_start, RECORD_BYTES)
        if rest:
            raise EventFileError(
                self.path,
                f"truncated final event: {rest} trailing bytes after {n} complete 8-byte events",
                self.header.data_start + n * RECORD_BYTES,
            )
        return n

    def _metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "version": self.header.version,
            "aechip": self.header.aechip,
            "chip": self.layout.name,
            "header_bytes": self.header.data_start,
            "records": self.num_records,
        }
        if self.header.creation_time_ms is not None:
            meta["creation_time_ms"] = self.header.creation_time_ms
        return meta

    def _cifar10_labels(self) -> list[LabelSegment]:
        found = cifar10_label(self.path) if self.layout.family == "dvs128" else None
        if found is None or self.num_records == 0:
            return []
        self.metadata["dataset"] = "CIFAR10-DVS"
        _, times, _ = self._seek_index()
        label, name = found
        return [LabelSegment(label, name, int(times[0]), int(times[-1]) + 1)]

    def _body(self) -> np.ndarray:
        """The records as an (n, 8) uint8 memmap (opened on first use)."""
        if self._records is None:
            if self.num_records == 0:
                self._records = np.zeros((0, RECORD_BYTES), dtype=np.uint8)
            else:
                self._records = self._map_records()
        return self._records

    def _map_records(self) -> np.ndarray:
        try:
            return np.memmap(
                self.path,
                dtype=np.uint8,
                mode="r",
                offset=self.header.data_start,
                shape=(self.num_records, RECORD_BYTES),
            )
        except (OSError, ValueError) as e:  # removed, or shorter than when opened
            raise EventFileError(self.path, f"cannot map the events: {e}") from None

    def close(self) -> None:
        self._records = None

    def max_events_hint(self) -> int | None:
        return self.num_records

    # -- seeking ---------------------------------------------------------------------
    def _seek_index(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(record numbers, unwrapped times, wrap counts) every ``stride`` records + the last."""
        if self._index is None:
            n = self.num_records
            stride = max(INDEX_STRIDE, -(-n // MAX_INDEX_ENTRIES))
            rows = np.unique(np.r_[np.arange(0, n, stride, dtype=np.int64), n - 1])
            raw_t = self._body()[rows, 4:8].copy().view(">u4")[:, 0]
            times, wraps = unwrap_index(raw_t)
            self._index = (rows, times, wraps)
        return self._index

    def _start(self, start_us: int | None) -> tuple[int, _Unwrapper]:
        """First record to decode for ``start_us`` and the clock state there."""
        if start_us is None or self.num_records == 0:
            return 0, _Unwrapper()
        rows, times, wraps = self._seek_index()
        # One entry further back than needed: tolerates slightly unordered APS/IMU stamps.
        j = max(int(np.searchsorted(times, start_us, side="left")) - 2, 0)
        return int(rows[j]), _Unwrapper(wraps=int(wraps[j]))

    # -- streaming -------------------------------------------------------------------
    def _iter_packets(
        self, start_us: int | None, max_events: int = DEFAULT_PACKET_EVENTS
    ) -> Iterator[tuple[np.ndarray, int | None]]:
        if max_events < 1:
            raise ValueError("max_events must be >= 1")
        first, unwrap = self._start(start_us)
        chunk = max(max_events, MIN_CHUNK_RECORDS)
        seeking = start_us is not None
        for lo in range(first, self.num_records, chunk):
            events, rows = self._decode(lo, min(lo + chunk, self.num_records), unwrap)
            base = lo
            if seeking:
                skip = _first_at_or_after(events["t"], start_us)
                seeking = skip == len(events)
                events, base = events[skip:], lo + skip
                rows = None if rows is None else rows[skip:]
            yield from self._split(events, rows, base, max_events)

    def _decode(self, lo: int, hi: int, unwrap: _Unwrapper) -> tuple[np.ndarray, np.ndarray | None]:
        """Events of records [lo, hi) and, when some were dropped, their record numbers."""
        raw = self._body()[lo:hi]
        words = raw.view(">u4")
        t = unwrap(words[:, 1].astype(np.int64))
        try:
            if self.layout.family == "dvs128":
                events, keep = decode_dvs128(raw, t)
            else:
                events, keep = decode_davis(words[:, 0].astype(np.uint32), t, self.layout)
        except _BadRecord as e:
            offset = self.header.data_start + (lo + e.index) * RECORD_BYTES
            raise EventFileError(self.path, e.message, offset) from None
        rows = None if keep is None else np.flatnonzero(keep) + lo
        return events, rows

    def _split(
        self, events: np.ndarray, rows: np.ndarray | None, base: int, max_events: int
    ) -> Iterator[tuple[np.ndarray, int | None]]:
        """Packets of at most ``max_events`` with the byte offset of each one's first event;
        ``rows`` are the events' record numbers, or None when they run on from ``base``."""
        for i in range(0, len(events), max_events):
            row = base + i if rows is None else int(rows[i])
            yield events[i : i + max_events], self.header.data_start + row * RECORD_BYTES


def _first_at_or_after(t: np.ndarray, start_us: int | None) -> int:
    """Index of the first ``t >= start_us`` (``len(t)`` when there is none)."""
    hit = t >= start_us
    return int(np.argmax(hit)) if hit.any() else len(t)
