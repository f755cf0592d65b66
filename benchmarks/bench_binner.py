"""Binning speed: tonic's ToFrame against dvsapp's streaming binner on one synthetic stream.

    .venv/bin/python benchmarks/bench_binner.py --events 10000000 --repeat 3

Events: uniform pixels on a 128x128x2 sensor at 1 M events/s, time-sorted; time-window
frames (10 ms by default). Each row runs once to warm up, then ``--repeat`` times; the
table shows the median. Every row's frames are checked equal to tonic's before timing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import tonic
import torch
from tonic.transforms import ToFrame

from dvsapp.binning import BinningConfig, Frames, StreamingBinner, bin_events
from dvsapp.events.types import make_events

SENSOR = (128, 128)
RATE_PER_US = 1.0


def synthetic(n: int, seed: int) -> np.ndarray:
    """``n`` time-sorted uniform events at 1 M events/s."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, int(n / RATE_PER_US), n))
    x, y = rng.integers(0, SENSOR[0], n), rng.integers(0, SENSOR[1], n)
    return make_events(x, y, t, rng.random(n) < 0.5)


def runners(events: np.ndarray, window: int, packet: int) -> dict[str, Callable[[], Any]]:
    """Row name -> a call that bins ``events`` once and returns frames as numpy."""
    cfg = BinningConfig(SENSOR, time_window_us=window)
    to_frame = ToFrame((*SENSOR, 2), time_window=window, include_incomplete=True)

    def streamed() -> list[Frames]:
        binner = StreamingBinner(cfg)
        parts = [binner.push(events[i : i + packet]) for i in range(0, len(events), packet)]
        return [*parts, binner.flush(drop_boundary_tail=True)]

    rows: dict[str, Callable[[], Any]] = {
        "tonic ToFrame": lambda: to_frame(events),
        "dvsapp numpy, one packet": lambda: bin_events(events, cfg, drop_boundary_tail=True),
        f"dvsapp numpy, {packet // 1024}k-event packets": streamed,
        "dvsapp torch cpu, one packet": lambda: bin_events(
            events, cfg, "torch", drop_boundary_tail=True
        ),
    }
    if torch.cuda.is_available():
        rows["dvsapp torch cuda, one packet"] = lambda: _synced(
            lambda: bin_events(events, cfg, "torch", "cuda", drop_boundary_tail=True)
        )
    return rows


def _synced(fn: Callable[[], Frames]) -> Frames:
    out = fn()
    torch.cuda.synchronize()
    return out


def as_array(result: Any) -> np.ndarray:
    """Frames of any row as one numpy array (outside the timed region)."""
    if isinstance(result, list):
        result = Frames.concat(result)
    if isinstance(result, Frames):
        result = result.data
    if isinstance(result, torch.Tensor):
        result = result.cpu().numpy()
    return np.asarray(result)


def measure(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median seconds of ``repeat`` runs after one warm-up run (whose result is returned)."""
    first = fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), first


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000_000, help="events in the stream")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per row (median)")
    parser.add_argument("--window-us", type=int, default=10_000, help="frame length in us")
    parser.add_argument("--packet", type=int, default=65_536, help="events per streamed packet")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    events = synthetic(args.events, args.seed)
    print(
        f"{args.events:,} events over {events['t'][-1] / 1e6:.1f} s, sensor {SENSOR[0]}x"
        f"{SENSOR[1]}x2, window {args.window_us} us; numpy {np.__version__}, torch "
        f"{torch.__version__} ({torch.get_num_threads()} threads), tonic {tonic.__version__}, "
        f"{os.cpu_count()} CPUs; median of {args.repeat} after a warm-up"
    )
    reference: np.ndarray | None = None
    print(f"{'':34s} {'seconds':>9s} {'M events/s':>11s} {'speed-up':>9s}  frames")
    base = None
    for name, fn in runners(events, args.window_us, args.packet).items():
        seconds, result = measure(fn, args.repeat)
        frames = as_array(result)
        if reference is None:
            reference = frames
        same = frames.shape == reference.shape and np.array_equal(frames, reference)
        base = base or seconds
        rate = args.events / seconds / 1e6
        check = "" if same else "  (DIFFERENT from tonic)"
        print(
            f"{name:34s} {seconds:9.3f} {rate:11.1f} {base / seconds:8.2f}x  {len(frames)}{check}"
        )


if __name__ == "__main__":
    main()
