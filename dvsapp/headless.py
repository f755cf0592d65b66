"""The headless pipeline: replay a recording through the streaming binner and report.

It is what plain `dvsapp` runs until the GUI lands, and a quick way to check that a
recording streams and bins as expected.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import TextIO

from dvsapp.binning import BinningConfig, StreamingBinner
from dvsapp.events.sources import ReplaySource, SourceState

REPORT_EVERY_S = 1.0
IDLE_SLEEP_S = 0.002


def play(
    path: str | os.PathLike[str],
    speed: float = 1.0,
    loop: bool = False,
    bin_us: int = 10_000,
    input_size: tuple[int, int] | None = None,
    duration_s: float | None = None,
    out: TextIO = sys.stdout,
) -> int:
    """Stream ``path`` through the binner, printing a line per second; returns an exit code."""
    source = ReplaySource(path, speed=speed, loop=loop)
    w, h, _ = source.sensor_size
    config = BinningConfig(sensor_size=(w, h), time_window_us=bin_us, input_size=input_size)
    binner = StreamingBinner(config)
    c, fh, fw = config.frame_shape
    pace = "as fast as possible" if math.isinf(speed) else f"{speed:g}x real time"
    print(f"replaying {path} ({source.reader.format_name}, {w}x{h}) at {pace}", file=out)
    print(f"binning {bin_us} us windows into {c}x{fh}x{fw} frames", file=out)
    if source.labels:
        print(f"{len(source.labels)} labelled segments", file=out)
    print(
        f"{'wall s':>7} {'stream s':>9} {'events':>11} {'ev/s':>10} {'frames':>7} {'ev/frame':>9}",
        file=out,
    )
    frames_total = 0
    events_window = frames_window = 0
    wall0 = last_report = time.monotonic()
    t_first: int | None = None
    with source:
        while True:
            events = source.poll()
            if len(events):
                t_first = int(events["t"][0]) if t_first is None else t_first
                frames = binner.push(events)
                events_window += len(events)
                frames_window += len(frames)
            now = time.monotonic()
            st = source.status()
            done = st.state in (SourceState.ENDED, SourceState.ERROR)
            timed_out = duration_s is not None and now - wall0 >= duration_s
            if done or timed_out:
                frames_window += len(binner.flush())
            if now - last_report >= REPORT_EVERY_S or done or timed_out:
                span = max(now - last_report, 1e-9)
                stream_s = (
                    0.0
                    if st.stream_time_us is None or t_first is None
                    else ((st.stream_time_us - t_first) / 1e6)
                )
                per_frame = events_window / frames_window if frames_window else 0.0
                print(
                    f"{now - wall0:7.2f} {stream_s:9.3f} {st.events_delivered:11,d} "
                    f"{events_window / span:10,.0f} {frames_window:7d} {per_frame:9.1f}",
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
    if st.state is SourceState.ERROR:
        print(f"dvsapp: error: {st.message}", file=sys.stderr)
        return 2
    print(f"done: {st.events_delivered:,} events, {frames_total:,} frames", file=out)
    return 0
