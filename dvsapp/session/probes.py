"""Raster and Vm taps: which neurons each layer shows, and the per-step copy to numpy.

The Stepper takes one :class:`ProbeSpec` for all probed layers and copies whole spike maps to
the host; the pipeline needs less and per layer. So the stepper is built with rates only and
the tap then sets a per-layer spec on every spiking layer (spikes kept on the device, Vm of
the selected neurons only). Each step, the sampled spikes and the selected Vm of all layers
are gathered on the device and copied to the host in one transfer.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from dvsapp.snn.base import ProbeSpec, SpikingModel, SpikingNeuron


def raster_selection(
    name: str, shape: tuple[int, ...], neurons: int, channel: int | None
) -> np.ndarray:
    """Flat indices a layer's raster shows: all of ``channel`` (a [C, H, W] map), else a
    sorted sample of ``neurons`` seeded by the layer name (all when the layer is smaller)."""
    numel = math.prod(shape)
    if channel is not None and len(shape) == 3 and 0 <= channel < shape[0]:
        plane = shape[1] * shape[2]
        return np.arange(channel * plane, (channel + 1) * plane, dtype=np.int64)
    if neurons <= 0:
        return np.zeros(0, np.int64)
    if neurons >= numel:
        return np.arange(numel, dtype=np.int64)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    return np.sort(rng.choice(numel, size=neurons, replace=False)).astype(np.int64)


def vm_selection(indices: Sequence[int], numel: int) -> np.ndarray:
    """The requested flat indices that exist in a layer of ``numel`` neurons, in order."""
    idx = np.asarray(list(indices), dtype=np.int64).reshape(-1)
    return idx[(idx >= 0) & (idx < numel)]


class ProbeTap:
    """Per-layer probe specs and the per-step gather of rasters and Vm."""

    def __init__(
        self,
        model: SpikingModel,
        shapes: Mapping[str, tuple[int, ...]],
        raster_neurons: int,
        raster_channel: Mapping[str, int | None],
        vm_neurons: Mapping[str, Sequence[int]],
        device: torch.device,
    ) -> None:
        self.layers: dict[str, SpikingNeuron] = model.spiking_layers()
        self.raster_index: dict[str, np.ndarray] = {}
        self.vm_index: dict[str, np.ndarray] = {}
        for name in self.layers:
            shape = shapes[name]
            self.raster_index[name] = raster_selection(
                name, shape, raster_neurons, raster_channel.get(name)
            )
            vm = vm_selection(vm_neurons.get(name, ()), math.prod(shape))
            if vm.size:
                self.vm_index[name] = vm
        self._raster = [
            (name, torch.as_tensor(idx, device=device))
            for name, idx in self.raster_index.items()
            if idx.size
        ]
        self._vm = [(name, int(idx.size)) for name, idx in self.vm_index.items()]

    def install(self) -> None:
        """Set every layer's probe: spikes and rate, plus Vm of its selected neurons."""
        for name, layer in self.layers.items():
            vm = self.vm_index.get(name)
            layer.probe = ProbeSpec(spikes=True, vm=False if vm is None else vm.tolist())
            layer.record = None

    def collect(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """This step's sampled spikes (uint8) and selected Vm (float32), per layer."""
        parts: list[torch.Tensor] = []
        for name, idx in self._raster:
            rec = self.layers[name].record
            if rec is None or rec.spikes is None:
                parts.append(torch.zeros(idx.numel(), device=idx.device))
            else:
                parts.append(rec.spikes.reshape(-1).index_select(0, idx).float())
        for name, n in self._vm:
            rec = self.layers[name].record
            vm = None if rec is None else rec.vm
            parts.append(torch.full((n,), math.nan) if vm is None else vm.reshape(-1).float())
        if not parts:
            return {}, {}
        flat = torch.cat([p.to(parts[0].device) for p in parts]).cpu().numpy()
        return self._split(flat)

    def _split(self, flat: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        raster: dict[str, np.ndarray] = {}
        vm: dict[str, np.ndarray] = {}
        at = 0
        for name, idx in self._raster:
            n = idx.numel()
            raster[name] = flat[at : at + n].astype(np.uint8)
            at += n
        for name, n in self._vm:
            vm[name] = flat[at : at + n].astype(np.float32)
            at += n
        for name in self.raster_index:  # layers with an empty selection: empty rows
            raster.setdefault(name, np.zeros(0, np.uint8))
        return raster, vm
