"""How the real-data critic names arm circles drawn in different ways (issue 15's critic,
``models/snntorch_dvs_gesture.safetensors``): the sweep that led to generator version 4.

    .venv/bin/python benchmarks/critic_circles.py [--variants base,beside,...] [--clips 8]

Each variant redraws the four arm-circle classes of generator version 3 (the same subjects,
scenes, periods, phases and tempo drifts; only the arm's path changes) and lets the critic name
``--clips`` clips of 6 s per class (seeds ``--seed`` on; default the tuning seeds
3_000_000 + k, never the held-out 1_000_000 + k). Printed: clips named right per class and
variant. Diagnostics only: nothing in dvsapp uses it.

Variants: ``base`` (version 3: the whole arm around the shoulder, the forearm trailing by the
drawn elbow bend), ``beside`` (the wrist's circle 0.35 arm lengths out from the shoulder,
radius 0.6: version 4's left-arm clockwise circle), ``small`` (the wrist's circle around the
shoulder, radius 0.6), ``high`` (``beside``, 0.2 arm lengths higher), ``gravity`` (``base``,
the angle warped by 0.5 rad so the arm falls faster than it rises), ``lead`` (``base``, the
forearm leading), ``swap`` (``base`` with every event's polarity swapped).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Any

import numpy as np
import torch

from dvsapp.synth import v2, v3
from dvsapp.synth.critic import critic_predict, load_critic
from dvsapp.synth.figure import Body

CIRCLES = {3: (0, True), 4: (0, False), 5: (1, True), 6: (1, False)}  # class: (arm, clockwise)
VARIANTS: dict[str, dict[str, Any]] = {
    "base": {},
    "beside": {"centre_out": 0.35, "radius": 0.6},
    "small": {"radius": 0.6},
    "high": {"centre_out": 0.3, "radius": 0.6, "up": 0.2},
    "gravity": {"gravity": 0.5},
    "lead": {"lead": True},
    "swap": {"swap": True},
}


@dataclasses.dataclass(frozen=True)
class Circle(v2.Motion2):
    """An arm circle of class ``class_index`` drawn as the variant's fields say."""

    centre_out: float = 0.0
    radius: float | None = None
    up: float = 0.0
    gravity: float = 0.0
    lead: bool = False

    def pose(self, t_s: np.ndarray, body: Body) -> np.ndarray:
        t, u = self.cycle(t_s)
        arm, clockwise = CIRCLES[self.class_index]
        sign = -1.0 if clockwise else 1.0
        theta = self.phase + sign * (u - self.phase) * max(self.amplitude, 0.0)
        theta = theta - sign * self.gravity * np.cos(theta)
        out = v2._rest(self, len(t))
        if self.radius is None:  # the whole arm around the shoulder (versions 2 and 3)
            bend = -self.extra["elbow"] if self.lead else self.extra["elbow"]
            out[:, 2 * arm] = theta
            out[:, 2 * arm + 1] = theta - sign * bend
            return out
        length = body.upper_len + body.fore_len
        sx, sy = body.shoulders[arm]
        side = -1.0 if arm == 0 else 1.0  # out from the body
        x = sx + side * self.centre_out * length + self.radius * length * np.cos(theta)
        y = sy - self.up * length - self.radius * length * np.sin(theta)
        out[:, 2 * arm : 2 * arm + 2] = body.reach(arm, x, y, v2._OUT[arm])
        return out


def clip(c: int, seed: int, variant: dict[str, Any]) -> np.ndarray:
    """6 s of class ``c`` (an arm circle) from version 3's subject of ``seed``, drawn as
    ``variant`` says."""
    fields = {k: v for k, v in variant.items() if k != "swap"}

    def motion_of(ci: int, rng: np.random.Generator, amplitude: float | None) -> v2.Motion2:
        m = v2.draw_motion(ci, rng, amplitude)
        base = {f.name: getattr(m, f.name) for f in dataclasses.fields(v2.Motion2)}
        return Circle(**base, **fields)

    ev = v2.gesture_events(c, seed, 6.0, scene_of=v3.draw_scene, motion_of=motion_of)
    if variant.get("swap"):
        ev = ev.copy()
        ev["p"] = ~ev["p"]
    return ev


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated")
    ap.add_argument("--clips", type=int, default=8, help="clips per class (8)")
    ap.add_argument("--seed", type=int, default=3_000_000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    ck = load_critic()
    from dvsapp.snn.stepper import Stepper

    stepper = Stepper(ck.model, "cpu", rates=False, class_names=ck.class_names)
    names = list(ck.class_names)
    print(f"{'variant':10s}" + "".join(f"{names[c]:>30s}" for c in CIRCLES) + "   time")
    for name in args.variants.split(","):
        t0 = time.perf_counter()
        right = []
        for c in CIRCLES:
            seeds = range(args.seed, args.seed + args.clips)
            preds = [critic_predict(ck, clip(c, s, VARIANTS[name]), 6.0, stepper) for s in seeds]
            right.append(sum(p == c for p in preds))
        cells = "".join(f"{f'{r}/{args.clips}':>30s}" for r in right)
        print(f"{name:10s}{cells}   {time.perf_counter() - t0:.0f} s", flush=True)
    stepper.close()


if __name__ == "__main__":
    main()
