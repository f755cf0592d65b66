"""Replay of any readable recording, paced in real time or faster, with pause, seek and loop."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator

import numpy as np

from dvsapp.errors import ConfigError, DvsappError
from dvsapp.events.detect import open_reader
from dvsapp.events.readers.base import EventReader
from dvsapp.events.sources.base import EventSource, SourceState, SourceStatus
from dvsapp.events.types import EVENT_DTYPE

MIN_SPEED = 0.1
#: Upper bound on the events one ``poll`` returns, so fast replay stays in bounded chunks.
DEFAULT_MAX_POLL_EVENTS = 1 << 18


def _check_speed(speed: float) -> float:
    if not (speed >= MIN_SPEED or math.isinf(speed)) or math.isnan(speed):
        raise ConfigError(f"speed must be >= {MIN_SPEED} or inf (as fast as possible), not {speed}")
    return float(speed)


class ReplaySource(EventSource):
    """Plays a recording back through the source interface.

    ``speed`` is the ratio of stream time to wall time (1.0 = real time, ``math.inf`` = as fast
    as possible). Pacing uses the recording's own timestamps. With ``loop=True`` the recording
    starts over at its end and the timestamps of each new pass are shifted past the previous
    pass (``status().extra["loop_offset_us"]``), so downstream stages always see time move
    forwards. ``fmt`` forces the recording's format (``detect.format_names()``: e.g.
    ``"nmnist"`` for an N-MNIST sample without its ``.bin`` name).
    """

    capabilities = frozenset({"pause", "seek", "speed", "loop"})

    def __init__(
        self,
        recording: str | os.PathLike[str] | EventReader,
        speed: float = 1.0,
        loop: bool = False,
        clock: Callable[[], float] = time.monotonic,
        fmt: str | None = None,
    ) -> None:
        if isinstance(recording, EventReader):
            if fmt is not None:
                raise ConfigError("fmt applies to a recording's path, not to an open reader")
            reader = recording
        else:
            reader = open_reader(recording, fmt=fmt)
        super().__init__(f"replay:{reader.path}", reader.sensor_size)
        self.reader = reader
        self.labels = list(reader.labels)
        self.loop = loop
        self._speed = _check_speed(speed)
        self._clock = clock
        self._state = SourceState.IDLE
        self._message = ""
        self._delivered = 0
        self._last_t: int | None = None
        self._loop_offset = 0
        self._passes = 0
        self._packets: Iterator[np.ndarray] | None = None
        self._pending = np.zeros(0, dtype=EVENT_DTYPE)
        self._anchor_wall = 0.0
        self._anchor_stream: int | None = None  # stream time (file clock) at _anchor_wall
        self._first_t: int | None = None

    # -- controls ------------------------------------------------------------------------
    @property
    def speed(self) -> float:
        return self._speed

    def set_speed(self, speed: float) -> None:
        """Change the pace without a jump in stream time."""
        now_stream = self._position()
        self._speed = _check_speed(speed)
        if self._state is SourceState.PAUSED:
            self._paused_at = now_stream
        self._anchor(now_stream)

    def start(self) -> None:
        if self._state in (SourceState.RUNNING, SourceState.PAUSED):
            return
        self._open_at(None)
        self._state = SourceState.RUNNING

    def stop(self) -> None:
        self._packets = None
        self._pending = self._pending[:0]
        if self._state not in (SourceState.ERROR, SourceState.ENDED):
            self._state = SourceState.IDLE
        self.reader.close()

    def pause(self) -> None:
        if self._state is SourceState.RUNNING:
            self._paused_at = self._position()
            self._state = SourceState.PAUSED

    def resume(self) -> None:
        if self._state is SourceState.PAUSED:
            self._anchor(self._paused_at)
            self._state = SourceState.RUNNING

    def seek(self, t_us: int) -> None:
        """Continue from the first event at or after ``t_us`` (the recording's own clock)."""
        paused = self._state is SourceState.PAUSED
        self._open_at(int(t_us))
        self._state = SourceState.PAUSED if paused else SourceState.RUNNING
        if paused:
            self._paused_at = self._anchor_stream

    # -- polling -------------------------------------------------------------------------
    def poll(self, max_events: int | None = None) -> np.ndarray:
        limit = DEFAULT_MAX_POLL_EVENTS if max_events is None else max(1, int(max_events))
        if self._state is not SourceState.RUNNING:
            return self._pending[:0]
        due_until = self._stream_now()
        out: list[np.ndarray] = []
        n = 0
        try:
            while n < limit:
                if len(self._pending) == 0 and not self._refill():
                    break
                if due_until is None:  # first events just arrived: anchor on them
                    self._anchor(int(self._pending["t"][0]))
                    due_until = self._stream_now()
                k = len(self._pending)
                if not math.isinf(self._speed):
                    k = int(np.searchsorted(self._pending["t"], due_until, side="right"))
                k = min(k, limit - n)
                if k == 0:
                    break
                chunk = self._pending[:k].copy()
                if self._loop_offset:
                    chunk["t"] += self._loop_offset
                out.append(chunk)
                self._last_t = int(chunk["t"][-1])
                self._pending = self._pending[k:]
                n += k
        except DvsappError as e:
            self._fail(str(e))
        except (OSError, ValueError) as e:
            self._fail(f"{self.reader.path}: {e}")
        if not out:
            return self._pending[:0].copy()
        events = np.concatenate(out) if len(out) > 1 else out[0]
        self._delivered += len(events)
        return events

    def status(self) -> SourceStatus:
        return SourceStatus(
            state=self._state,
            message=self._message,
            events_delivered=self._delivered,
            events_dropped=0,
            stream_time_us=self._last_t,
            extra={
                "speed": self._speed,
                "loop_offset_us": self._loop_offset,
                "passes": self._passes,
            },
        )

    # -- internals -----------------------------------------------------------------------
    def _position(self) -> int | None:
        """Where the replay stands on the recording's clock: the due time at a finite speed,
        the last delivered event as fast as possible (whose due time is unbounded)."""
        if math.isinf(self._speed) and self._state is not SourceState.PAUSED:
            if self._last_t is None:
                return self._anchor_stream
            return self._last_t - self._loop_offset
        return self._stream_now()

    def _open_at(self, start_us: int | None) -> None:
        if start_us is not None and self._first_t is None:
            # Loop offsets need the recording's own first timestamp, not the sought one.
            first = next(self.reader.packets(max_events=1), None)
            self._first_t = None if first is None else int(first["t"][0])
        self._packets = self.reader.packets(start_us=start_us)
        self._pending = np.zeros(0, dtype=EVENT_DTYPE)
        self._anchor_stream = start_us
        self._anchor_wall = self._clock()

    def _anchor(self, stream_t: int | None) -> None:
        self._anchor_stream = stream_t
        self._anchor_wall = self._clock()

    def _stream_now(self) -> int | None:
        """The recording-clock time that is due now (None before the first event)."""
        if self._state is SourceState.PAUSED:
            return self._paused_at
        if self._anchor_stream is None:
            return None
        if math.isinf(self._speed):
            return np.iinfo(np.int64).max
        elapsed = (self._clock() - self._anchor_wall) * self._speed
        return self._anchor_stream + round(elapsed * 1e6)

    def _refill(self) -> bool:
        """Read the next packet into the pending buffer; handle the end and looping."""
        assert self._packets is not None
        packet = next(self._packets, None)
        if packet is not None:
            if self._first_t is None:
                self._first_t = int(packet["t"][0])
            self._pending = packet
            return True
        if not self.loop or self._first_t is None:
            self._state = SourceState.ENDED
            return False
        # Start the next pass; shift its timestamps to follow the previous pass.
        last = self._last_t if self._last_t is not None else self._first_t
        self._loop_offset = last + 1 - self._first_t
        self._passes += 1
        self._packets = self.reader.packets()
        self._anchor(self._first_t)
        self._anchor_wall = self._clock()
        return self._refill_once()

    def _refill_once(self) -> bool:
        assert self._packets is not None
        packet = next(self._packets, None)
        if packet is None:
            self._state = SourceState.ENDED
            return False
        self._pending = packet
        return True

    def _fail(self, message: str) -> None:
        self._state = SourceState.ERROR
        self._message = message
        self._packets = None
        self._pending = self._pending[:0]
