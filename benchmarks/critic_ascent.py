"""What would make the real-data critic name a synthetic clip right: gradient ascent on the
clip's own input frames (issue 15's critic, ``models/snntorch_dvs_gesture.safetensors``).

    .venv/bin/python benchmarks/critic_ascent.py --classes 8,7,5,9 --clips 5 [--out DIR]

For each clip of the chosen classes (``--generator``, default 2; seeds ``--seed`` on; 6 s; the
critic's own preprocessing: 32x32, 40 ms event-count bins) that the critic names wrong, the
frames are
changed by Adam on ``relu(frames + delta)`` to raise the summed input current of the true
class's output neuron over the named one's, with an L1 cost on ``delta`` (``--iters``
steps). The critic's spikes get a surrogate gradient for this only (an arctan-like
``1 / (1 + (25 u)^2)``; its forward pass is unchanged and the original is restored after).
The changed frames are rounded back to event counts and named again. Printed per clip: the
critic's answer before and after, and how many events were added and removed; saved per
class (``--out``): the mean share of the added and of the removed events per pixel and
polarity, and the mean event density, for a picture of where the critic wants more or
fewer events. Diagnostics only: nothing in dvsapp uses it.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dvsapp.binning import bin_events
from dvsapp.snn.graph import discrete
from dvsapp.synth.critic import load_critic
from dvsapp.synth.generate import gesture_events

STEPS = 150  # 6 s of 40 ms bins: the critic's window


class _Spike(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, u: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(u)
        return (u > 0).to(u.dtype)

    @staticmethod
    def backward(ctx: Any, g: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        (u,) = ctx.saved_tensors
        return g / (1 + (25 * u) ** 2)


@contextlib.contextmanager
def surrogate_spikes() -> Iterator[None]:
    """The graph's ``">"`` neurons fire through :class:`_Spike` inside the block."""
    original = discrete.DiscreteNeuron._fire

    def fire(self: discrete.DiscreteNeuron, v: torch.Tensor, thr: torch.Tensor) -> torch.Tensor:
        if self.fire_rule != ">":
            return original(self, v, thr)
        return _Spike.apply(v - thr)

    discrete.DiscreteNeuron._fire = fire  # type: ignore[method-assign]
    try:
        yield
    finally:
        discrete.DiscreteNeuron._fire = original  # type: ignore[method-assign]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--classes", default="8,7,5,9", help="class indices, comma-separated")
    ap.add_argument("--clips", type=int, default=5)
    ap.add_argument("--seed", type=int, default=1_000_000)
    ap.add_argument("--iters", type=int, default=40)
    ap.add_argument("--l1", type=float, default=0.01)
    ap.add_argument("--generator", type=int, default=2, help="synthetic generator version (2)")
    ap.add_argument("--out", type=Path, default=None, help="save each class's maps (.npz)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    ck = load_critic()
    model, names = ck.model.eval(), list(ck.class_names)
    linear = model.nodes["linear1"]  # the output neurons' input current
    currents: list[torch.Tensor] = []
    step = linear.step

    def keep(x: torch.Tensor) -> torch.Tensor:
        out = step(x)
        currents.append(out)
        return out

    linear.step = keep  # type: ignore[method-assign]

    def run(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Output spike counts and summed input currents per class over the clip."""
        currents.clear()
        model.reset()
        spikes = torch.stack([model.step(x[t : t + 1]) for t in range(x.shape[0])]).sum(0)[0]
        return spikes, torch.stack(currents).sum(0).reshape(-1)

    def frames(c: int, seed: int) -> np.ndarray:
        ev = gesture_events(c, seed, STEPS * 0.04, generator=args.generator)
        d = np.asarray(bin_events(ev, ck.binning, t0_us=0, max_empty_frames=None).data)[:STEPS]
        pad = np.zeros((STEPS - len(d), *ck.binning.frame_shape), dtype=np.float32)
        return np.concatenate([d, pad]) if len(d) < STEPS else d

    with surrogate_spikes():
        for c in (int(a) for a in args.classes.split(",")):
            add, rem, dens = np.zeros((3, *ck.binning.frame_shape))
            n = flipped = 0
            for seed in range(args.seed, args.seed + args.clips):
                d = frames(c, seed)
                x0 = torch.from_numpy(d)
                with torch.no_grad():
                    named = int(run(x0)[0].argmax())
                if named == c:
                    print(f"{names[c]} {seed}: already named right")
                    continue
                delta = torch.zeros_like(x0, requires_grad=True)
                opt = torch.optim.Adam([delta], lr=0.3)
                for _ in range(args.iters):
                    _, cur = run(torch.relu(x0 + delta))
                    loss = cur[named] - cur[c] + args.l1 * delta.abs().sum()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                x = torch.round(torch.relu(x0 + delta)).detach()
                with torch.no_grad():
                    now = int(run(x)[0].argmax())
                dd = (x - x0).numpy()
                a, r = np.clip(dd, 0, None).sum(0), np.clip(-dd, 0, None).sum(0)
                add += a / max(a.sum(), 1)
                rem += r / max(r.sum(), 1)
                dens += d.sum(0) / max(d.sum(), 1)
                n += 1
                flipped += now == c
                print(
                    f"{names[c]} {seed}: named {names[named]}, after {names[now]}; "
                    f"{a.sum():.0f} events added, {r.sum():.0f} removed of {d.sum():.0f}"
                )
            if args.out is not None and n:
                args.out.mkdir(parents=True, exist_ok=True)
                np.savez(args.out / f"class_{c}.npz", added=add / n, removed=rem / n,
                         density=dens / n, clips=n, flipped=flipped)  # fmt: skip
    linear.step = step  # type: ignore[method-assign]


if __name__ == "__main__":
    main()
