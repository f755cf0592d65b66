"""Per-window figures of the in-depth probes, as ``dvsapp run --json`` reports them.

Each window line gets the membrane-potential statistics of every spiking layer (means over the
window's steps of the fraction near threshold, the mean and the spread), the channels of each
conv layer that stayed silent for the whole window, the synaptic operations per layer (summed
over the window) and the mean activation sparsity; with ``--rates`` also each layer's Vm
histogram summed over the window's steps (counts over :func:`vm_edges` of its threshold).
The summary gives the same per step, over the whole run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from dvsapp.snn.analysis.records import StepAnalysis


class WindowAnalysis:
    """Accumulates one lane's :class:`StepAnalysis` per window and over the run."""

    def __init__(self, histograms: bool = False) -> None:
        self.histograms = histograms
        self._reset_window()
        self._run_steps = 0
        self._run_ops: dict[str, float] = {}
        self._run_kind: dict[str, str] = {}
        self._run_sparsity = 0.0
        self._run_near: dict[str, float] = {}

    def _reset_window(self) -> None:
        self._steps = 0
        self._near: dict[str, float] = {}
        self._mean: dict[str, float] = {}
        self._std: dict[str, float] = {}
        self._threshold: dict[str, float] = {}
        self._hist: dict[str, np.ndarray] = {}
        self._silent: dict[str, int] = {}
        self._saturated: dict[str, int] = {}
        self._channels: dict[str, int] = {}
        self._ops: dict[str, float] = {}
        self._kind: dict[str, str] = {}
        self._sparsity = 0.0

    def add(self, a: StepAnalysis | None) -> None:
        """One step's probes (None: the probes were off; nothing is added)."""
        if a is None:
            return
        self._steps += 1
        self._run_steps += 1
        for name, vm in a.vm.items():
            self._near[name] = self._near.get(name, 0.0) + vm.near
            self._run_near[name] = self._run_near.get(name, 0.0) + vm.near
            self._mean[name] = self._mean.get(name, 0.0) + vm.mean
            self._std[name] = self._std.get(name, 0.0) + vm.std
            self._threshold[name] = vm.threshold_now
            if self.histograms:
                counts = np.asarray(vm.counts, np.int64)
                self._hist[name] = self._hist[name] + counts if name in self._hist else counts
        for name, ch in a.channels.items():
            self._silent[name] = int(ch.silent)  # the window so far: the last step's is final
            self._saturated[name] = int(ch.saturated)
            self._channels[name] = len(ch.rates)
        for name, layer in a.synops.items():
            self._ops[name] = self._ops.get(name, 0.0) + layer.ops
            self._run_ops[name] = self._run_ops.get(name, 0.0) + layer.ops
            self._kind[name] = self._run_kind[name] = layer.kind
        self._sparsity += a.sparsity
        self._run_sparsity += a.sparsity

    def close_window(self) -> dict[str, Any]:
        """The window's figures as JSON-ready keys (empty when the probes were off)."""
        n = self._steps
        if n == 0:
            self._reset_window()
            return {}
        totals = {"AC": 0.0, "MAC": 0.0}
        for name, ops in self._ops.items():
            totals[self._kind[name]] = totals.get(self._kind[name], 0.0) + ops
        out: dict[str, Any] = {
            "vm": {
                name: {
                    "near_threshold": self._near[name] / n,
                    "mean": self._mean[name] / n,
                    "std": self._std[name] / n,
                    "threshold": self._threshold[name],
                }
                for name in self._near
            },
            "silent_channels": {
                name: {
                    "silent": self._silent[name],
                    "saturated": self._saturated[name],
                    "channels": self._channels[name],
                }
                for name in self._silent
            },
            "synops": {
                name: {"ops": ops, "kind": self._kind[name]} for name, ops in self._ops.items()
            },
            "ops": totals,
            "sparsity": self._sparsity / n,
        }
        if self.histograms:
            out["vm_hist"] = {name: h.tolist() for name, h in self._hist.items()}
        self._reset_window()
        return out

    def summary(self) -> dict[str, Any]:
        """Per step over the whole run: synaptic operations per layer and in all, the mean
        sparsity and each layer's mean fraction near threshold (empty when probes were off)."""
        n = self._run_steps
        if n == 0:
            return {}
        totals = {"AC": 0.0, "MAC": 0.0}
        for name, ops in self._run_ops.items():
            totals[self._run_kind[name]] += ops / n
        return {
            "synops_per_step": {name: ops / n for name, ops in self._run_ops.items()},
            "ops_per_step": totals,
            "sparsity": self._run_sparsity / n,
            "near_threshold": {name: v / n for name, v in self._run_near.items()},
        }
