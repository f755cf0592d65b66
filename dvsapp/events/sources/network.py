"""A live DV software network stream (dv-processing ``NetworkReader``) over TCP or a UNIX socket.

A reader thread owns the ``dv.io.NetworkReader``: it connects, drains event batches into a
bounded queue (the oldest events are dropped, and counted, when the consumer falls behind) and
reconnects with a bounded backoff when the writer goes away. ``poll()`` only takes what is
queued. dv-processing 2.0.4 behaviours this relies on (measured): ``getNextEventBatch()``
never blocks (it returns ``None`` when nothing has arrived), ``isRunning()`` turns ``False``
once the peer closed the connection, and the constructor fails at once with a
``RuntimeError`` when nobody listens ("Connection refused", "No such file or directory") or
the address is not an IP literal ("Invalid argument").

States: RUNNING while connected and data flows, STALLED when connected but nothing came for
``stall_after_s``, DISCONNECTED (with a one-line message naming the address) while there is
no writer, ERROR for an address that can never work (``status().message`` says why).
Timestamps are passed through unchanged (the writer's clock, microseconds).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import stat
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from dvsapp.events.sources.base import EventSource, SourceState, SourceStatus
from dvsapp.events.types import EVENT_DTYPE, SensorSize, empty_events

#: Default queue capacity in events (about 16 MB in our dtype).
DEFAULT_QUEUE_EVENTS = 1 << 20
#: Placeholder sensor size until the stream's resolution is known.
UNKNOWN_SENSOR: SensorSize = (0, 0, 2)
_UNIX_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL
_IDLE_SLEEP_S = 0.001
_JOIN_TIMEOUT_S = 2.0


def _one_line(error: BaseException) -> str:
    """dv-processing's messages carry a boost source location in brackets: keep the text."""
    text = " ".join(str(error).split()) or type(error).__name__
    return text.split(" [", 1)[0]


def to_events(batch: Any) -> np.ndarray:
    """Convert a ``dv.EventStore`` (``numpy()``: timestamp, x, y, polarity) to our dtype."""
    raw = batch.numpy()
    out = np.empty(len(raw), dtype=EVENT_DTYPE)
    out["x"] = raw["x"]
    out["y"] = raw["y"]
    out["t"] = raw["timestamp"]
    out["p"] = raw["polarity"] != 0
    return out


class NetworkSource(EventSource):
    """Events from a DV network stream (a dv-processing ``NetworkWriter`` or DV software).

    Build it with :meth:`tcp` or :meth:`unix`. ``start()`` waits up to ``start_wait_s`` for the
    first connection so that ``sensor_size`` holds the stream's resolution when a writer is
    there; otherwise ``sensor_size`` stays ``UNKNOWN_SENSOR`` until one connects.
    """

    capabilities = frozenset()

    def __init__(
        self,
        address: tuple[str, int] | str | os.PathLike[str],
        *,
        queue_events: int = DEFAULT_QUEUE_EVENTS,
        stall_after_s: float = 1.0,
        retry_min_s: float = 0.1,
        retry_max_s: float = 0.5,
        start_wait_s: float = 1.0,
    ) -> None:
        if isinstance(address, tuple):
            host, port = address
            host = "127.0.0.1" if host == "localhost" else host  # dv takes IP literals only
            self._tcp: tuple[str, int] | None = (str(host), int(port))
            self._path: Path | None = None
            self.address = f"tcp://{host}:{port}"
        else:
            self._tcp = None
            self._path = Path(address)
            self.address = f"unix://{self._path}"
        super().__init__(f"network:{self.address}", UNKNOWN_SENSOR)
        if queue_events < 1:
            raise ValueError(f"queue_events must be >= 1, not {queue_events}")
        self.queue_events = int(queue_events)
        self.stall_after_s = float(stall_after_s)
        self.retry_min_s = float(retry_min_s)
        self.retry_max_s = max(float(retry_max_s), self.retry_min_s)
        self.start_wait_s = float(start_wait_s)
        self._lock = threading.Lock()
        self._queue: deque[np.ndarray] = deque()
        self._queued = 0
        self._state = SourceState.IDLE
        self._message = ""
        self._delivered = 0
        self._dropped = 0
        self._received = 0
        self._connects = 0
        self._last_t: int | None = None
        self._camera = ""
        self._stop = threading.Event()
        self._attempted = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def tcp(cls, host: str, port: int, **kwargs: Any) -> NetworkSource:
        """A source reading from a TCP ``NetworkWriter`` at ``host:port`` (an IP address)."""
        return cls((host, port), **kwargs)

    @classmethod
    def unix(cls, path: str | os.PathLike[str], **kwargs: Any) -> NetworkSource:
        """A source reading from a ``NetworkWriter`` on the UNIX socket at ``path``."""
        return cls(path, **kwargs)

    # -- EventSource ---------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        problem = self._address_problem()
        if problem is not None:
            self._set(SourceState.ERROR, f"{self.address}: {problem}")
            return
        self._stop.clear()
        self._attempted.clear()
        self._set(SourceState.DISCONNECTED, f"{self.address}: connecting")
        self._thread = threading.Thread(target=self._run, name=f"dvsapp-{self.name}", daemon=True)
        self._thread.start()
        self._attempted.wait(self.start_wait_s)

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(_JOIN_TIMEOUT_S)
            if thread.is_alive():
                self._set(SourceState.ERROR, f"{self.address}: reader thread did not stop")
                return
        with self._lock:
            if self._state is not SourceState.ERROR:
                self._state = SourceState.IDLE

    def poll(self, max_events: int | None = None) -> np.ndarray:
        limit = self.queue_events if max_events is None else max(0, int(max_events))
        parts: list[np.ndarray] = []
        n = 0
        with self._lock:
            while self._queue and n < limit:
                head = self._queue[0]
                take = min(len(head), limit - n)
                if take == len(head):
                    parts.append(self._queue.popleft())
                else:
                    parts.append(head[:take])
                    self._queue[0] = head[take:]
                n += take
            self._queued -= n
            self._delivered += n
            if n:
                self._last_t = int(parts[-1]["t"][-1])
        if not parts:
            return empty_events()
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def status(self) -> SourceStatus:
        with self._lock:
            return SourceStatus(
                state=self._state,
                message=self._message,
                events_delivered=self._delivered,
                events_dropped=self._dropped,
                stream_time_us=self._last_t,
                extra={
                    "address": self.address,
                    "events_received": self._received,
                    "events_queued": self._queued,
                    "connects": self._connects,
                    "camera": self._camera,
                },
            )

    # -- reader thread -------------------------------------------------------------------
    def _address_problem(self) -> str | None:
        """Why the address can never work, or None."""
        if self._tcp is not None:
            host, port = self._tcp
            try:
                ipaddress.ip_address(host)
            except ValueError:
                return f"host {host!r} is not an IP address"
            if not 0 < port < 65536:
                return f"port {port} is outside 1-65535"
            return None
        assert self._path is not None
        if len(os.fsencode(self._path)) > _UNIX_PATH_MAX:
            return f"socket path is longer than {_UNIX_PATH_MAX} bytes"
        if not self._path.parent.is_dir():
            return "the socket's folder does not exist"
        with contextlib.suppress(OSError):
            if not stat.S_ISSOCK(self._path.stat().st_mode):
                return "the path exists and is not a socket"
        return None

    def _connect(self) -> Any:
        import dv_processing as dv

        if self._tcp is not None:
            return dv.io.NetworkReader(*self._tcp)
        return dv.io.NetworkReader(str(self._path))

    def _run(self) -> None:
        delay = self.retry_min_s
        reader: Any = None
        last_data = time.monotonic()
        try:
            while not self._stop.is_set():
                if reader is None:
                    reader = self._try_connect()
                    self._attempted.set()
                    if reader is None:
                        if self._state is SourceState.ERROR:
                            return
                        self._stop.wait(delay)
                        delay = min(delay * 2, self.retry_max_s)
                        continue
                    delay = self.retry_min_s
                    last_data = time.monotonic()
                got = self._drain(reader)
                now = time.monotonic()
                if got:
                    last_data = now
                    self._set(SourceState.RUNNING, "")
                elif not reader.isRunning():
                    reader = None
                    self._set(SourceState.DISCONNECTED, f"{self.address}: the writer went away")
                    continue
                elif now - last_data > self.stall_after_s:
                    idle = now - last_data
                    self._set(SourceState.STALLED, f"{self.address}: no data for {idle:.1f} s")
                self._stop.wait(_IDLE_SLEEP_S)
        except Exception as e:  # a failure inside dv-processing: report, never raise
            self._set(SourceState.ERROR, f"{self.address}: {_one_line(e)}")
        finally:
            self._attempted.set()
            del reader

    def _try_connect(self) -> Any:
        try:
            reader = self._connect()
            if not reader.isEventStreamAvailable():
                self._set(SourceState.ERROR, f"{self.address}: the stream carries no events")
                return None
            w, h = reader.getEventResolution() or (0, 0)
        except RuntimeError as e:
            text = _one_line(e)
            if "Invalid argument" in text:
                self._set(SourceState.ERROR, f"{self.address}: {text}")
            else:
                why = "the writer went away" if self._connects else "no writer"
                self._set(SourceState.DISCONNECTED, f"{self.address}: {why}, retrying ({text})")
            return None
        self.sensor_size = (int(w), int(h), 2)
        with self._lock:
            self._connects += 1
            self._camera = str(reader.getCameraName())
            self._state = SourceState.RUNNING
            self._message = ""
        return reader

    def _drain(self, reader: Any, max_batches: int = 1000) -> int:
        """Move every batch that has arrived into the queue; returns the events moved."""
        got = 0
        for _ in range(max_batches):
            batch = reader.getNextEventBatch()
            if batch is None:
                break
            events = to_events(batch)
            if len(events):
                self._push(events)
                got += len(events)
        return got

    def _push(self, events: np.ndarray) -> None:
        with self._lock:
            self._queue.append(events)
            self._queued += len(events)
            self._received += len(events)
            excess = self._queued - self.queue_events
            while excess > 0:
                head = self._queue[0]
                if len(head) <= excess:
                    self._queue.popleft()
                    cut = len(head)
                else:
                    self._queue[0] = head[excess:]
                    cut = excess
                self._queued -= cut
                self._dropped += cut
                excess -= cut

    def _set(self, state: SourceState, message: str) -> None:
        with self._lock:
            self._state = state
            self._message = message
