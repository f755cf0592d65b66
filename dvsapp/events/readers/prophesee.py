"""Prophesee recordings: RAW EVT 2.0, RAW EVT 3.0 and DAT, decoded by expelliarmus in chunks.

File layout
    A text header of lines that start with ``%`` (a ``% end`` line, where present, closes it),
    then binary data. RAW names its encoding in ``% evt 2.0`` / ``% evt 3.0`` or
    ``% format EVT2`` / ``% format EVT3;height=H;width=W``. DAT says
    ``% Data file containing ... Event2D events`` and ``% Version 2``, and is followed by two
    bytes, the event type (0x00 Event2D, 0x0C CD) and the event size (8), then 8-byte events.

Conventions
    Prophesee's origin is the top-left pixel and polarity 1 is ON (EVT2 ``CD_ON`` = 0x1, EVT3
    ``EVT_ADDR_X`` bit 11, DAT bit 28), which is ours: ``x``, ``y`` are kept and
    ``p = (pol == 1)``. Timestamps are the camera's microseconds since it started. EVT2's
    34-bit time (28-bit ``TIME_HIGH`` << 6) wraps every 2^34 us (4.77 h); expelliarmus does not
    unwrap it, so a drop of more than 2^33 us counts as a wrap and adds 2^34.

Sensor size
    From ``% geometry WxH``, the ``height=``/``width=`` of ``% format``, or ``% Width`` /
    ``% Height`` (DAT). Otherwise from the plugin name: ``gen3*`` (Gen3 / Gen3.1 VGA) is
    640x480, ``gen4*`` and ``imx636`` (Gen4, Gen4.1 / IMX636 HD) are 1280x720. A DAT with none
    of these is taken as the 304x240 ATIS (N-CARS, Gen1 automotive). A RAW file with none of
    these is scanned once at open and gets ``max(x) + 1`` by ``max(y) + 1``
    (``metadata["sensor_size_source"]`` says which rule applied).

Why expelliarmus' C functions are called directly (``expelliarmus.wizard.clib``)
    ``Wizard`` refuses files whose name does not end in ``.raw`` / ``.dat``, its
    ``read_chunk`` stops silently (as if at the end of the file) when the decoder fails, and
    its header skipper (``jump_header``) loops forever on a file that ends inside the ``%``
    header. So the header is parsed here and the decoder is started at the first data byte.
    Each chunk re-opens the file at the byte where the last one stopped; decoding cannot loop.

Errors
    An unknown word type (the decoder's only own check), an event outside the sensor, a
    polarity other than 0/1, a body that is not a whole number of words (RAW) or events (DAT),
    all raise EventFileError with a byte offset: exact for DAT, the start of the decoded block
    for RAW (whose words have no fixed size per event). The decoder prints its own "ERROR: ..."
    line on stderr (file descriptor 2) before it fails; that is caught around each call and
    dropped, so the user sees only our one line (anything else it prints is passed on). A
    truncation on a word boundary cannot be told from a shorter recording.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

import numpy as np

from dvsapp.errors import EventFileError
from dvsapp.events.readers.base import EventReader
from dvsapp.events.types import EVENT_DTYPE, SensorSize

HEADER_MAX_BYTES = 1 << 16
#: Sensor sizes by plugin-name pattern (Prophesee HAL plugin names, e.g. hal_plugin_gen41_evk3).
PLUGIN_SENSORS: tuple[tuple[re.Pattern[str], tuple[int, int]], ...] = (
    (re.compile(r"gen3"), (640, 480)),
    (re.compile(r"gen4|imx636"), (1280, 720)),
)
ATIS_SIZE = (304, 240)
#: Largest coordinate an EVT2/EVT3 word can hold (11 bits), for the scan of unknown sensors.
RAW_MAX_COORD = 1 << 11
DAT_EVENT_TYPES = {0x00: "Event2D", 0x0C: "CD"}
DAT_EVENT_BYTES = 8
EVT2_WRAP_US = 1 << 34

_GEOMETRY = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*$")
_VALID_WORDS = {
    "evt2": frozenset({0x0, 0x1, 0x8, 0xA, 0xE, 0xF}),
    "evt3": frozenset({0x0, 0x2, 0x3, 0x4, 0x5, 0x6, 0x8, 0xC, 0xE, 0xF}),
}


@dataclass(frozen=True)
class PropheseeHeader:
    """The ``%`` header: its lines, ``key -> value`` (keys lower-case) and its length."""

    lines: tuple[str, ...]
    fields: dict[str, str]
    end: int


def parse_header(head: bytes) -> PropheseeHeader | None:
    """The ``%`` header at the start of ``head``; None when there is none or it does not end
    (with a newline) inside ``head``."""
    pos, lines = 0, []
    while pos < len(head) and head[pos] == 0x25:  # "%"
        nl = head.find(b"\n", pos)
        if nl < 0:
            return None
        line = head[pos + 1 : nl].decode("latin-1").strip()
        lines.append(line)
        pos = nl + 1
        if line.lower() == "end":
            break
    if not lines:
        return None
    fields: dict[str, str] = {}
    for line in lines:
        key, _, value = line.partition(" ")
        fields.setdefault(key.lower(), value.strip())
    return PropheseeHeader(tuple(lines), fields, pos)


def raw_encoding(header: PropheseeHeader) -> str | None:
    """``"evt2"`` / ``"evt3"`` as the header names it, else None (EVT 2.1, DAT, unknown)."""
    fmt = header.fields.get("format")
    if fmt is not None:
        name = fmt.split(";")[0].strip().upper()
        return {"EVT2": "evt2", "EVT3": "evt3"}.get(name)
    evt = header.fields.get("evt", "").strip()
    return {"2.0": "evt2", "3.0": "evt3"}.get(evt)


def is_dat_header(header: PropheseeHeader) -> bool:
    """The text of a DAT header (``Data file containing`` or ``Version``), not a RAW one."""
    data = header.fields.get("data", "").lower()
    return raw_encoding(header) is None and (
        data.startswith("file containing") or "version" in header.fields
    )


def header_sensor(header: PropheseeHeader) -> tuple[tuple[int, int] | None, str]:
    """(width, height) from the header, and which line gave it; (None, "") when none does."""
    f = header.fields
    m = _GEOMETRY.match(f.get("geometry", ""))
    if m:
        return (int(m[1]), int(m[2])), "geometry"
    opts = dict(kv.split("=", 1) for kv in f.get("format", "").split(";")[1:] if "=" in kv)
    opts = {k.strip().lower(): v.strip() for k, v in opts.items()}
    if opts.get("width", "").isdigit() and opts.get("height", "").isdigit():
        return (int(opts["width"]), int(opts["height"])), "format"
    if f.get("width", "").isdigit() and f.get("height", "").isdigit():
        return (int(f["width"]), int(f["height"])), "width/height"
    plugin = f.get("plugin_name", "").lower()
    for pattern, size in PLUGIN_SENSORS:
        if pattern.search(plugin):
            return size, "plugin_name"
    return None, ""


@functools.cache
def _load_clib() -> ModuleType:
    # Imported on first use: expelliarmus walks all of site-packages to find its library
    # when imported (about 0.3 s), which every dvsapp start would otherwise pay.
    from expelliarmus.wizard import clib

    return clib


def _expelliarmus_clib(path: str | os.PathLike[str]) -> ModuleType:
    """expelliarmus' ctypes bindings (see the module docstring for why not ``Wizard``)."""
    try:
        return _load_clib()
    except (ImportError, OSError) as e:  # pragma: no cover - broken install only
        raise EventFileError(path, f"expelliarmus is unusable: {e}") from None


def _read_head(path: str | os.PathLike[str]) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(HEADER_MAX_BYTES)
    except OSError as e:
        raise EventFileError(path, f"cannot read: {e.strerror or e}") from None


def _split(events: np.ndarray, max_events: int) -> Iterator[np.ndarray]:
    for i in range(0, len(events), max_events):
        yield events[i : i + max_events]


class _PropheseeReader(EventReader):
    """Shared chunked decoding through expelliarmus; subclasses set the encoding."""

    encoding: ClassVar[str] = ""
    #: Bytes per word (RAW) or per event (DAT): the body must be a whole number of them.
    unit_bytes: ClassVar[int] = 4
    #: Bytes between the header and the first event (DAT's type and size bytes).
    preamble_bytes: ClassVar[int] = 0

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        self._clib = _expelliarmus_clib(path)
        head = _read_head(path)
        header = parse_header(head)
        if header is None:
            raise EventFileError(path, "no complete '%' header (truncated in the header?)", 0)
        self.header = header
        extra = self._check_header(head)
        self._data_start = header.end + self.preamble_bytes
        size = os.path.getsize(path)
        if size < self._data_start:
            raise EventFileError(path, "truncated right after the header", size)
        body = size - self._data_start
        self._n_units = body // self.unit_bytes
        self._tail_bytes = body % self.unit_bytes
        self.metadata = {
            "encoding": self.encoding,
            "header": list(header.lines),
            **{k: v for k, v in header.fields.items() if k in ("plugin_name", "serial_number")},
            **extra,
        }
        sensor, source = header_sensor(header)
        if sensor is None:
            sensor, source = self._default_sensor()
        self.sensor_size = self._checked_sensor(sensor)
        self.metadata["sensor_size_source"] = source

    # -- header and geometry ----------------------------------------------------------
    def _check_header(self, head: bytes) -> dict[str, Any]:
        """Refuse a header of another format; returns metadata it adds."""
        if raw_encoding(self.header) != self.encoding:
            raise EventFileError(self.path, f"not a Prophesee {self.format_name} header", 0)
        return {}

    def _default_sensor(self) -> tuple[tuple[int, int], str]:
        """Max + 1 of the decoded coordinates (a RAW header without geometry)."""
        max_x = max_y = -1
        for events, _ in self._decode(1 << 20, (RAW_MAX_COORD, RAW_MAX_COORD)):
            max_x = max(max_x, int(events["x"].max()))
            max_y = max(max_y, int(events["y"].max()))
        return (max_x + 1, max_y + 1), "scan (max + 1)"

    def _checked_sensor(self, sensor: tuple[int, int]) -> SensorSize:
        w, h = sensor
        if not (0 < w <= 1 << 15 and 0 < h <= 1 << 15):
            raise EventFileError(self.path, f"implausible sensor size {w}x{h}", 0)
        return (w, h, 2)

    # -- decoding ---------------------------------------------------------------------
    def _iter_packets(
        self, start_us: int | None, max_events: int
    ) -> Iterator[tuple[np.ndarray, int | None]]:
        sensor = self.sensor_size[:2]
        for events, offset in self._decode(max_events, sensor):
            if start_us is not None:
                if events["t"][-1] < start_us:
                    continue
                events = events[events["t"] >= start_us]
                start_us = None
            for part in _split(events, max_events):
                yield part, offset
        self._check_tail()

    def _decode(self, max_events: int, sensor: tuple[int, int]) -> Iterator[tuple[np.ndarray, int]]:
        """Chunks of converted events and the byte offset each was decoded from."""
        extra = 12 if self.encoding == "evt3" else 0  # an EVT3 vector word adds up to 12
        dim = max(1, max_events - extra)
        clib = self._clib
        info = clib.events_cargo_t(start_byte=self._data_start)
        cargo = clib.c_cargos_t[self.encoding](events_info=info)
        cargo.events_info.is_chunk = 1
        fpath = ctypes.c_char_p(os.fsencode(self.path))
        buff = ctypes.c_size_t(min(max(2 * dim, 256), 1 << 15))
        end = self._data_start + self._n_units * self.unit_bytes
        wrap = _Unwrapper() if self.encoding == "evt2" else None
        done = 0
        while not cargo.events_info.finished and cargo.events_info.start_byte < end:
            offset = cargo.events_info.start_byte
            cargo.events_info.dim = dim
            raw = np.empty(dim + extra, dtype=clib.event_t)
            with _c_stderr_captured() as said:
                status = clib.c_read_fns[self.encoding](fpath, raw, ctypes.byref(cargo), buff)
            _pass_on(said, failed=status != 0)
            if status != 0:
                raise self._decoder_error(offset)
            n = cargo.events_info.dim
            if n == 0:
                break
            if cargo.events_info.start_byte <= offset:
                raise EventFileError(self.path, "the decoder made no progress", offset)
            raw = self._complete_events(raw[:n], done)
            events = self._convert(raw, sensor, offset, done)
            if wrap is not None:
                events["t"] = wrap(events["t"])
            done += len(events)
            yield events, offset

    def _complete_events(self, raw: np.ndarray, done: int) -> np.ndarray:
        """Drop what the decoder made of a trailing partial record (DAT only)."""
        return raw

    def _event_offset(self, chunk_offset: int, done: int, i: int) -> int:
        """Byte offset of event ``i`` of a chunk (RAW: the chunk's start)."""
        return chunk_offset

    def _convert(
        self, raw: np.ndarray, sensor: tuple[int, int], offset: int, done: int
    ) -> np.ndarray:
        """expelliarmus' (t, x, y, p) to our dtype, refusing events outside the sensor."""
        x, y, p = raw["x"], raw["y"], raw["p"]
        w, h = sensor
        if len(raw) and (x.min() < 0 or x.max() >= w or y.min() < 0 or y.max() >= h or p.max() > 1):
            i = int(np.argmax((x < 0) | (x >= w) | (y < 0) | (y >= h) | (p > 1)))
            raise EventFileError(
                self.path,
                f"corrupt data: event x={int(x[i])}, y={int(y[i])}, p={int(p[i])} is outside "
                f"the {w}x{h} sensor or has no valid polarity",
                self._event_offset(offset, done, i),
            )
        out = np.empty(len(raw), dtype=EVENT_DTYPE)
        out["x"], out["y"], out["t"], out["p"] = x, y, raw["t"], p
        return out

    def _decoder_error(self, offset: int) -> EventFileError:
        """The decoder failed: locate the first word of an unknown type from ``offset``."""
        valid = _VALID_WORDS.get(self.encoding)
        if valid is not None:
            found = _find_bad_word(self.path, offset, self.unit_bytes, valid)
            if found is not None:
                at, kind = found
                return EventFileError(
                    self.path, f"corrupt data: unknown {self.format_name} word type {kind:#x}", at
                )
        return EventFileError(self.path, "corrupt data: the decoder failed", offset)

    def _check_tail(self) -> None:
        if self._tail_bytes:
            end = self._data_start + self._n_units * self.unit_bytes
            unit = "event" if self.preamble_bytes else "word"
            raise EventFileError(
                self.path,
                f"truncated: {self._tail_bytes} trailing bytes do not make a whole {unit}",
                end,
            )


_STDERR_LOCK = threading.Lock()


@contextlib.contextmanager
def _c_stderr_captured() -> Iterator[list[bytes]]:
    """Catch what C code writes to file descriptor 2 while the block runs (expelliarmus'
    decoder prints "ERROR: event type not recognised" itself before failing, where our
    EventFileError already says it in one line). Yields a list that holds the bytes after
    the block. fd 2 is restored however the block ends; one capture at a time."""
    said: list[bytes] = []
    with _STDERR_LOCK, tempfile.TemporaryFile() as sink:
        with contextlib.suppress(AttributeError, OSError, ValueError):
            sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:  # no fd 2 at all: nothing to hide
            yield said
            return
        try:
            os.dup2(sink.fileno(), 2)
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            said.append(sink.read())


def _pass_on(said: list[bytes], failed: bool) -> None:
    """Write back what the decoder printed, less its own error lines when it failed (the
    EventFileError raised next says it)."""
    text = b"".join(said)
    if not text:
        return
    lines = text.splitlines(keepends=True)
    if failed:
        lines = [ln for ln in lines if not ln.lstrip().startswith(b"ERROR:")]
    if lines:
        with contextlib.suppress(OSError):
            os.write(2, b"".join(lines))


class _Unwrapper:
    """Unwraps EVT2's 34-bit clock across the chunks of one pass."""

    def __init__(self) -> None:
        self.last = -1
        self.offset = 0

    def __call__(self, t: np.ndarray) -> np.ndarray:
        half = EVT2_WRAP_US >> 1
        first_prev = self.last if self.last >= 0 else int(t[0])
        if int(t[0]) - first_prev >= -half and not (t[1:] < t[:-1] - half).any():
            self.last = int(t[-1])  # no wrap in this chunk (the usual case): no cumsum
            return t + self.offset if self.offset else t
        prev = np.concatenate(([first_prev], t[:-1]))
        wraps = np.cumsum(t - prev < -(EVT2_WRAP_US >> 1))
        out = t + (self.offset + wraps * EVT2_WRAP_US)
        self.offset += int(wraps[-1]) * EVT2_WRAP_US
        self.last = int(t[-1])
        return out


def _find_bad_word(
    path: os.PathLike[str] | str, start: int, word_bytes: int, valid: frozenset[int]
) -> tuple[int, int] | None:
    """(byte offset, type) of the first word from ``start`` whose type nibble is not valid."""
    dtype = np.dtype("<u4" if word_bytes == 4 else "<u2")
    shift = 8 * word_bytes - 4
    lut = np.zeros(16, dtype=bool)
    lut[list(valid)] = True
    with open(path, "rb") as f:
        f.seek(start)
        pos = start
        while block := f.read(1 << 20):
            words = np.frombuffer(block[: len(block) // word_bytes * word_bytes], dtype=dtype)
            bad = np.flatnonzero(~lut[words >> shift])
            if len(bad):
                i = int(bad[0])
                return pos + i * word_bytes, int(words[i] >> shift)
            pos += len(block)
    return None


class _RawReader(_PropheseeReader):
    """Prophesee RAW: detected by the encoding its ``%`` header names."""

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        header = parse_header(head)
        return header is not None and raw_encoding(header) == cls.encoding


class Evt2Reader(_RawReader):
    """Prophesee RAW, EVT 2.0 (32-bit words)."""

    format_name = "evt2"
    description = "Prophesee RAW EVT 2.0"
    encoding = "evt2"
    unit_bytes = 4


class Evt3Reader(_RawReader):
    """Prophesee RAW, EVT 3.0 (16-bit words)."""

    format_name = "evt3"
    description = "Prophesee RAW EVT 3.0"
    encoding = "evt3"
    unit_bytes = 2


class DatReader(_PropheseeReader):
    """Prophesee DAT (Event2D / CD, 8-byte events), e.g. N-CARS and the Gen1 dataset."""

    format_name = "dat"
    description = "Prophesee DAT (Event2D/CD)"
    encoding = "dat"
    unit_bytes = DAT_EVENT_BYTES
    preamble_bytes = 2

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        header = parse_header(head)
        if header is None or not is_dat_header(header):
            return False
        pre = head[header.end : header.end + 2]
        return len(pre) == 2 and pre[0] in DAT_EVENT_TYPES and pre[1] == DAT_EVENT_BYTES

    def _check_header(self, head: bytes) -> dict[str, Any]:
        if not is_dat_header(self.header):
            raise EventFileError(self.path, "not a Prophesee DAT header", 0)
        pre = head[self.header.end : self.header.end + 2]
        if len(pre) < 2:
            raise EventFileError(self.path, "truncated: no event type after the header", 0)
        if pre[0] not in DAT_EVENT_TYPES or pre[1] != DAT_EVENT_BYTES:
            raise EventFileError(
                self.path,
                f"unsupported DAT events: type {pre[0]:#04x}, size {pre[1]} "
                f"(expected Event2D/CD of {DAT_EVENT_BYTES} bytes)",
                self.header.end,
            )
        return {"dat_event_type": DAT_EVENT_TYPES[pre[0]]}

    def _default_sensor(self) -> tuple[tuple[int, int], str]:
        return ATIS_SIZE, "default (ATIS 304x240)"

    def _complete_events(self, raw: np.ndarray, done: int) -> np.ndarray:
        return raw[: max(0, self._n_units - done)]

    def _event_offset(self, chunk_offset: int, done: int, i: int) -> int:
        return self._data_start + (done + i) * DAT_EVENT_BYTES
