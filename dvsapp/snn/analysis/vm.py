"""Membrane-potential statistics of every spiking layer at once, on the model's device.

Each layer's probe keeps its whole Vm map (``ProbeSpec.vm_stats``: a reference, no copy);
:class:`VmPlan` concatenates the maps and bins them all with one ``bincount``. The bins are
equal, so a neuron's bin is a multiply-add and a truncation,
``t = v * VM_BINS / ((VM_HIGH - VM_LOW) * |threshold|) + 31`` (31 = the bin index of
``v = 0``, an edge, whatever the threshold), clamped to the under- and overflow bins
(NaN counts as underflow). Layer ``i``'s bins are offset by ``i * 2 * NBINS``, and by
``NBINS`` more for a neuron near the live threshold, so one count gives the histograms and
the near counts of all layers. At ``threshold_scale == 1`` the near band is two bins, and
costs nothing more.

The arithmetic is float32: a Vm lands in the bin ``numpy.histogram`` over ``vm_edges``
gives it unless it lies within about 1e-4 of a bin width of an edge (a tie: float rounding
may put it in the neighbouring bin of the same layer, never in another layer's).

The bins are counted in ``STRIPES`` interleaved copies (neighbouring neurons, often in the
same bin, then never increment the same counter one after the other), summed on the device.

Two work buffers of the neurons' count serve all layers. Sums, sums of squares, minima and
maxima come from rows of ``chunk`` neurons of the concatenation (four kernels for all the
layers whose sizes ``chunk`` divides; the host reduces the rows per layer), the other
layers' from four kernels each. The layer offsets are added to the int32 bin indices in
one kernel (exact, unlike a float add). Per-op overhead (~5 us on a CPU) is most of the
cost, so the kernel count is kept low.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from dvsapp.snn.analysis.records import NEAR_FRACTION, VM_BINS, VM_HIGH, VM_LOW

#: Bins per layer in one half (under, VM_BINS, over); a layer has two halves (far, near).
NBINS = VM_BINS + 2
#: The bin index (underflow = 0) of v = 0 (31 for -3..3 in 60 bins).
OFFSET = 1.0 - VM_BINS * VM_LOW / (VM_HIGH - VM_LOW)
#: Rows of at most this many neurons for the moments; layers too small or odd go alone.
MAX_CHUNK = 1024
MIN_CHUNK = 64
#: Neighbouring neurons count into this many separate copies of the bins (added up after):
#: a run of neurons in one bin would otherwise make each increment wait for the one before
#: (a CPU bincount of a real Vm map ran at half the speed of the same indices shuffled).
STRIPES = 8


def compiled_kernels() -> Any:
    """:mod:`~dvsapp.snn.analysis.cpu_kernels`, or None when numba cannot be imported."""
    global _KERNELS
    if _KERNELS is False:
        try:
            from dvsapp.snn.analysis import cpu_kernels
        except ImportError:
            _KERNELS = None
        else:
            _KERNELS = cpu_kernels
    return _KERNELS


_KERNELS: object = False


def load_kernels() -> bool:
    """Import the compiled kernels and load them from numba's cache (compiling them when the
    cache is cold); True when they are there. About 0.7 s on a 2-core machine: the app calls
    this in a background thread at start, so a first in-depth view does not pay it."""
    k = compiled_kernels()
    if k is None:
        return False
    k.warm_up()
    return True


def vm_scale(threshold: float) -> float:
    """Bins per unit of Vm: ``VM_BINS / ((VM_HIGH - VM_LOW) * |threshold|)`` (a zero
    threshold bins over ``[VM_LOW, VM_HIGH]``, as :func:`~.records.vm_edges` does)."""
    return VM_BINS / ((VM_HIGH - VM_LOW) * (abs(float(threshold)) or 1.0))


class VmPlan:
    """The constants of one layout: the layers' sizes (batch included), base and live
    thresholds. Layers are taken in the order given; runs of neighbours with the same
    thresholds share their kernels."""

    def __init__(
        self,
        sizes: list[int],
        thresholds: list[float],
        now: list[float],
        like: torch.Tensor,
        compiled: bool = True,
    ) -> None:
        self.sizes = sizes
        n = len(sizes)
        ends = np.cumsum(sizes).tolist()
        starts = [0, *ends[:-1]]
        self.layers = list(zip(starts, ends, strict=True))
        #: Per layer, the two bins that make up its near band when the live threshold is the
        #: base one (``threshold_scale == 1``: the band ``[0.9, 1.1] * threshold`` is bins
        #: 40 and 41, or 20 and 21 for a negative threshold), else None.
        self.near_bins: list[tuple[int, int] | None] = []
        for thr, live in zip(thresholds, now, strict=True):
            aligned = NEAR_FRACTION == 0.1 and thr != 0 and float(live) == float(thr)
            low = 1.0 - NEAR_FRACTION if thr > 0 else -1.0 - NEAR_FRACTION  # band / |thr|
            k = round(OFFSET + VM_BINS / (VM_HIGH - VM_LOW) * low)
            self.near_bins.append((k, k + 1) if aligned else None)
        #: (start, end, bins per Vm unit, live threshold, near half-width or None when the
        #: bins give the band) per run
        self.runs: list[tuple[int, int, float, float, float | None]] = []
        for i in range(n):
            half = None if self.near_bins[i] else NEAR_FRACTION * abs(float(now[i]))
            key = (vm_scale(thresholds[i]), float(now[i]), half)
            if self.runs and self.runs[-1][2:] == key:
                self.runs[-1] = (self.runs[-1][0], ends[i], *key)
            else:
                self.runs.append((starts[i], ends[i], *key))
        self.offset = torch.tensor(OFFSET, dtype=like.dtype, device=like.device)
        self.minlength = 2 * NBINS * n
        # work buffers, reused every step: the maps (then the near flags), the bins (the
        # same buffer when no near band is computed) and the bin indices (int16 or int32)
        total = sum(sizes)
        self._v = torch.empty(total, dtype=torch.float32, device=like.device)
        # with no near band to compute the bins are made in place (a smaller working set:
        # on a CPU the pass is bound by the cache, not the arithmetic)
        self._t = self._v if all(r[4] is None for r in self.runs) else torch.empty_like(self._v)
        #: each neuron's offset in the striped counts (int32): its layer's, plus the
        #: minlength times its index modulo STRIPES
        base = torch.repeat_interleave(
            torch.arange(n, dtype=torch.int32) * (2 * NBINS), torch.tensor(sizes)
        )
        stripe = torch.arange(total, dtype=torch.int32) % STRIPES * self.minlength
        small = STRIPES * self.minlength <= torch.iinfo(torch.int16).max
        kind = torch.int16 if small else torch.int32
        self._base = (base + stripe).to(like.device, kind)
        self._index = torch.empty(total, dtype=kind, device=like.device)
        # rows as long as possible that cover every layer (a layer alone costs four kernels
        # more: on a CPU right after a model step ~10 us each), else rows for the big ones
        common = math.gcd(*sizes)
        chunk = next(c for c in range(min(common, MAX_CHUNK), 0, -1) if common % c == 0)
        if chunk < MIN_CHUNK:
            big = [s for s in sizes if s >= MAX_CHUNK]
            chunk = min(MAX_CHUNK, math.gcd(*big)) if big else 0
        # the leading layers whose sizes the chunk divides are summed by rows
        lead = 0
        if chunk >= MIN_CHUNK:
            while lead < n and sizes[lead] % chunk == 0:
                lead += 1
        self.chunk = chunk if lead else 0
        self.lead = lead
        self.rows = sum(sizes[:lead]) // chunk if lead else 0
        #: Per leading layer, its first row (for numpy.add.reduceat).
        self.row_starts = np.cumsum([0] + [s // chunk for s in sizes[:lead]])[:-1] if lead else []
        #: On a CPU with float32 maps, :meth:`host_statistics` does it all in one compiled
        #: call (:mod:`~dvsapp.snn.analysis.cpu_kernels`), when numba is there.
        self.compiled = (
            compiled
            and like.device.type == "cpu"
            and like.dtype == torch.float32
            and compiled_kernels() is not None
        )
        if self.compiled:
            self._scale = np.array([vm_scale(t) for t in thresholds], np.float64)
            self._now = np.array([float(x) for x in now], np.float64)
            self._half = np.array(
                [
                    -1.0 if nb else NEAR_FRACTION * abs(float(x))
                    for nb, x in zip(self.near_bins, now, strict=True)
                ],
                np.float64,
            )
            self._near_bins = np.array([nb or (-1, -1) for nb in self.near_bins], np.int64)
            assert 2 * NBINS <= 256  # the kernel's bins are bytes
            self._work = np.empty(max(sizes), dtype=np.uint8)
            self._sizes = np.array(sizes, dtype=np.int64)

    def host_statistics(self, maps: list[torch.Tensor]) -> tuple[np.ndarray, list[list[float]]]:
        """From CPU float32 maps in one compiled call (only when :attr:`compiled`): the
        counts ``[layers, NBINS]`` and per layer [neurons, near fraction, mean, std, min,
        max]."""
        k = compiled_kernels()
        assert k is not None
        n = len(self.sizes)
        counts = np.empty((n, NBINS), dtype=np.int64)
        stats = np.empty((n, 6), dtype=np.float64)
        # contiguous float32 CPU maps of the plan's sizes (the caller checks), alive till the
        # call returns
        addresses = np.array([m.data_ptr() for m in maps], dtype=np.int64)
        k.vm_statistics(
            addresses,
            self._sizes,
            self._scale,
            OFFSET,
            self._now,
            self._half,
            self._near_bins,
            NBINS,
            counts,
            stats,
            self._work,
        )
        return counts, stats.tolist()

    def reduce(self, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        """Device tensors (all float32 but the counts, int64), in this order: the counts
        ``[layers * 2 * NBINS]``; row sums, row sums of squares, row minima and row maxima
        ``[rows]`` each (when there are rows); min, max, sum and sum of squares per layer
        after the leading ones, stacked ``[(layers - lead) * 4]`` (when there are any)."""
        flat = [m.reshape(-1) for m in maps]
        v = torch.cat(flat, out=self._v)
        t = self._t
        out: list[torch.Tensor] = []
        if self.rows:  # the moments first: v is then overwritten
            rows = v[: self.rows * self.chunk].view(self.rows, self.chunk)
            out += [rows.sum(1), torch.linalg.vecdot(rows, rows), rows.amin(1), rows.amax(1)]
        scalars: list[torch.Tensor] = []
        for f in flat[self.lead :]:
            scalars += [*torch.aminmax(f), f.sum(), torch.dot(f, f)]
        for a, b, scale, _, _ in self.runs:
            torch.add(self.offset, v[a:b], alpha=scale, out=t[a:b])
        torch.nan_to_num_(t, nan=0.0, posinf=float(VM_BINS + 1), neginf=0.0)
        t.clamp_(0.0, float(VM_BINS + 1))
        for a, b, _, now, near in self.runs:  # v becomes the near flags (0/1)
            if near is not None:
                t[a:b].add_(v[a:b].sub_(now).abs_().le_(near), alpha=NBINS)
        index = self._index.copy_(t).add_(self._base)
        counts = torch.bincount(index, minlength=STRIPES * self.minlength)
        out.insert(0, counts.view(STRIPES, self.minlength).sum(0))
        if scalars:
            out.append(torch.stack(scalars))
        return out

    def unpack(self, counts: np.ndarray, rest: np.ndarray) -> tuple[np.ndarray, ...]:
        """From the host copies of :meth:`reduce`'s counts and of the float parts after
        them: counts ``[layers, 2, NBINS]`` (far, near: to be added up) and per layer the
        neurons near the threshold, sum, sum of squares, min and max (in plan order)."""
        n = len(self.sizes)
        r = self.rows
        at = 4 * r
        tail = rest[at : at + 4 * (n - self.lead)].reshape(-1, 4)
        lows, highs, sums, squares = tail[:, 0], tail[:, 1], tail[:, 2], tail[:, 3]
        if r:
            s = self.row_starts
            sums = np.concatenate((np.add.reduceat(rest[:r], s), sums))
            squares = np.concatenate((np.add.reduceat(rest[r : 2 * r], s), squares))
            lows = np.concatenate((np.minimum.reduceat(rest[2 * r : 3 * r], s), lows))
            highs = np.concatenate((np.maximum.reduceat(rest[3 * r : at], s), highs))
        counts = counts.reshape(n, 2, NBINS)
        near = counts[:, 1].sum(1)
        for i, bins in enumerate(self.near_bins):
            if bins is not None:
                near[i] += counts[i, 0, bins[0]] + counts[i, 0, bins[1]]
        return counts, near, sums, squares, lows, highs
