"""Per-layer firing rates of a headless run (`dvsapp run --rates`): each window's mean rate
per layer, the run's, and how many steps the health monitor flagged each layer.

This is the status bar's collapse diagnosis without a display: a layer whose mean rate over
the whole run is below ``silent_below`` is reported silent, above ``saturated_above``
saturated (the step-by-step flags, which need ``patience`` steps in a row, are counted too).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dvsapp.snn.health import FiringRateHealth, HealthReport
from dvsapp.snn.stepper import StepRecord

__all__ = ["RateReport"]

_ALL_OK = HealthReport()


class RateReport:
    """Accumulates the :class:`StepRecord` rates of a run, window by window."""

    def __init__(self, layer_names: Sequence[str], health: FiringRateHealth) -> None:
        self.layers = tuple(layer_names)
        self.health = health
        n = len(self.layers)
        self._window_sum = np.zeros(n, np.float64)
        self._window_steps = 0
        self._run_sum = np.zeros(n, np.float64)
        self._steps = 0
        self._win_min = np.full(n, np.inf)
        self._win_max = np.full(n, -np.inf)
        self._silent_steps = np.zeros(n, np.int64)
        self._saturated_steps = np.zeros(n, np.int64)
        self._last = _ALL_OK

    def add_step(self, rec: StepRecord) -> None:
        """One step's rates (the stepper must collect rates) and its health report."""
        if rec.rates is None or rec.layer_names != self.layers:
            raise ValueError("RateReport needs every step's rates in the stepper's layer order")
        r = rec.rates.astype(np.float64)
        self._window_sum += r
        self._window_steps += 1
        self._run_sum += r
        self._steps += 1
        report = rec.health if rec.health is not None else _ALL_OK
        if not report.ok:  # most steps flag nothing: no per-layer work then
            for i, name in enumerate(self.layers):
                status = report.status(name)
                self._silent_steps[i] += status == "silent"
                self._saturated_steps[i] += status == "saturated"
        self._last = report

    def close_window(self) -> dict[str, Any]:
        """The window's mean rate per layer and the layers flagged at its last step."""
        mean = self._window_sum / max(self._window_steps, 1)
        if self._window_steps:
            self._win_min = np.minimum(self._win_min, mean)
            self._win_max = np.maximum(self._win_max, mean)
        self._window_sum[:] = 0
        self._window_steps = 0
        return {
            "rates": {n: round(float(m), 6) for n, m in zip(self.layers, mean, strict=True)},
            "flagged": {"silent": list(self._last.silent), "saturated": list(self._last.saturated)},
        }

    def verdict(self) -> HealthReport:
        """Layers whose mean rate over the whole run is out of range."""
        mean = self._run_sum / max(self._steps, 1)
        silent = tuple(n for n, m in zip(self.layers, mean, strict=True)
                       if m < self.health.silent_below)  # fmt: skip
        saturated = tuple(n for n, m in zip(self.layers, mean, strict=True)
                          if m > self.health.saturated_above)  # fmt: skip
        return HealthReport(silent, saturated)

    def summary(self) -> dict[str, Any]:
        """JSON-safe: per layer the run's mean rate, the lowest and highest window mean, the
        steps flagged silent / saturated and the status; then the one-line verdict."""
        mean = self._run_sum / max(self._steps, 1)
        verdict = self.verdict()
        layers = {}
        for i, name in enumerate(self.layers):
            seen = np.isfinite(self._win_min[i])
            layers[name] = {
                "mean": round(float(mean[i]), 6),
                "window_min": round(float(self._win_min[i]), 6) if seen else None,
                "window_max": round(float(self._win_max[i]), 6) if seen else None,
                "silent_steps": int(self._silent_steps[i]),
                "saturated_steps": int(self._saturated_steps[i]),
                "status": verdict.status(name),
            }
        return {
            "layers": layers,
            "health": verdict.summary(),
            "thresholds": {
                "silent_below": self.health.silent_below,
                "saturated_above": self.health.saturated_above,
                "patience": self.health.patience,
            },
        }

    def table(self) -> list[str]:
        """The summary as text lines for the terminal."""
        s = self.summary()
        width = max([len("layer"), *(len(n) for n in self.layers)])
        lines = [
            f"{'layer':<{width}}  {'mean rate':>9}  {'min win':>8}  {'max win':>8}  "
            f"{'silent':>6}  {'satur.':>6}  status"
        ]
        for name, d in s["layers"].items():
            lo = "-" if d["window_min"] is None else f"{d['window_min']:.4f}"
            hi = "-" if d["window_max"] is None else f"{d['window_max']:.4f}"
            lines.append(
                f"{name:<{width}}  {d['mean']:9.4f}  {lo:>8}  {hi:>8}  "
                f"{d['silent_steps']:6d}  {d['saturated_steps']:6d}  {d['status']}"
            )
        lines.append(f"firing rates: {s['health']} (steps flagged after {self.health.patience} "
                     f"in a row; status from the run's mean)")  # fmt: skip
        return lines
