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


def play_source(
    source: EventSource,
    bin_us: int = 10_000,
    input_size: tuple[int, int] | None = None,
    duration_s: float | None = None,
    out: TextIO | None = None,
) -> int:
    """Stream any source through the binner, printing a line per second (as ``play``) to
    ``out`` (default: stdout)."""
    out = out or sys.stdout
    from dvsapp.binning import BinningConfig, StreamingBinner

    early = start_source(source)
    w, h, _ = source.sensor_size
    config = BinningConfig(sensor_size=(w, h), time_window_us=bin_us, input_size=input_size)
    binner = StreamingBinner(config)
    c, fh, fw = config.frame_shape
    print(f"playing {source.name} ({w}x{h})", file=out)
    print(f"binning {bin_us} us windows into {c}x{fh}x{fw} frames", file=out)
    print(f"{'wall s':>7} {'events':>11} {'ev/s':>10} {'frames':>7} {'dropped':>9}", file=out)
    frames_total = events_window = frames_window = 0
    wall0 = last_report = time.monotonic()
    try:
        while True:
            events = early.pop(0) if early else source.poll()
            if len(events):
                frames_window += len(binner.push(events))
                events_window += len(events)
            now = time.monotonic()
            st = source.status()
            done = st.state in _DONE and not len(events)
            timed_out = duration_s is not None and now - wall0 >= duration_s
            if done or timed_out:
                frames_window += len(binner.flush())
            if now - last_report >= REPORT_EVERY_S or done or timed_out:
                span = max(now - last_report, 1e-9)
                print(
                    f"{now - wall0:7.2f} {st.events_delivered:11,d} "
                    f"{events_window / span:10,.0f} {frames_window:7d} {st.events_dropped:9,d}",
                    file=out,
                    flush=True,
                )
                frames_total += frames_window
                events_window = frames_window = 0
                last_report = now
            if done or timed_out:
                break
            if not len(events):
                time.sleep(IDLE_SLEEP_S)
    finally:
        source.stop()
    if st.state in _FAILED:
        print(f"dvsapp: error: {st.message}", file=sys.stderr)
        return 2
    print(f"done: {st.events_delivered:,} events, {frames_total:,} frames", file=out)
    return 0


__all__ = ["RecordResult", "SourceUnavailable", "play_source", "record", "start_source"]
