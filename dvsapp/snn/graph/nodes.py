"""The nodes of a graph model, one torch module per NIR node type.

Every node steps one frame: ``step(x)`` takes the sum of its inputs ``[B, *in_shape]`` and
returns ``[B, *shape]``. Parameters are buffers named as in NIR (``weight``, ``tau``, ...), so
a checkpoint's tensors are the source graph's values as they were; what the discretisation
derives from them (decay factors, input gains) is recomputed by :meth:`GraphNode.refresh`.

Discretisation (NIR's parameters are continuous-time; ``dt`` is one step, in seconds):

* leaky nodes, forward Euler: ``v <- v + dt/tau * (v_leak - v) + dt*r/tau * x``
  (LI, LIF; CubaLI and CubaLIF first update the synaptic current
  ``i <- i - dt/tau_syn * i + dt*w_in/tau_syn * x``, then feed the new ``i`` to ``v``);
* integrators (I, IF), whose equation ``dv/dt = r*I`` has no time constant: ``v <- v + r*x``,
  the charge of one step, as every discrete-time framework writes them (sinabs, snnTorch,
  Rockpool, Lava); a ``dt`` factor here would silence every IF graph they export;
* spikes: ``z = v > v_threshold`` (NIR's strict inequality), then ``v <- v_reset`` where
  ``z`` (NIR's reset; ``reset="subtract"`` subtracts the threshold instead, for graphs from
  frameworks that trained with it and lost it on export);
* Delay: ``round(delay/dt)`` steps (refused when not a whole number of steps).

Membranes start at ``v_leak`` (rest) for leaky nodes and at 0 for integrators; synaptic
currents at 0. The Vm that probes record is the membrane after charging, before reset.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dvsapp.errors import ConfigError
from dvsapp.snn.base import SpikingNeuron
from dvsapp.snn.graph.spec import NodeSpec


def _zeros(shape: list[int]) -> torch.Tensor:
    return torch.zeros([int(s) for s in shape], dtype=torch.float32)


def _register_tensors(module: nn.Module, spec: NodeSpec, names: tuple[str, ...]) -> None:
    """A node's NIR tensors as buffers, zeros of the spec's shapes (None where absent)."""
    for name in names:
        module.register_buffer(name, _zeros(spec.tensors[name]) if name in spec.tensors else None)


class GraphNode(nn.Module):
    """A stateless or stateful node that is not a spiking layer."""

    tensor_names: tuple[str, ...] = ()

    def __init__(self, spec: NodeSpec, dt: float) -> None:
        super().__init__()
        self.spec = spec
        self.dt = dt
        _register_tensors(self, spec, self.tensor_names)

    def refresh(self) -> None:
        """Recompute what the discretisation derives from the tensors."""

    def reset(self) -> None:
        """Forget the state between steps."""

    def step(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Identity(GraphNode):
    """Input and Output nodes."""

    def step(self, x: torch.Tensor) -> torch.Tensor:
        return x


class Affine(GraphNode):
    """``W x + b`` (Linear: no bias)."""

    tensor_names = ("weight", "bias")

    def step(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class Scale(GraphNode):
    tensor_names = ("scale",)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class Conv(GraphNode):
    """Conv1d / Conv2d with NIR's stride, padding (ints or 'same'/'valid'), dilation, groups."""

    tensor_names = ("weight", "bias")

    def __init__(self, spec: NodeSpec, dt: float) -> None:
        super().__init__(spec, dt)
        p = spec.params
        self._fn = F.conv2d if spec.type == "Conv2d" else F.conv1d
        pad = p.get("padding", 0)
        self._args = (
            tuple(p.get("stride", 1)) if isinstance(p.get("stride"), list) else p.get("stride", 1),
            pad if isinstance(pad, str) else tuple(pad) if isinstance(pad, list) else pad,
            tuple(p["dilation"]) if isinstance(p.get("dilation"), list) else p.get("dilation", 1),
            int(p.get("groups", 1)),
        )

    def step(self, x: torch.Tensor) -> torch.Tensor:
        return self._fn(x, self.weight, self.bias, *self._args)


class Flatten(GraphNode):
    """NIR's dims count without the batch: ``start_dim`` 0 is torch's 1."""

    def __init__(self, spec: NodeSpec, dt: float) -> None:
        super().__init__(spec, dt)
        start, end = int(spec.params.get("start_dim", 0)), int(spec.params.get("end_dim", -1))
        self._dims = (start + 1 if start >= 0 else start, end + 1 if end >= 0 else end)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(*self._dims)


class Pool2d(GraphNode):
    """SumPool2d (an average pool divided by 1: the window's sum, zero padding) and
    AvgPool2d."""

    def __init__(self, spec: NodeSpec, dt: float) -> None:
        super().__init__(spec, dt)
        p = spec.params
        self.kernel = tuple(p["kernel_size"])
        self.stride = tuple(p.get("stride") or self.kernel)
        self.padding = tuple(p.get("padding", (0, 0)))
        self.divisor = 1 if spec.type == "SumPool2d" else None

    def step(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(
            x, self.kernel, self.stride, self.padding, divisor_override=self.divisor
        )


class GlobalAvgPool2d(GraphNode):
    """The mean over each channel's map (``AdaptiveAvgPool2d(1)``; ``keepdim`` false for
    a ``x.mean((-2, -1))``)."""

    def __init__(self, spec: NodeSpec, dt: float) -> None:
        super().__init__(spec, dt)
        self.keepdim = bool(spec.params.get("keepdim", True))

    def step(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(-2, -1), keepdim=self.keepdim)


class Threshold(GraphNode):
    """``x > threshold`` as 0/1 (no state)."""

    tensor_names = ("threshold",)

    def step(self, x: torch.Tensor) -> torch.Tensor:
        return (x > self.threshold).to(x.dtype)


class Integrator(GraphNode):
    """I (``v <- v + r x``), LI (leaky) and CubaLI (synaptic current, then leaky membrane):
    stateful, no spikes; the output is the membrane."""

    tensor_names = ("r", "tau", "v_leak", "tau_syn", "tau_mem", "w_in")

    def __init__(self, spec: NodeSpec, dt: float) -> None:
        super().__init__(spec, dt)
        self.state: torch.Tensor | None = None
        self.refresh()

    def refresh(self) -> None:
        _derive(self, self.spec.type, self.dt)

    def reset(self) -> None:
        self.state = None

    def step(self, x: torch.Tensor) -> torch.Tensor:
        v, self.state = _charge(self.spec.type, self, x, self.state)
        return v


class GraphNeuron(SpikingNeuron):
    """IF, LIF and CubaLIF: a spiking layer (probes, rates, health, threshold scale)."""

    tensor_names = ("r", "tau", "v_leak", "tau_syn", "tau_mem", "w_in", "v_threshold", "v_reset")

    def __init__(self, spec: NodeSpec, dt: float) -> None:
        super().__init__(threshold=1.0)
        self.spec = spec
        self.dt = dt
        self.reset_mode = str(spec.params.get("reset", "to_v_reset"))
        _register_tensors(self, spec, self.tensor_names)
        self.refresh()

    def refresh(self) -> None:
        _derive(self, self.spec.type, self.dt)
        self.summarise_threshold()

    def summarise_threshold(self) -> None:
        """``threshold`` (what the Vm panel draws): the threshold when it is one value, else
        the mean; ``threshold_varies`` says which."""
        thr = self.v_threshold
        values = thr.unique() if thr.numel() else thr
        self.threshold = float(values[0] if values.numel() == 1 else thr.float().mean())
        self.threshold_varies = values.numel() > 1

    def dynamics(
        self, x: torch.Tensor, v: torch.Tensor | None, o: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        vm, state = _charge(self.spec.type, self, x, v)
        thr = self.v_threshold
        if self.threshold_scale != 1.0:
            thr = thr * self.threshold_scale
        fired = vm > thr
        z = fired.to(vm.dtype)
        if self.reset_mode == "to_v_reset":
            after = torch.where(fired, self.v_reset, vm)
        elif self.reset_mode == "subtract":
            after = vm - z * thr
        else:
            after = vm
        if self.spec.type == "CubaLIF":  # state = (i_syn, v): replace v by the reset one
            return z, vm, torch.stack((state[0], after))
        return z, vm, after


def _derive(m: nn.Module, type_: str, dt: float) -> None:
    """Register the per-step factors of the forward-Euler discretisation (module docstring)
    as non-persistent buffers ``k_*``, so they follow the module's device."""
    g = m._buffers
    if type_ in ("I", "IF"):
        k = {"gain": g["r"]}
    elif type_ in ("LI", "LIF"):
        a = dt / g["tau"]
        k = {"decay": 1.0 - a, "rest": a * g["v_leak"], "gain": a * g["r"], "v0": g["v_leak"]}
    elif type_ in ("CubaLI", "CubaLIF"):
        a_syn, a_mem = dt / g["tau_syn"], dt / g["tau_mem"]
        k = {
            "syn_decay": 1.0 - a_syn,
            "syn_gain": a_syn * g["w_in"],
            "decay": 1.0 - a_mem,
            "rest": a_mem * g["v_leak"],
            "gain": a_mem * g["r"],
            "v0": g["v_leak"],
        }
    else:
        raise ConfigError(f"no dynamics for node type {type_}")
    for name, value in k.items():
        m.register_buffer(f"k_{name}", value.float(), persistent=False)
    #: r == 1 everywhere (every IF that sinabs and snnTorch write): skip the multiply.
    m.unit_gain = type_ in ("I", "IF") and bool((g["r"] == 1).all())


def _charge(
    type_: str, m: Any, x: torch.Tensor, state: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of charging: (membrane, new state). CubaLI/CubaLIF state is (i_syn, v)."""
    if type_ in ("I", "IF"):
        charge = x if m.unit_gain else m.k_gain * x
        v = charge if state is None else state + charge
        return v, v
    if type_ in ("LI", "LIF"):
        v0 = m.k_v0.expand_as(x) if state is None else state
        v = m.k_decay * v0 + m.k_rest + m.k_gain * x
        return v, v
    if state is None:
        i_syn = m.k_syn_gain * x
        v_prev = m.k_v0.expand_as(x)
    else:
        i_syn = m.k_syn_decay * state[0] + m.k_syn_gain * x
        v_prev = state[1]
    v = m.k_decay * v_prev + m.k_rest + m.k_gain * i_syn
    return v, torch.stack((i_syn, v))


class Delay(GraphNode):
    """Output the input of ``round(delay/dt)`` steps ago (zeros before that), per element."""

    tensor_names = ("delay",)

    def __init__(self, spec: NodeSpec, dt: float) -> None:
        super().__init__(spec, dt)
        self.buffer: list[torch.Tensor] = []
        self.refresh()

    def refresh(self) -> None:
        steps = torch.round(self.delay / self.dt)
        if not torch.allclose(steps * self.dt, self.delay, rtol=1e-4, atol=1e-9):
            raise ConfigError(
                f"node {self.spec.name!r} (Delay): its delays are not whole multiples of "
                f"dt={self.dt:g} s"
            )
        self.steps = steps.long()
        self.max_steps = int(self.steps.max()) if self.steps.numel() else 0

    def reset(self) -> None:
        self.buffer = []

    def step(self, x: torch.Tensor) -> torch.Tensor:
        if self.max_steps == 0:
            return x
        self.buffer.append(x)
        if len(self.buffer) > self.max_steps + 1:
            self.buffer.pop(0)
        hist = torch.stack(self.buffer[::-1])  # [k, B, ...]: 0 = now, k = k steps ago
        if len(self.buffer) <= self.max_steps:
            pad = hist.new_zeros((self.max_steps + 1 - len(self.buffer), *x.shape))
            hist = torch.cat((hist, pad))
        idx = self.steps.to(x.device).expand_as(x).unsqueeze(0)
        return hist.gather(0, idx).squeeze(0)


_CLASSES: dict[str, Any] = {
    "Input": Identity, "Output": Identity, "Identity": Identity, "Affine": Affine,
    "Linear": Affine, "Scale": Scale, "Conv1d": Conv, "Conv2d": Conv, "Flatten": Flatten,
    "SumPool2d": Pool2d, "AvgPool2d": Pool2d, "GlobalAvgPool2d": GlobalAvgPool2d,
    "Threshold": Threshold, "I": Integrator, "LI": Integrator,
    "CubaLI": Integrator, "IF": GraphNeuron, "LIF": GraphNeuron, "CubaLIF": GraphNeuron,
    "Delay": Delay,
}  # fmt: skip


def build_node(spec: NodeSpec, dt: float) -> GraphNode | GraphNeuron:
    """The module for one node spec."""
    if spec.type == "SnnTorchAlpha":  # snnTorch's Alpha neuron (imports this module)
        from dvsapp.snn.graph.alpha import SnnTorchAlpha

        return SnnTorchAlpha(spec, dt)
    if spec.type == "StepAffine":  # BNTT's per-step tables (imports this module)
        from dvsapp.snn.graph.stepwise import StepAffine

        return StepAffine(spec, dt)
    if spec.type in ("Discrete", "MaxPool2d"):  # framework imports (imports this module)
        from dvsapp.snn.graph import discrete

        return (discrete.DiscreteNeuron if spec.type == "Discrete" else discrete.MaxPool2d)(
            spec, dt
        )
    return _CLASSES[spec.type](spec, dt)
