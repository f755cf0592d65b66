"""DVS emulator throughput: the pixel model on moving synthetic scenes.

    .venv/bin/python benchmarks/bench_emulator.py --frames 120

Scenes: a sinusoidal grating plus bright bars, all sliding right 3 px a frame, as uint8 BGR
(what a webcam gives; luma conversion is timed) at 30 fps timestamps, default pixel model
config (mismatch, refractory period, leak, shot noise). Frames are made before timing; each
row runs once to warm up, then ``--repeat`` times, and the table shows the median.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from dvsapp.events.emulator import DvsPixelModel, PixelModelConfig

FPS = 30.0


def scene(width: int, height: int, n: int, shift: int = 3) -> list[np.ndarray]:
    """``n`` BGR uint8 frames of a grating and bars moving right ``shift`` px a frame."""
    x = np.arange(width + n * shift, dtype=np.float32)
    y = np.arange(height, dtype=np.float32)[:, None]
    wide = 0.45 + 0.3 * np.sin(x / 9.0) * np.cos(y / 13.0)
    wide = np.broadcast_to(wide, (height, len(x))).copy()
    for b in range(0, len(x), 97):
        wide[:, b : b + 12] = 0.95
    frames = []
    for k in range(n):
        grey = (255 * wide[:, len(x) - width - k * shift : len(x) - k * shift]).astype(np.uint8)
        frames.append(np.repeat(grey[:, :, None], 3, axis=2))
    return frames


def bench(width: int, height: int, frames: int, repeat: int) -> tuple[float, float]:
    """(frames/s, events/s) of the median run."""
    data = scene(width, height, frames + 1)
    dt = round(1e6 / FPS)
    times, counts = [], []
    for _ in range(repeat + 1):
        model = DvsPixelModel(width, height, PixelModelConfig())
        model.reset(data[0], 0)
        n = 0
        t0 = time.perf_counter()
        for i, f in enumerate(data[1:], start=1):
            n += len(model.emit(f, i * dt))
        times.append(time.perf_counter() - t0)
        counts.append(n)
    wall = statistics.median(times[1:])
    return frames / wall, counts[-1] / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"{'size':>9} | {'frames/s':>9} | {'Mevents/s':>9} | {'events/frame':>12} | real time")
    print("-" * 62)
    for w, h in ((640, 480), (128, 128)):
        fps, eps = bench(w, h, args.frames, args.repeat)
        ok = "yes" if fps > FPS else "NO"
        print(f"{w}x{h:<5} | {fps:9.1f} | {eps / 1e6:9.2f} | {eps / fps:12.0f} | {ok} (>{FPS:g})")


if __name__ == "__main__":
    main()
