"""The headless pipeline: stream a recording or any live source through the binner and report.

A quick way to check that a source streams and bins as expected (`dvsapp play`), without the
GUI or a model.
"""

from __future__ import annotations

import math
import os
import sys
import time
from typing import TextIO

from dvsapp.binning import BinningConfig, StreamingBinner
from dvsapp.events.recorder import start_source
from dvsapp.events.sources import EventSource, ReplaySource, SourceState

REPORT_EVERY_S = 1.0
IDLE_SLEEP_S = 0.002
_FAILED = (SourceState.ERROR, SourceState.DISCONNECTED)
_DONE = (SourceState.ENDED, *_FAILED)


def _describe(source: EventSource) -> str:
    w, h, _ = source.sensor_size
    if isinstance(source, ReplaySource):
        pace = "as fast as possible" if math.isinf(source.speed) else f"{source.speed:g}x real time"
        return f"replaying {source.reader.path} ({source.reader.format_name}, {w}x{h}) at {pace}"
    return f"playing {source.name} ({w}x{h})"


def play(
    source: str | os.PathLike[str] | EventSource,
    speed: float = 1.0,
    loop: bool = False,
    bin_us: int = 10_000,
    input_size: tuple[int, int] | None = None,
    duration_s: float | None = None,
    out: TextIO | None = None,
    *,
    fmt: str | None = None,
    denoise_us: int | None = None,
) -> int:
    """Stream ``source`` (a recording path, replayed at ``speed``, or any started-or-not
    EventSource) through the binner, printing a line per second; returns an exit code.
    ``fmt`` forces a recording path's format. With ``denoise_us`` the binner drops noise
    events first (tonic's Denoise): a ``kept`` column follows ``events`` (the source's count),
    and ev/s and ev/frame count the kept events."""
    out = out or sys.stdout
    if not isinstance(source, EventSource):
        source = ReplaySource(source, speed=speed, loop=loop, fmt=fmt)
    early = start_source(source)
    w, h, _ = source.sensor_size
    config = BinningConfig(
        sensor_size=(w, h), time_window_us=bin_us, input_size=input_size, denoise_us=denoise_us
    )
    binner = StreamingBinner(config)
    c, fh, fw = config.frame_shape
    print(_describe(source), file=out)
    denoising = f" after denoising ({denoise_us} us)" if denoise_us is not None else ""
    print(f"binning {bin_us} us windows into {c}x{fh}x{fw} frames{denoising}", file=out)
    if source.labels:
        print(f"{len(source.labels)} labelled segments", file=out)
    kept_head = f" {'kept':>11}" if denoise_us is not None else ""
    print(
        f"{'wall s':>7} {'stream s':>9} {'events':>11}{kept_head} {'ev/s':>10} {'frames':>7} "
        f"{'ev/frame':>9} {'dropped':>9}",
        file=out,
    )
    frames_total = events_window = frames_window = kept_total = 0
    wall0 = last_report = time.monotonic()
    t_first: int | None = None
    try:
        while True:
            events = early.pop(0) if early else source.poll()
            if len(events):
                t_first = int(events["t"][0]) if t_first is None else t_first
                dropped = binner.denoised_events
                frames_window += len(binner.push(events))
                events_window += len(events) - (binner.denoised_events - dropped)
                kept_total += len(events) - (binner.denoised_events - dropped)
            now = time.monotonic()
            st = source.status()
            done = st.state in _DONE and not len(events)
            timed_out = duration_s is not None and now - wall0 >= duration_s
            if done or timed_out:
                frames_window += len(binner.flush())
            if now - last_report >= REPORT_EVERY_S or done or timed_out:
                span = max(now - last_report, 1e-9)
                stream_s = 0.0
                if st.stream_time_us is not None and t_first is not None:
                    stream_s = (st.stream_time_us - t_first) / 1e6
                per_frame = events_window / frames_window if frames_window else 0.0
                kept_col = f" {kept_total:11,d}" if denoise_us is not None else ""
                print(
                    f"{now - wall0:7.2f} {stream_s:9.3f} {st.events_delivered:11,d}{kept_col} "
                    f"{events_window / span:10,.0f} {frames_window:7d} {per_frame:9.1f} "
                    f"{st.events_dropped:9,d}",
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
    kept = ""
    if denoise_us is not None:
        kept = f" ({kept_total:,} kept by denoising)"
    print(f"done: {st.events_delivered:,} events{kept}, {frames_total:,} frames", file=out)
    return 0
