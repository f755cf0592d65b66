"""The critic's verdict on a synthetic set and the set's event statistics, in one pass.

    nice -n 5 .venv/bin/python benchmarks/bench_critic.py --generator 2 --n-per-class 10

Runs ``dvsapp synth --critic``'s measurement (:func:`dvsapp.synth.critic.run_critic`) and, on
the same clips, :func:`dvsapp.synth.stats.event_stats` (pooled over the clips for the rows and
columns holding the central 95% of events; mean, min and max per clip for the rest), next to
the ranges measured on real DVS128 Gesture clips. Prints the critic's table, then the
statistics; ``--json PATH`` writes both.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from dvsapp.synth import critic
from dvsapp.synth.stats import REAL_RANGES, event_stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--generator", type=int, default=1)
    ap.add_argument("--n-per-class", type=int, default=10)
    ap.add_argument("--seed", type=int, default=critic.DEFAULT_SEED)
    ap.add_argument("--clip-s", type=float, default=critic.DEFAULT_CLIP_S)
    ap.add_argument("--json", default=None, metavar="PATH")
    args = ap.parse_args(argv)
    make = critic.clip_maker(args.generator)
    per_clip: list[dict[str, float]] = []
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []

    def make_and_measure(c: int, seed: int, duration_s: float) -> np.ndarray:
        ev = make(c, seed, duration_s)
        per_clip.append(event_stats(ev, duration_s))
        rows.append(ev["y"])
        cols.append(ev["x"])
        return ev

    t0 = time.perf_counter()
    report = critic.run_critic(
        args.n_per_class,
        seed=args.seed,
        clip_s=args.clip_s,
        generator=args.generator,
        make_clip=make_and_measure,
        progress=lambda done, total: print(f"\r{done}/{total}", end="", file=sys.stderr),
    )
    print(file=sys.stderr)
    wall = time.perf_counter() - t0
    y, x = np.concatenate(rows), np.concatenate(cols)
    pooled = {
        "row_lo": float(np.percentile(y, 2.5)),
        "row_hi": float(np.percentile(y, 97.5)),
        "col_lo": float(np.percentile(x, 2.5)),
        "col_hi": float(np.percentile(x, 97.5)),
    }
    stats: dict[str, dict[str, float]] = {}
    for key in ("rate", "on_fraction", "pixels_fired"):
        v = np.array([s[key] for s in per_clip])
        stats[key] = {"mean": float(v.mean()), "min": float(v.min()), "max": float(v.max())}
    print("\n".join(report.table()))
    print(f"{len(per_clip)} clips in {wall:.0f} s")
    print(f"{'statistic':<14} {'this set':<34} real clips")
    for key, s in stats.items():
        lo, hi = REAL_RANGES[key]
        print(f"{key:<14} mean {s['mean']:.3g} (clips {s['min']:.3g}-{s['max']:.3g}){'':<4}"
              f" {lo:.3g}-{hi:.3g}")  # fmt: skip
    for name, lo_hi, real in (
        ("rows 95%", ("row_lo", "row_hi"), "23-121"),
        ("columns 95%", ("col_lo", "col_hi"), "3-125"),
    ):
        span = f"{pooled[lo_hi[0]]:.0f}-{pooled[lo_hi[1]]:.0f} (pooled)"
        print(f"{name:<14} {span:<34} {real}")  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"critic": report.to_dict(), "stats": stats, "pooled": pooled,
                       "wall_s": wall}, f)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
