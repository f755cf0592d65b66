"""Make recordings/demo_rotating_bar.aedat4: a small, deterministic DVS128-like scene.

A bright bar rotates about the centre while a dark dot circles it, rendered at 1 kHz and
turned into events by a plain log-intensity contrast model (threshold 0.2, a little
background noise). It is a stand-in until the synthetic gesture recordings ship.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from dvsapp.events.types import EVENT_DTYPE
from dvsapp.events.writers import write_aedat4

SIZE = 128
FRAME_US = 1000
THRESHOLD = 0.2
T0_US = 1_000_000


def render(t_s: float, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Log intensity of the scene at time ``t_s``."""
    c = (SIZE - 1) / 2
    angle = 2 * np.pi * 0.5 * t_s
    dx, dy = xx - c, yy - c
    along = dx * np.cos(angle) + dy * np.sin(angle)
    across = -dx * np.sin(angle) + dy * np.cos(angle)
    img = np.full((SIZE, SIZE), 0.25)
    img[(np.abs(across) < 4) & (np.abs(along) < 45)] = 1.0
    orbit = 2 * np.pi * 0.3 * t_s
    ox, oy = c + 52 * np.cos(orbit), c + 52 * np.sin(orbit)
    img[(xx - ox) ** 2 + (yy - oy) ** 2 < 36] = 0.05
    return np.log(img)


def events(duration_s: float, seed: int = 0) -> Iterator[np.ndarray]:
    """Event packets, one per rendered millisecond."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    ref = render(0.0, yy, xx)
    for k in range(1, int(duration_s * 1e6 / FRAME_US)):
        t0 = T0_US + (k - 1) * FRAME_US
        cur = render(k * FRAME_US / 1e6, yy, xx)
        diff = cur - ref
        n = np.floor(np.abs(diff) / THRESHOLD).astype(np.int64)
        ys, xs = np.nonzero(n)
        counts = n[ys, xs]
        ref[ys, xs] += np.sign(diff[ys, xs]) * counts * THRESHOLD
        ex = np.repeat(xs, counts)
        ey = np.repeat(ys, counts)
        ep = np.repeat(diff[ys, xs] > 0, counts)
        noise = rng.poisson(SIZE * SIZE * 2e-4)
        nx, ny = rng.integers(0, SIZE, noise), rng.integers(0, SIZE, noise)
        packet = np.empty(len(ex) + noise, dtype=EVENT_DTYPE)
        packet["x"] = np.concatenate([ex, nx])
        packet["y"] = np.concatenate([ey, ny])
        packet["p"] = np.concatenate([ep, rng.random(noise) < 0.5])
        packet["t"] = t0 + rng.integers(0, FRAME_US, len(packet))
        packet.sort(order="t", kind="stable")
        yield packet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    default = Path(__file__).resolve().parents[1] / "recordings" / "demo_rotating_bar.aedat4"
    ap.add_argument("out", nargs="?", type=Path, default=default)
    ap.add_argument("--duration", type=float, default=8.0)
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_aedat4(args.out, events(args.duration), (SIZE, SIZE, 2), compression="zstd_high")
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
