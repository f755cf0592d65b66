"""Firing-rate health: flag the layers that went silent or saturated.

The two faces of firing-rate collapse in deep SNNs: a layer whose neurons stop firing
(nothing reaches the layers after it) and a layer where nearly every neuron fires every step
(it no longer carries information). A layer is flagged only after ``patience`` consecutive
steps on the wrong side of a threshold, so the first steps of a window, while membranes
charge, do not raise false alarms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from dvsapp.errors import ConfigError

Status = Literal["ok", "silent", "saturated"]


@dataclass(frozen=True)
class HealthReport:
    """The flagged layers after one step (every other layer is ok)."""

    silent: tuple[str, ...] = ()
    saturated: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.silent and not self.saturated

    def status(self, layer: str) -> Status:
        """One layer's status."""
        if layer in self.silent:
            return "silent"
        return "saturated" if layer in self.saturated else "ok"

    def flagged(self) -> dict[str, Status]:
        """Flagged layer -> status, in layer order within each kind."""
        out: dict[str, Status] = dict.fromkeys(self.silent, "silent")
        out.update(dict.fromkeys(self.saturated, "saturated"))
        return out

    def summary(self) -> str:
        """One line, e.g. ``2 silent (layer3.lif1, layer4.lif1); 1 saturated (lif0)``."""
        if self.ok:
            return "all layers ok"
        parts = [
            f"{len(names)} {kind} ({', '.join(names)})"
            for kind, names in (("silent", self.silent), ("saturated", self.saturated))
            if names
        ]
        return "; ".join(parts)


_ALL_OK = HealthReport()


class FiringRateHealth:
    """Per-layer watchdog fed every step with each layer's firing rate (fraction in [0, 1]).

    A layer is ``"silent"`` once its rate has been below ``silent_below`` for ``patience``
    consecutive steps, ``"saturated"`` once above ``saturated_above`` for ``patience`` steps,
    and ``"ok"`` again at the first step back in range.
    """

    def __init__(
        self, silent_below: float = 1e-3, saturated_above: float = 0.9, patience: int = 5
    ) -> None:
        if not 0.0 <= silent_below <= saturated_above <= 1.0:
            raise ConfigError(
                "health: need 0 <= silent_below <= saturated_above <= 1, got "
                f"{silent_below} and {saturated_above}"
            )
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ConfigError(f"health: patience must be an integer >= 1, got {patience!r}")
        self.silent_below = float(silent_below)
        self.saturated_above = float(saturated_above)
        self.patience = patience
        self.names: tuple[str, ...] = ()
        self._silent = np.zeros(0, np.int64)
        self._saturated = np.zeros(0, np.int64)
        self.report = _ALL_OK

    def bind(self, names: Sequence[str]) -> None:
        """Fix the layer order of the rate vectors that :meth:`update` will get; resets."""
        self.names = tuple(names)
        self.reset()

    def reset(self) -> None:
        """Forget the runs (every layer ok)."""
        self._silent = np.zeros(len(self.names), np.int64)
        self._saturated = np.zeros(len(self.names), np.int64)
        self.report = _ALL_OK

    def update(self, rates: np.ndarray | Mapping[str, float]) -> HealthReport:
        """Feed one step's rates (a vector in :attr:`names` order, or a name -> rate map;
        the first map binds the names). Returns the report after this step."""
        if isinstance(rates, Mapping):
            if not self.names:
                self.bind(list(rates))
            r = np.fromiter((rates[n] for n in self.names), np.float64, len(self.names))
        else:
            r = np.asarray(rates, dtype=np.float64)
        if r.shape != self._silent.shape:
            raise ConfigError(f"health: {r.size} rates for {len(self.names)} layers")
        low, high = r < self.silent_below, r > self.saturated_above
        self._silent += 1
        self._silent[~low] = 0
        self._saturated += 1
        self._saturated[~high] = 0
        silent = np.flatnonzero(self._silent >= self.patience)
        saturated = np.flatnonzero(self._saturated >= self.patience)
        if silent.size or saturated.size:
            self.report = HealthReport(
                tuple(self.names[i] for i in silent), tuple(self.names[i] for i in saturated)
            )
        else:
            self.report = _ALL_OK
        return self.report

    @property
    def status(self) -> dict[str, Status]:
        """Every layer's status after the latest step."""
        return {n: self.report.status(n) for n in self.names}
