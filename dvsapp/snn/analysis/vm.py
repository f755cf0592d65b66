"""Membrane-potential statistics of every spiking layer at once, on the model's device.

Each layer's probe keeps its whole Vm map (``ProbeSpec.vm_stats``: a reference, no copy);
:class:`VmPlan` concatenates the maps and bins them all with one ``bincount``: the bins are
equal, so a neuron's bin is a multiply-add and a truncation,
``t = v * VM_BINS / ((VM_HIGH - VM_LOW) * |threshold|) + 31`` (31 = the bin index of
``v = 0``, an edge, whatever the threshold), clamped to the under- and overflow bins. The
bin index of layer ``i`` is offset by ``i * 2 * (VM_BINS + 2)`` and by ``VM_BINS + 2`` more
when the neuron is near the live threshold, so one count gives the histograms and the near
counts of all layers. Sum, sum of squares, min and max are per layer (views, no copies).
NaN counts as underflow.

The bin arithmetic runs in float64 (the maps promote to it in the first kernel): a Vm lands
in the bin that ``numpy.histogram`` over ``vm_edges`` gives it unless it lies within about
1e-15 (relative) of an edge, where the float rounding of the edges and of the bin index may
differ.
"""

from __future__ import annotations

import torch

from dvsapp.snn.analysis.records import NEAR_FRACTION, VM_BINS, VM_HIGH, VM_LOW

#: Bins per layer in one half (under, VM_BINS, over); a layer has two halves (far, near).
NBINS = VM_BINS + 2
#: The bin index (underflow = 0) of v = 0 (31 for -3..3 in 60 bins).
OFFSET = 1.0 - VM_BINS * VM_LOW / (VM_HIGH - VM_LOW)


def vm_scale(threshold: float) -> float:
    """Bins per unit of Vm: ``VM_BINS / ((VM_HIGH - VM_LOW) * |threshold|)`` (a zero
    threshold bins over ``[VM_LOW, VM_HIGH]``, as :func:`~.records.vm_edges` does)."""
    return VM_BINS / ((VM_HIGH - VM_LOW) * (abs(float(threshold)) or 1.0))


def _per_element(values: list[float], sizes: list[int], like: torch.Tensor) -> torch.Tensor:
    """float64 (so the bins agree with float64 edges up to ties) per neuron."""
    rep = torch.tensor(sizes, device=like.device)
    return torch.tensor(values, dtype=torch.float64, device=like.device).repeat_interleave(rep)


class VmPlan:
    """The per-neuron constants of one layout (layer sizes, base and live thresholds)."""

    def __init__(
        self, sizes: list[int], thresholds: list[float], now: list[float], like: torch.Tensor
    ) -> None:
        self.sizes = sizes
        n = len(sizes)
        base = [2 * NBINS * i for i in range(n)]
        self.scale = _per_element([vm_scale(t) for t in thresholds], sizes, like)
        self.offset = _per_element([b + OFFSET for b in base], sizes, like)
        self.low = _per_element([float(b) for b in base], sizes, like)
        self.high = _per_element([b + NBINS - 1.0 for b in base], sizes, like)
        self.now = _per_element(now, sizes, like)
        self.near = _per_element([NEAR_FRACTION * abs(t) for t in now], sizes, like)
        self.minlength = 2 * NBINS * n

    def reduce(self, maps: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(counts ``[layers * 2 * NBINS]`` int64, per layer ``[sum, sum of squares, min,
        max]``) of the maps (their sizes those of the plan)."""
        flat = [m.reshape(-1) for m in maps]
        v = torch.cat(flat) if len(flat) > 1 else flat[0]
        t = torch.addcmul(self.offset, v, self.scale)
        torch.nan_to_num_(t, nan=-1.0).clamp_(min=self.low, max=self.high)
        near = torch.sub(v, self.now).abs_().le_(self.near)
        t.add_(near, alpha=NBINS)
        counts = torch.bincount(t.to(torch.int32), minlength=self.minlength)
        stats = []
        for f in flat:
            lo, hi = torch.aminmax(f)
            stats.append(torch.stack((f.sum(), torch.dot(f, f), lo, hi)))
        return counts, stats
