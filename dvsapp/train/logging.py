"""TensorBoard logging and per-layer firing rates.

:class:`FiringRateMonitor` counts spikes per spiking layer while it is active. It wraps each
layer's ``dynamics`` (an instance attribute over the method) rather than registering forward
hooks: BNTT's eval forward and every ``step`` call ``dynamics`` without going through the
module's ``__call__``, so hooks would miss them. The counts stay on the device until read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dvsapp.errors import ConfigError


class FiringRateMonitor:
    """``with FiringRateMonitor(model) as mon: ...; mon.rates()`` -> {layer: mean spike rate}."""

    def __init__(self, model: Any) -> None:
        self.layers = dict(model.spiking_layers())
        self._sums: dict[str, torch.Tensor] = {}
        self._counts: dict[str, int] = {}

    def __enter__(self) -> FiringRateMonitor:
        for name, layer in self.layers.items():
            layer.dynamics = self._wrap(name, layer.dynamics)  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        for layer in self.layers.values():
            layer.__dict__.pop("dynamics", None)

    def _wrap(self, name: str, fn: Any) -> Any:
        def dynamics(x: torch.Tensor, v: Any, o: Any) -> Any:
            out = fn(x, v, o)
            s = out[0].detach()
            total = s.float().sum()
            self._sums[name] = self._sums[name] + total if name in self._sums else total
            self._counts[name] = self._counts.get(name, 0) + s.numel()
            return out

        return dynamics

    def rates(self) -> dict[str, float]:
        return {
            n: float(self._sums[n]) / self._counts[n] for n in self.layers if self._counts.get(n)
        }


class TensorBoardLogger:
    """A ``SummaryWriter`` in ``logdir`` (imported lazily; one-line error when missing)."""

    def __init__(self, logdir: str | Path, purge_step: int | None = None) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                "training logs need tensorboard: pip install 'dvsapp[train]' "
                "(or pip install tensorboard)"
            ) from None
        self.writer = SummaryWriter(str(logdir), purge_step=purge_step)

    def scalars(self, values: dict[str, float], step: int) -> None:
        for k, v in values.items():
            if v is not None:
                self.writer.add_scalar(k, float(v), step)

    def firing_rates(self, rates: dict[str, float], step: int, histogram: bool = True) -> None:
        for name, r in rates.items():
            self.writer.add_scalar(f"firing_rate/{name}", r, step)
        if histogram and rates:
            self.writer.add_histogram(
                "firing_rate/all_layers", torch.tensor(list(rates.values())), step
            )

    def flush(self) -> None:
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()
