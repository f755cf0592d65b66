"""Discrete-time nodes for networks imported from their framework (snnTorch, sinabs,
SpikingJelly) rather than from NIR: one neuron node general enough for all three, and max
pooling. The framework importers (:mod:`dvsapp.snn.graph.frameworks`) map each framework's
neuron onto the parameters below; tests check each mapping against the framework itself.

``Discrete`` neuron, per step, with the membrane ``v`` (and optionally a synaptic current
``i``) from the previous step (zeros at the start):

* charge: ``i <- syn_decay * i + x`` (with a synapse), then
  ``v <- decay * v + gain * (i or x) + rest`` (snnTorch ``Leaky``: decay = beta, gain = 1;
  SpikingJelly ``LIFNode``: decay = 1 - 1/tau, gain = 1/tau (``decay_input``) or 1,
  rest = v_reset/tau; IF neurons: decay = gain = 1);
* fire, by ``fire``: ``">"`` (snnTorch: ``v - threshold > 0``), ``">="`` (SpikingJelly,
  sinabs ``SingleSpike``), or ``"multi"`` (sinabs ``MultiSpike``: ``floor(v / threshold)``
  spikes where ``v >= threshold``);
* reset, by ``reset``: ``"zero"`` (``v <- v_reset`` where it fired), ``"subtract"``
  (``v <- v - spikes * threshold``), ``"none"``, or ``"sinabs"`` (sinabs ``MembraneReset``
  with a reset value: ``v <- v * (spikes == 0) + v_reset`` at every neuron, spiking or not,
  as sinabs computes it); by ``timing``: ``"now"`` (after the spike,
  as SpikingJelly and sinabs), or snnTorch's own rule, ``"snntorch"`` with ``reset_delay``:
  the reset of the spike at t-1 (``H(v_{t-1} - threshold)``) enters step t's charge
  (subtracting the threshold, or zeroing the charged membrane), and without ``reset_delay``
  the step's own spikes reset at once (``v -= (spikes - that delayed term) * threshold``);
* then ``v >= min_v`` where given (sinabs ``min_v_mem``).

``"multi"`` spikes are capped at ``max_spikes`` where given (sinabs ``MaxSpike``). The membrane
starts at ``v_init`` where given (SpikingJelly's hard-reset neurons start at ``v_reset``),
else at 0; a synaptic current starts at 0.

The Vm that probes record is the charged membrane before this step's own reset (for
snnTorch's delayed reset that is its ``mem``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dvsapp.snn.graph.nodes import GraphNeuron, GraphNode
from dvsapp.snn.graph.spec import NodeSpec

FIRES = (">", ">=", "multi")
DISCRETE_RESETS = ("zero", "subtract", "none", "sinabs")
TIMINGS = ("now", "snntorch")


class DiscreteNeuron(GraphNeuron):
    """The ``Discrete`` node (module docstring)."""

    tensor_names = (
        "decay", "gain", "rest", "v_threshold", "v_reset", "syn_decay", "min_v", "v_init",
    )  # fmt: skip

    def __init__(self, spec: NodeSpec, dt: float) -> None:
        super().__init__(spec, dt)
        p = spec.params
        self.fire_rule = str(p.get("fire", ">"))
        self.reset_rule = str(p.get("reset", "subtract"))
        self.timing = str(p.get("timing", "now"))
        self.reset_delay = bool(p.get("reset_delay", False))
        max_spikes = p.get("max_spikes")
        self.max_spikes = None if max_spikes is None else float(max_spikes)
        for name, value, allowed in (
            ("fire", self.fire_rule, FIRES),
            ("reset", self.reset_rule, DISCRETE_RESETS),
            ("timing", self.timing, TIMINGS),
        ):
            if value not in allowed:
                raise ValueError(f"node {spec.name!r}: {name} must be one of {allowed}")
        if self.reset_rule == "sinabs" and self.timing != "now":
            raise ValueError(
                f"node {spec.name!r}: the sinabs reset is applied at once (timing now)"
            )

    def refresh(self) -> None:
        self.summarise_threshold()

    def _fire(self, v: torch.Tensor, thr: torch.Tensor) -> torch.Tensor:
        if self.fire_rule == ">":
            return (v > thr).to(v.dtype)
        if self.fire_rule == ">=":
            return (v >= thr).to(v.dtype)
        z = torch.where(v >= thr, torch.floor(v / thr), torch.zeros_like(v))
        return z if self.max_spikes is None else z.clamp(max=self.max_spikes)

    def dynamics(
        self, x: torch.Tensor, v: torch.Tensor | None, o: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        syn = self.syn_decay is not None
        if v is None:
            v_prev = torch.zeros_like(x) if self.v_init is None else self.v_init.expand_as(x)
            i_prev = torch.zeros_like(x) if syn else None
        elif syn:
            i_prev, v_prev = v[0], v[1]
        else:
            v_prev, i_prev = v, None
        thr = self.v_threshold
        if self.threshold_scale != 1.0:
            thr = thr * self.threshold_scale
        drive = x
        if syn:
            drive = self.syn_decay * i_prev + x
        charged = self.decay * v_prev + self.gain * drive
        if self.rest is not None:
            charged = charged + self.rest
        late = None
        if self.timing == "snntorch":  # the previous step's spike resets now
            late = (v_prev > thr).to(x.dtype)
            if self.reset_rule == "subtract":
                charged = charged - late * thr
            elif self.reset_rule == "zero":
                charged = charged * (1.0 - late)
        z = self._fire(charged, thr)
        after = charged
        if self.timing == "now":
            if self.reset_rule == "subtract":
                after = charged - z * thr
            elif self.reset_rule == "zero":
                after = torch.where(z > 0, self._v_reset(charged), charged)
            elif self.reset_rule == "sinabs":
                after = charged * (z == 0).to(x.dtype) + self._v_reset(charged)
        elif not self.reset_delay:  # snnTorch without reset_delay: this step's spike now
            do = z - late
            if self.reset_rule == "subtract":
                after = charged - do * thr
            elif self.reset_rule == "zero":
                after = charged - do * charged
        if self.min_v is not None:
            after = torch.maximum(after, self.min_v)
        state = torch.stack((drive, after)) if syn else after
        return z, charged, state

    def _v_reset(self, like: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(like) if self.v_reset is None else self.v_reset.expand_as(like)


class MaxPool2d(GraphNode):
    """``torch.nn.MaxPool2d`` (kernel, stride, padding, dilation, ceil_mode)."""

    def __init__(self, spec: NodeSpec, dt: float) -> None:
        super().__init__(spec, dt)
        p = spec.params
        self.kernel = tuple(p["kernel_size"])
        self.stride = tuple(p.get("stride") or self.kernel)
        self.padding = tuple(p.get("padding", (0, 0)))
        self.dilation = tuple(p.get("dilation", (1, 1)))
        self.ceil_mode = bool(p.get("ceil_mode", False))

    def step(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(
            x, self.kernel, self.stride, self.padding, self.dilation, self.ceil_mode
        )
