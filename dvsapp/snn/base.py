"""What every spiking network in dvsapp shares: stateful neurons with probes, and a model
with two execution modes over one set of weights.

* ``SpikingModel.forward(x)``: a whole ``[T, B, C, H, W]`` sequence, for training with BPTT
  (and for the parity tests). Returns the per-step outputs ``[T, B, K]``.
* ``SpikingModel.step(x_t)``: one ``[B, C, H, W]`` frame; the neuron state persists between
  calls (on the model's device) until ``reset()``. Returns that step's output ``[B, K]``.

In eval mode, ``T`` calls of ``step`` equal one ``forward`` over the same frames (max abs
difference <= 1e-5 in float32). The prediction after ``t`` steps is the mean of the per-step
outputs so far (for BNTT this is its integrate-without-spiking output layer divided by t).

Probes: each :class:`SpikingNeuron` records, when its ``probe`` is set, the spike map, the
membrane potential (whole map or chosen neurons) and the firing rate of its latest ``step``;
with ``probe = None`` the cost is one attribute test.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn


@dataclass
class ProbeSpec:
    """What a neuron layer records per step.

    ``vm``: False (nothing), True (the whole map), or flat indices into one sample's neuron
    map ``[C*H*W]`` (or ``[features]``) to record selected neurons only.
    """

    spikes: bool = True
    vm: bool | Sequence[int] = False
    rate: bool = True
    #: Keep the whole Vm map for :class:`dvsapp.snn.analysis.Analyzer`'s statistics (a
    #: reference to the step's tensor: no copy, no kernel).
    vm_stats: bool = False


@dataclass
class ProbeRecord:
    """One layer's record of one step, on the model's device (tensors detached).

    spikes: ``[B, *shape]`` 0/1; vm: ``[B, *shape]`` or ``[B, n_selected]`` (the membrane
    potential after charging, before reset: what is compared with the threshold);
    rate: ``[B]`` fraction of neurons that fired.
    """

    spikes: torch.Tensor | None = None
    vm: torch.Tensor | None = None
    rate: torch.Tensor | None = None
    #: With selected neurons: the flat indices recorded (those beyond the layer are skipped).
    vm_index: torch.Tensor | None = None
    #: With ``ProbeSpec.vm_stats``: the whole Vm map ``[B, *shape]`` (as ``vm`` describes it),
    #: which the analyzer reduces with every other layer's in a few batched kernels.
    vm_stats: torch.Tensor | None = None


class SpikingNeuron(nn.Module, ABC):
    """A layer of stateful spiking neurons: charge, fire, reset.

    Subclasses implement :meth:`dynamics`. ``threshold_scale`` multiplies the threshold
    live (a debugging knob: raise it to provoke firing-rate collapse).
    """

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = float(threshold)
        self.threshold_scale = 1.0
        self.v: torch.Tensor | None = None  # membrane state between steps
        self.o: torch.Tensor | None = None  # last spikes (needed by hard-reset dynamics)
        self.probe: ProbeSpec | None = None
        self.record: ProbeRecord | None = None

    @property
    def effective_threshold(self) -> float:
        return self.threshold * self.threshold_scale

    @abstractmethod
    def dynamics(
        self, x: torch.Tensor, v: torch.Tensor | None, o: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step: input current ``x``, previous state ``v``/``o`` (None at the start).
        Returns ``(spikes, v_charged, v_next)``: v_charged is before reset, v_next after."""

    def reset(self) -> None:
        """Forget the state (and the last record)."""
        self.v = None
        self.o = None
        self.record = None

    def step(self, x: torch.Tensor) -> torch.Tensor:
        """One stateful step over ``[B, ...]``; records probes when enabled."""
        spikes, v_charged, self.v = self.dynamics(x, self.v, self.o)
        self.o = spikes
        if self.probe is not None:
            self._record(spikes, v_charged)
        return spikes

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        """Multi-step over ``[T, B, ...]`` from a fresh state (does not touch ``self.v``)."""
        v = o = None
        out = []
        for x in x_seq:
            o, _, v = self.dynamics(x, v, o)
            out.append(o)
        return torch.stack(out)

    def _vm_index(self, vm: Sequence[int], size: int, device: torch.device) -> torch.Tensor:
        """The selected neurons that exist in this layer, as a device tensor built once per
        selection (not on every step)."""
        key = (vm, size, device)
        cached = self.__dict__.get("_vm_index_cache")
        if cached is None or cached[0] != key:
            idx = torch.as_tensor(list(vm), device=device, dtype=torch.long)
            cached = (key, idx[(idx >= 0) & (idx < size)])
            self.__dict__["_vm_index_cache"] = cached
        return cached[1]

    def _record(self, spikes: torch.Tensor, v_charged: torch.Tensor) -> None:
        spec = self.probe
        assert spec is not None
        rec = ProbeRecord()
        if spec.spikes:
            rec.spikes = spikes.detach()
        if spec.rate:
            rec.rate = spikes.detach().flatten(1).mean(1)
        if spec.vm is True:
            rec.vm = v_charged.detach()
        elif spec.vm is not False and len(spec.vm):  # selected neurons that this layer has
            flat = v_charged.detach().flatten(1)
            idx = self._vm_index(spec.vm, flat.shape[1], flat.device)
            rec.vm = flat.index_select(1, idx)
            rec.vm_index = idx
        if spec.vm_stats:
            rec.vm_stats = v_charged.detach()
        self.record = rec


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model (stored in checkpoints).

    input_size is (width, height); ``neuron`` holds the neuron parameters of the family
    (tdBN: tau_decay, threshold, surrogate width; BNTT: leak, threshold, surrogate factor).
    ``time_steps`` is the T the model was trained with (BNTT's statistics depend on it).
    """

    arch: str
    num_classes: int = 11
    in_channels: int = 2
    input_size: tuple[int, int] = (128, 128)
    width: int = 64
    time_steps: int = 10
    neuron: dict[str, float] = field(default_factory=dict)
    #: "default" (the family's normalisation: tdBN or BNTT) or "none" (plain convolutions,
    #: tdBN ResNets only: the firing-rate-collapse demonstration).
    norm: str = "default"
    #: The family's layout revision. tdBN ResNets: 1, the original layout (what a config
    #: without this field means, e.g. every checkpoint written before it existed); 2, the tdBN
    #: paper's (what the builders make now). See :mod:`dvsapp.snn.resnet`. Stored only when
    #: it is not 1, so older configs and other families read and write as before.
    layout: int = 1
    #: Graph models only (arch "graph"): the :class:`~dvsapp.snn.graph.spec.GraphSpec` as JSON.
    graph: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "arch": self.arch,
            "num_classes": self.num_classes,
            "in_channels": self.in_channels,
            "input_size": list(self.input_size),
            "width": self.width,
            "time_steps": self.time_steps,
            "neuron": dict(self.neuron),
            "norm": self.norm,
        }
        if self.layout != 1:
            out["layout"] = self.layout
        if self.graph is not None:
            out["graph"] = self.graph
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return cls(
            arch=str(d["arch"]),
            num_classes=int(d["num_classes"]),
            in_channels=int(d["in_channels"]),
            input_size=(int(d["input_size"][0]), int(d["input_size"][1])),
            width=int(d["width"]),
            time_steps=int(d["time_steps"]),
            neuron={str(k): float(v) for k, v in d.get("neuron", {}).items()},
            norm=str(d.get("norm", "default")),
            layout=int(d.get("layout", 1)),
            graph=dict(d["graph"]) if d.get("graph") is not None else None,
        )


class SpikingModel(nn.Module, ABC):
    """A spiking network with a sequence mode (training) and a step mode (streaming)."""

    #: The normalisation family: "tdbn" (time-invariant at inference), "bntt" (per step) or
    #: "graph" (a network from elsewhere, time-invariant).
    family: ClassVar[str] = ""
    #: How the stepper turns outputs into probabilities: "mean_softmax" (softmax of the mean
    #: output so far) or "spike_count" (each class's share of the output spikes so far).
    readout: str = "mean_softmax"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.steps_taken = 0  # steps since the last reset (BNTT picks its BN by this index)

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, B, C, H, W]`` -> per-step outputs ``[T, B, K]``, from a fresh state."""

    @abstractmethod
    def step(self, x_t: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> this step's output ``[B, K]``; the state persists."""

    def reset(self) -> None:
        """Forget every neuron's state; the next step is step 0."""
        for layer in self.spiking_layers().values():
            layer.reset()
        self._reset_extra()
        self.steps_taken = 0

    def _reset_extra(self) -> None:
        """Reset non-neuron state (e.g. an integrating output layer)."""

    def spiking_layers(self) -> dict[str, SpikingNeuron]:
        """Every spiking layer in forward order, by a stable name (e.g. ``layer2.0.lif1``).

        Found once and cached (``reset`` runs per window, so it must not walk the module
        tree each time); do not mutate the returned dict."""
        cache = self.__dict__.get("_spiking_layers")
        if cache is None:
            cache = {n: m for n, m in self.named_modules() if isinstance(m, SpikingNeuron)}
            self.__dict__["_spiking_layers"] = cache
        return cache

    def set_probes(self, spec: ProbeSpec | None, layers: Sequence[str] | None = None) -> None:
        """Enable ``spec`` on the named layers (all when None), or disable with None."""
        for name, layer in self.spiking_layers().items():
            if layers is None or name in layers:
                layer.probe = spec
                layer.record = None
