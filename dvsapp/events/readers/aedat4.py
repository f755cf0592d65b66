"""AEDAT 4.0 (iniVation DV) reader, decoded packet by packet by ``aedat.Decoder`` (Rust).

File layout
    ``#!AER-DAT4.0\\r\\n``, a little-endian uint32 length and an ``IOHeader`` flatbuffer that
    holds an XML description of the streams (id, ``originalOutputName`` such as ``events``,
    ``typeIdentifier`` such as ``EVTS``, and for event streams ``sizeX``/``sizeY`` and the
    camera's ``source``), then LZ4/ZSTD-compressed packets tagged with their stream id.

Conventions
    DV's origin is the top-left pixel and ``on`` = True is an ON event: both are ours.
    Timestamps are Unix time in microseconds and are kept as they are.

Streams
    ``stream`` chooses the event stream: a name (``originalOutputName``), an id, a digit
    string taken as an id, or None for the event stream with the lowest id. A choice that is
    not an event stream raises EventFileError listing the file's event streams.

Why aedat and not dv-processing
    dv-processing 2.0.4's ``MonoCameraRecording`` refuses any file whose trailing
    ``FileDataTable`` is missing (a recording cut short) and did not return within 20 s
    from ``getNextEventBatch`` on corrupted LZ4 packets (20 random byte flips, 4 files of 4).
    ``aedat.Decoder`` reads the packets in order and raises on a short or corrupt packet;
    both decode the sample at 50-70 M events/s.
    aedat's Rust XML parser can panic (``PanicException``, a BaseException) on bad UTF-8, so
    the XML is checked here first and panics are caught too.

Seeking and errors
    Packets whose last timestamp is before ``start_us`` are decoded and skipped. Errors of the
    decoder (truncation, LZ4 failure, malformed XML) become one-line EventFileErrors; aedat
    reports no byte offsets. Events outside the stream's declared size also raise.
"""

from __future__ import annotations

import os
import re
import struct
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import aedat
import numpy as np

from dvsapp.errors import EventFileError
from dvsapp.events.readers.base import EventReader
from dvsapp.events.types import EVENT_DTYPE

MAGIC = b"#!AER-DAT4.0"
#: Largest IOHeader read to find the stream names (real ones are a few KiB).
MAX_IO_HEADER = 16 << 20
_XML = re.compile(rb"<dv\b.*</dv>", re.DOTALL)
_INT64_MAX = np.iinfo(np.int64).max


@dataclass(frozen=True)
class StreamInfo:
    """One stream of the file as its header describes it."""

    id: int
    name: str
    type: str
    width: int = 0
    height: int = 0
    source: str = ""

    def describe(self) -> str:
        size = f" ({self.width}x{self.height})" if self.width else ""
        return f"{self.id} {self.name!r}{size}"


def library_error(error: BaseException) -> bool:
    """An error of the decoder: any Exception, or a Rust panic (pyo3's ``PanicException``
    derives from BaseException), but not an interrupt or an exit."""
    return not isinstance(error, KeyboardInterrupt | SystemExit | GeneratorExit)


def one_line(error: BaseException) -> str:
    """The first meaningful line of a library's error message."""
    for line in str(error).splitlines():
        line = line.strip()
        if line and not line.startswith("Stacktrace"):
            return " ".join(line.split())
    return type(error).__name__


def _stream_names(path: str | os.PathLike[str]) -> dict[int, dict[str, str]]:
    """Per stream id, the XML attributes of its ``outInfo`` node (and of its ``info``).

    Malformed XML raises here, before aedat's XML parser sees it (it can panic on bad UTF-8).
    """
    try:
        with open(path, "rb") as f:
            head = f.read(len(MAGIC) + 2 + 4)
            (size,) = struct.unpack("<I", head[-4:])
            blob = f.read(min(size, MAX_IO_HEADER))
    except (OSError, struct.error):
        return {}  # aedat says what is wrong
    m = _XML.search(blob)
    if m is None:
        return {}
    try:
        root = ET.fromstring(m[0].decode("utf-8"))
    except (UnicodeDecodeError, ET.ParseError) as e:
        raise EventFileError(path, f"malformed stream description (XML): {e}") from None
    out: dict[int, dict[str, str]] = {}
    for node in root.iter("node"):
        name = node.get("name", "")
        if name.isdigit() and "outInfo" in node.get("path", ""):
            attrs = {a.get("key", ""): a.text or "" for a in node.iter("attr")}
            out[int(name)] = attrs
    return out


def open_decoder(path: str | os.PathLike[str]) -> aedat.Decoder:
    """``aedat.Decoder`` with its errors (and panics) turned into EventFileError."""
    try:
        return aedat.Decoder(os.fspath(path))
    except BaseException as e:
        if not library_error(e):
            raise
        raise EventFileError(path, f"not a readable AEDAT 4.0 file: {one_line(e)}") from None


def read_streams(path: str | os.PathLike[str]) -> list[StreamInfo]:
    """The file's streams, by id (aedat for types and sizes, the XML for names)."""
    names = _stream_names(path)
    id_to_stream = open_decoder(path).id_to_stream()
    streams = []
    for sid, info in sorted(id_to_stream.items()):
        attrs = names.get(sid, {})
        streams.append(
            StreamInfo(
                id=sid,
                name=attrs.get("originalOutputName") or f"stream{sid}",
                type=str(info.get("type", "")),
                width=int(info.get("width", 0)),
                height=int(info.get("height", 0)),
                source=attrs.get("source", ""),
            )
        )
    return streams


def choose_stream(
    path: str | os.PathLike[str], streams: list[StreamInfo], stream: str | int | None
) -> StreamInfo:
    """The event stream that ``stream`` names (see the module docstring)."""
    events = [s for s in streams if s.type == "events"]
    listing = ", ".join(s.describe() for s in events) or "none"
    if stream is None:
        if not events:
            others = ", ".join(f"{s.id} {s.name!r} ({s.type})" for s in streams) or "none"
            raise EventFileError(path, f"no event stream (streams: {others})")
        return events[0]
    for s in events:
        if s.name == stream or s.id == stream:
            return s
    if isinstance(stream, str) and stream.isdigit():
        for s in events:
            if s.id == int(stream):
                return s
    raise EventFileError(path, f"no event stream {stream!r}; event streams: {listing}")


class Aedat4Reader(EventReader):
    """AEDAT 4.0 recordings (DV software, DVXplorer, DAVIS via DV)."""

    format_name = "aedat4"
    description = "AEDAT 4.0 (iniVation DV)"

    def __init__(self, path: str | os.PathLike[str], stream: str | int | None = None) -> None:
        super().__init__(path)
        self.streams = read_streams(path)
        self.stream = choose_stream(path, self.streams, stream)
        w, h = self.stream.width, self.stream.height
        if w <= 0 or h <= 0:
            raise EventFileError(path, f"event stream {self.stream.describe()} has no size")
        self.sensor_size = (w, h, 2)
        self.metadata: dict[str, Any] = {
            "stream_id": self.stream.id,
            "stream_name": self.stream.name,
            "source": self.stream.source,
            "streams": [f"{s.id} {s.name} ({s.type})" for s in self.streams],
        }

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head.startswith(MAGIC)

    def _iter_packets(
        self, start_us: int | None, max_events: int
    ) -> Iterator[tuple[np.ndarray, int | None]]:
        for raw in self._raw_packets():
            if len(raw) == 0:
                continue
            if start_us is not None:
                if int(raw["t"][-1]) < start_us:
                    continue
                raw = raw[raw["t"] >= start_us]
                start_us = None
            events = self._convert(raw)
            for i in range(0, len(events), max_events):
                yield events[i : i + max_events], None

    def _raw_packets(self) -> Iterator[np.ndarray]:
        """The chosen stream's packets as aedat decodes them (t u8, x u2, y u2, on ?)."""
        decoder = open_decoder(self.path)
        sid = self.stream.id
        while True:
            try:
                packet = next(decoder)
            except StopIteration:
                return
            except BaseException as e:
                if not library_error(e):
                    raise
                raise EventFileError(self.path, f"corrupt or truncated: {one_line(e)}") from None
            if packet.get("stream_id") == sid and "events" in packet:
                yield packet["events"]

    def _convert(self, raw: np.ndarray) -> np.ndarray:
        """To our dtype, refusing coordinates beyond the stream's size."""
        w, h, _ = self.sensor_size
        x, y, t = raw["x"], raw["y"], raw["t"]
        if x.max() >= w or y.max() >= h or t.max() > _INT64_MAX:
            i = int(np.argmax((x >= w) | (y >= h) | (t > _INT64_MAX)))
            raise EventFileError(
                self.path,
                f"corrupt data: event x={int(x[i])}, y={int(y[i])}, t={int(t[i])} is outside "
                f"the {w}x{h} sensor",
            )
        out = np.empty(len(raw), dtype=EVENT_DTYPE)
        out["x"], out["y"], out["t"], out["p"] = x, y, t, raw["on"]
        return out
