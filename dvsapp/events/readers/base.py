"""The reader interface every recording format implements.

A reader opens a file, parses its header (raising :class:`EventFileError` on anything
malformed), and then streams time-ordered packets of :data:`EVENT_DTYPE` without loading
the whole file. ``packets(start_us=...)`` seeks: it yields from the first event with
``t >= start_us``.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dvsapp.errors import EventFileError
from dvsapp.events.types import EVENT_DTYPE, LabelSegment, SensorSize

#: Default upper bound on the events in one packet.
DEFAULT_PACKET_EVENTS = 1 << 17
#: Packet size ``read_all`` asks for (fewer, larger packets: less per-packet overhead).
READ_ALL_PACKET_EVENTS = 1 << 16


def _bytes(events: np.ndarray) -> np.ndarray:
    """The raw bytes of an event array (contiguous), for fast copies."""
    return np.ascontiguousarray(events).view(np.uint8)


class EventReader(ABC):
    """Streaming reader of one recording file.

    Subclasses set ``format_name``, implement :meth:`sniff` (content detection from the
    file's first bytes) and :meth:`_iter_packets`, and fill ``sensor_size``, ``labels`` and
    ``metadata`` in ``__init__``.
    """

    #: Short name shown by ``dvsapp info`` (e.g. ``"aedat3.1"``).
    format_name: ClassVar[str] = ""
    #: Human description of the format.
    description: ClassVar[str] = ""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.sensor_size: SensorSize = (0, 0, 2)
        self.labels: list[LabelSegment] = []
        self.metadata: dict[str, Any] = {}

    # -- detection -------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def sniff(cls, head: bytes) -> bool:
        """True when ``head`` (the file's first bytes, up to 64 KiB) is this format."""

    @classmethod
    def sniff_file(cls, path: Path, head: bytes) -> bool:
        """What detection asks: :meth:`sniff` of the head, except for headerless formats,
        which may also look at the path (extension, folders) and the rest of the file."""
        return cls.sniff(head)

    # -- streaming -------------------------------------------------------------------
    @abstractmethod
    def _iter_packets(
        self, start_us: int | None, max_events: int
    ) -> Iterator[tuple[np.ndarray, int | None]]:
        """Yield ``(events, byte_offset)``: packets of at most ``max_events`` events of
        EVENT_DTYPE with ``t >= start_us`` (when given), and the file offset of the packet's
        first event where known (for error messages)."""

    def packets(
        self, start_us: int | None = None, max_events: int = DEFAULT_PACKET_EVENTS
    ) -> Iterator[np.ndarray]:
        """Time-ordered packets from ``start_us`` on; raises EventFileError when the
        timestamps go backwards."""
        last_t: int | None = None
        for events, offset in self._iter_packets(start_us, max_events):
            if len(events) == 0:
                continue
            t = events["t"]
            if last_t is not None and t[0] < last_t:
                raise EventFileError(
                    self.path, f"timestamps go backwards ({int(t[0])} us after {last_t} us)", offset
                )
            if len(t) > 1 and (t[1:] < t[:-1]).any():
                back = np.flatnonzero(t[1:] < t[:-1])
                if len(back):
                    i = int(back[0])
                    raise EventFileError(
                        self.path,
                        f"timestamps go backwards ({int(t[i + 1])} us after {int(t[i])} us)",
                        offset,
                    )
            last_t = int(t[-1])
            yield events

    def read_all(self, start_us: int | None = None, end_us: int | None = None) -> np.ndarray:
        """Every event in ``[start_us, end_us)`` as one array (loads it all: use with care)."""
        hint = self.max_events_hint()
        if hint is not None and start_us is None and end_us is None:
            return self._read_all_into(np.empty(hint, dtype=EVENT_DTYPE))
        parts = []
        for packet in self.packets(start_us=start_us, max_events=READ_ALL_PACKET_EVENTS):
            if end_us is not None and packet["t"][-1] >= end_us:
                parts.append(packet[packet["t"] < end_us])
                break
            parts.append(packet)
        if not parts:
            return np.zeros(0, dtype=EVENT_DTYPE)
        # Joined as bytes: numpy copies a packed structured dtype field by field, ~7x slower.
        return np.concatenate([_bytes(p) for p in parts]).view(EVENT_DTYPE)

    def max_events_hint(self) -> int | None:
        """An upper bound on the file's event count when the header tells it cheaply (lets
        ``read_all`` fill one array instead of joining packets); None when unknown."""
        return None

    def _read_all_into(self, out: np.ndarray) -> np.ndarray:
        n = 0
        for packet in self.packets(max_events=READ_ALL_PACKET_EVENTS):
            if n + len(packet) > len(out):  # the hint was wrong: fall back to growing
                out = np.concatenate([_bytes(out[:n]), _bytes(packet)]).view(EVENT_DTYPE)
            else:  # copied as bytes: structured assignment goes field by field, ~7x slower
                size = EVENT_DTYPE.itemsize
                out.view(np.uint8)[n * size : (n + len(packet)) * size] = _bytes(packet)
            n += len(packet)
        return out[:n] if n == len(out) else out[:n].copy()

    # -- lifetime --------------------------------------------------------------------
    def close(self) -> None:  # noqa: B027
        """Release file handles (default: nothing to release)."""

    def __enter__(self) -> EventReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, sensor_size={self.sensor_size})"
