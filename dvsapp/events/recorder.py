"""Headless sinks for any event source: `dvsapp record` (to AEDAT4) and `dvsapp play --source`.

``record`` starts the source, learns its sensor size (live sources learn it when they open),
and streams what ``poll()`` returns into ``writers.write_aedat4`` until the duration is up,
the source ends or fails, or Ctrl-C (which finishes the file cleanly: SIGINT only sets a flag
while recording from the main thread). A source that cannot start (no camera attached, a
missing file) raises SourceUnavailable, one line, before anything is written.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from dvsapp.errors import DvsappError
from dvsapp.events.sources.base import EventSource, SourceState
from dvsapp.events.writers import write_aedat4

REPORT_EVERY_S = 1.0
IDLE_SLEEP_S = 0.002
#: How long to wait for a live source to learn its sensor size before giving up.
SENSOR_WAIT_S = 5.0
_FAILED = (SourceState.ERROR, SourceState.DISCONNECTED)
_DONE = (SourceState.ENDED, SourceState.ERROR, SourceState.DISCONNECTED)


class SourceUnavailable(DvsappError):
    """A source that could not start (the CLI prints the line and exits 2)."""


@dataclass(frozen=True)
class RecordResult:
    """What a recording wrote and why it stopped."""

    events: int
    dropped: int
    wall_s: float
    reason: str


@contextlib.contextmanager
def _sigint_flag() -> Iterator[threading.Event]:
    """An event set on Ctrl-C instead of KeyboardInterrupt (main thread only)."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.signal(signal.SIGINT, lambda *_: flag.set())
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def start_source(source: EventSource, wait_s: float = SENSOR_WAIT_S) -> list[np.ndarray]:
    """Start ``source`` and wait (up to ``wait_s``) until it knows its sensor size; returns
    any events polled meanwhile. Raises SourceUnavailable when it cannot start."""
    source.start()
    early: list[np.ndarray] = []
    deadline = time.monotonic() + wait_s
    while True:
        st = source.status()
        if st.state in _FAILED or (st.state is SourceState.ENDED and not early):
            source.stop()
            raise SourceUnavailable(st.message or f"{source.name}: {st.state.value}")
        w, h = source.sensor_size[:2]
        if w > 0 and h > 0:
            return early
        if time.monotonic() > deadline:
            source.stop()
            raise SourceUnavailable(f"{source.name}: no sensor size after {wait_s:g} s")
        events = source.poll()
        if len(events):
            early.append(events)
        else:
            time.sleep(IDLE_SLEEP_S)


def record(
    source: EventSource,
    out: str | os.PathLike[str],
    duration_s: float | None = None,
    progress: TextIO | None = None,
    quiet: bool = False,
) -> RecordResult:
    """Record ``source`` into the AEDAT4 file ``out`` (see the module docstring); progress
    lines go to ``progress`` (default: stderr) unless ``quiet``."""
    progress = None if quiet else (progress or sys.stderr)
    if duration_s is not None and not duration_s > 0:
        from dvsapp.errors import ConfigError

        raise ConfigError(f"--duration must be > 0 seconds, not {duration_s}")
    early = start_source(source)
    wall0 = time.monotonic()
    reason = ["stopped"]

    def packets(stop: threading.Event) -> Iterator[np.ndarray]:
        yield from early
        last_report = wall0
        while True:
            events = source.poll()
            if len(events):
                yield events
            now = time.monotonic()
            st = source.status()
            if progress is not None and now - last_report >= REPORT_EVERY_S:
                print(
                    f"recording {now - wall0:6.1f} s  {st.events_delivered:>12,d} events  "
                    f"{st.events_dropped:,d} dropped",
                    file=progress,
                    flush=True,
                )
                last_report = now
            if stop.is_set():
                reason[0] = "interrupted"
                return
            if duration_s is not None and now - wall0 >= duration_s:
                reason[0] = f"{duration_s:g} s recorded"
                return
            if st.state in _DONE and not len(events):
                reason[0] = st.message or st.state.value
                return
            if not len(events):
                time.sleep(IDLE_SLEEP_S)

    try:
        with _sigint_flag() as stop:
            n = write_aedat4(out, packets(stop), source.sensor_size, camera_name=source.name)
    finally:
        source.stop()
    st = source.status()
    result = RecordResult(n, st.events_dropped, time.monotonic() - wall0, reason[0])
    if progress is not None:
        print(
            f"wrote {n:,} events to {os.fspath(out)} ({result.reason}; "
            f"{result.dropped:,d} dropped)",
            file=progress,
        )
    return result


__all__ = ["RecordResult", "SourceUnavailable", "record", "start_source"]
