"""The one interface for everything that produces events: files, cameras, networks, emulators.

A source is polled, never waited on: ``poll()`` returns at once with the events that are due
(possibly none). Its ``status()`` says what state it is in, how many events it delivered and
how many it had to drop (live sources with bounded buffers), and a one-line message when
something went wrong. Sources never raise from ``poll()`` on bad data or a lost device: they
go to the ERROR or DISCONNECTED state and keep what they delivered.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from dvsapp.events.types import LabelSegment, SensorSize


class SourceState(enum.Enum):
    """Where a source stands."""

    IDLE = "idle"  # made, not started
    RUNNING = "running"
    PAUSED = "paused"
    STALLED = "stalled"  # live source with no data for a while
    DISCONNECTED = "disconnected"  # device or peer gone; may come back
    ENDED = "ended"  # a finite source reached its end
    ERROR = "error"  # unrecoverable; ``message`` says why


@dataclass(frozen=True)
class SourceStatus:
    """A snapshot of a source's state and counters."""

    state: SourceState
    message: str = ""
    events_delivered: int = 0
    events_dropped: int = 0
    stream_time_us: int | None = None  # timestamp of the last delivered event
    extra: dict[str, object] = field(default_factory=dict)


class EventSource(ABC):
    """Something that produces time-ordered packets of events on demand."""

    #: Which optional controls this source supports: "pause", "seek", "speed", "loop".
    capabilities: frozenset[str] = frozenset()

    def __init__(self, name: str, sensor_size: SensorSize) -> None:
        self.name = name
        self.sensor_size = sensor_size
        self.labels: list[LabelSegment] = []

    @abstractmethod
    def start(self) -> None:
        """Begin producing events (open the device / anchor the replay clock)."""

    @abstractmethod
    def stop(self) -> None:
        """Stop and release everything; safe to call twice."""

    @abstractmethod
    def poll(self, max_events: int | None = None) -> np.ndarray:
        """The events due now, in time order (possibly empty); never blocks."""

    @abstractmethod
    def status(self) -> SourceStatus:
        """The current state and counters."""

    def __enter__(self) -> EventSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
