"""The in-depth probes of a stepped model: Vm histograms, per-channel activity, and
NeuroBench's synaptic operations and activation sparsity, measured at every step.

:class:`Analyzer` rides on the layers' probes (``ProbeSpec.vm_stats``: a small summary each
spiking layer computes on its device) and on hooks that keep a reference to each synaptic
layer's input (nothing is computed in the hook). :meth:`Analyzer.collect` then reduces
everything on the device and copies it to the host in one transfer.

Synaptic operations follow ``neurobench.metrics.workload.SynapticOperations`` (2.3.0):

* the synaptic layers are the convolutions and linear maps (``nn.Conv1d/2d/3d``,
  ``nn.Linear``; here also a tdBN ResNet's folded conv unit and a graph model's ``Conv`` and
  ``Affine`` nodes, whose tensors NeuroBench's hooks never see);
* per call, an input whose values all lie in {-1, 0, 1} is spiking: its operations are
  accumulates (AC), else multiply-accumulates (MAC);
* the count is ``sum(binary_layer(binary_input))``: every (non-zero input, non-zero weight)
  pair that meets in an output, the bias not counted; the dense count uses all-one inputs
  and weights (so a convolution's zero padding costs nothing).

Since the count is linear in the 0/1 input map, ``ops = <input != 0, fanout>`` where
``fanout`` (the count each input position contributes: its non-zero synapses onto outputs
inside the map) is found once per input shape, as the gradient of the binary layer's output
sum, and factorised into a per-channel and a per-position part where it can be
(:func:`factorise`). A step then costs one matrix-vector product per layer; an input that
is the output of a spiking layer (0/1 by :class:`~dvsapp.snn.base.SpikingNeuron`'s
contract) skips the binary test.

Activation sparsity follows ``ActivationSparsity``: the share of zero outputs over every
spiking layer's neurons (NeuroBench's activation layers of an SNN are its spiking neurons).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dvsapp.snn.analysis.records import (
    SATURATED_RATE,
    ChannelStats,
    StepAnalysis,
    SynapticLayer,
    VmStats,
)
from dvsapp.snn.analysis.vm import VmPlan
from dvsapp.snn.base import ProbeSpec, SpikingModel, SpikingNeuron

Apply = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
_MISSING = object()
#: float32 holds every integer count below this exactly.
_EXACT32 = 2**24


@dataclass(eq=False)
class _Synapse:
    """One synaptic layer: how to apply its weight (no bias) and its latest input."""

    name: str
    module: nn.Module
    entry: str  # "step": an instance wrapper around module.step; "call": a forward pre-hook
    weight: Callable[[], torch.Tensor]
    apply: Apply
    x: torch.Tensor | None = None
    xshape: torch.Size | None = None
    w: torch.Tensor | None = None  # the weight the fan-out map was made from, its version
    ver: int = -1
    fanout: torch.Tensor | None = None  # m of :func:`factorise`, on the input's device
    channels: np.ndarray | None = None  # a of :func:`factorise` (float64, host)
    dense: float = 0.0  # per sample
    handle: Any = None
    saved_step: Any = _MISSING

    def hook(self, _module: nn.Module, args: tuple[Any, ...]) -> None:
        self.x = args[0]


def _conv_apply(conv: nn.Module) -> Apply:
    return lambda x, w: conv._conv_forward(x, w, None)


def _linear_apply(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    return F.linear(x, w)


def find_synapses(model: SpikingModel) -> list[_Synapse]:
    """The model's synaptic layers, in module order (graph models: execution order, named by
    their graph node names)."""
    from dvsapp.snn.graph.nodes import Affine, Conv
    from dvsapp.snn.resnet import TdConvBN

    graph_names: dict[int, str] = {}
    order: dict[int, int] = {}
    nodes = getattr(model, "nodes", None)
    names = getattr(model, "_names", None)
    if isinstance(nodes, nn.ModuleDict) and isinstance(names, dict):
        graph_names = {id(m): names.get(k, k) for k, m in nodes.items()}
        program = getattr(model, "_program", ())
        order = {id(p[1]): i for i, p in enumerate(program)}
    found: list[_Synapse] = []
    inner: set[int] = set()
    for name, m in model.named_modules():
        if id(m) in inner:
            continue
        label = graph_names.get(id(m), name)
        if isinstance(m, TdConvBN):
            inner.add(id(m.conv))
            conv = m.conv
            found.append(_Synapse(label, m, "step", lambda c=conv: c.weight, _conv_apply(conv)))
        elif isinstance(m, Conv):
            found.append(
                _Synapse(
                    label,
                    m,
                    "step",
                    lambda n=m: n.weight,
                    lambda x, w, n=m: n._fn(x, w, None, *n._args),
                )
            )
        elif isinstance(m, Affine):
            found.append(_Synapse(label, m, "step", lambda n=m: n.weight, _linear_apply))
        elif isinstance(m, nn.Linear):
            found.append(_Synapse(label, m, "call", lambda n=m: n.weight, _linear_apply))
        elif isinstance(m, nn.Conv1d | nn.Conv2d | nn.Conv3d):
            found.append(_Synapse(label, m, "call", lambda n=m: n.weight, _conv_apply(m)))
    if order:
        found.sort(key=lambda s: order.get(id(s.module), len(order)))
    return found


def fanout_map(
    apply: Apply, weight: torch.Tensor, shape: tuple[int, ...]
) -> tuple[torch.Tensor, float]:
    """Per input position of one sample (shape ``shape``), the operations an input there
    costs: its non-zero synapses onto the outputs (float64, flat); and the dense count
    (all-one inputs and weights), as NeuroBench's ``single_layer_MACs`` counts them."""
    with torch.inference_mode(False), torch.enable_grad():
        w = weight.detach()
        maps = []
        for wb in (
            (w != 0).to(torch.float64),
            torch.ones(w.shape, dtype=torch.float64, device=w.device),
        ):
            x = torch.zeros((1, *shape), dtype=torch.float64, device=w.device, requires_grad=True)
            apply(x, wb).sum().backward()
            assert x.grad is not None
            maps.append(x.grad.detach().reshape(-1))
    return maps[0], float(maps[1].sum())


def factorise(fan: torch.Tensor, shape: tuple[int, ...]) -> tuple[np.ndarray, torch.Tensor]:
    """``fan`` (flat, float64 integers, one sample of ``shape``) as ``outer(a, m)`` over
    (channel, position) with integer ``a [C]`` and ``m [positions]`` when it is one (every
    channel's synapses reach the same places: dense weights, or zeros shared by all input
    channels); else ``a = [1]`` and ``m = fan``. Then a step's count is ``a @ (x @ m)``
    with ``x`` the 0/1 map as ``[C, positions]``: the device reads the input and ``m``
    only, and hands ``C`` partial counts to the host."""
    if len(shape) >= 2:
        f2 = fan.reshape(shape[0], -1)
        a = np.gcd.reduce(f2.to(torch.int64).cpu().numpy(), axis=1)
        k = int(np.argmax(a))
        if a[k] > 0:
            m = f2[k] / float(a[k])
            outer = torch.outer(torch.as_tensor(a, dtype=torch.float64, device=fan.device), m)
            if torch.equal(outer, f2) and torch.equal(m, m.round()):
                return a.astype(np.float64), m
    return np.ones(1), fan


class Analyzer:
    """The in-depth probes of one model (module docstring).

    ``shapes``: each spiking layer's per-sample map shape (by :meth:`spiking_layers` name).
    Call :meth:`install` after the raster/Vm taps set their probes, :meth:`collect` right
    after each model step, :meth:`reset` for a new stream and :meth:`remove` to restore the
    probes and drop the hooks.
    """

    def __init__(
        self,
        model: SpikingModel,
        shapes: Mapping[str, tuple[int, ...]],
        device: torch.device,
        vm_every: int = 1,
    ) -> None:
        self.model = model
        #: Vm statistics every this many collected steps (1: every step); on the steps
        #: between, ``StepAnalysis.vm`` is empty (the histograms are most of the cost).
        self.vm_every = max(1, int(vm_every))
        self._steps = 0
        self._plan: VmPlan | None = None
        self._plan_key: tuple[Any, ...] | None = None
        self.device = torch.device(device)
        self.layers: dict[str, SpikingNeuron] = model.spiking_layers()
        self.shapes = {name: tuple(int(s) for s in shapes[name]) for name in self.layers}
        self._synapses = find_synapses(model)
        #: The synaptic layers (conv/linear), in forward order.
        self.synaptic_layers: list[str] = [s.name for s in self._synapses]
        self._conv = {n for n, s in self.shapes.items() if len(s) == 3}
        self._numel = {n: math.prod(s) for n, s in self.shapes.items()}
        self._saved_probes: dict[str, ProbeSpec | None] | None = None
        self._installed: dict[str, ProbeSpec] = {}
        self._acc_all: np.ndarray | None = None
        self._acc_steps = 0
        self._ch: _Channels | None = None
        self._n64 = 0
        self._syn_key: tuple[Any, ...] | None = None
        self._syn_plan: tuple[bool, np.ndarray, np.ndarray, int] = (
            False,
            np.zeros(0),
            np.zeros(0),
            0,
        )

    # -- installation ----------------------------------------------------------------------
    def install(self) -> None:
        """Add Vm maps (and spikes) to every spiking layer's probe; hook the synaptic
        layers. Whoever sets the layers' probes anew (``ProbeTap.install``) calls
        :meth:`remove` before and this after."""
        if self._saved_probes is not None:
            return
        self._saved_probes = {n: layer.probe for n, layer in self.layers.items()}
        self._installed = {}
        for name, layer in self.layers.items():
            spec = layer.probe
            if spec is None:
                layer.probe = ProbeSpec(spikes=True, vm=False, vm_stats=True)
            else:
                layer.probe = dataclasses.replace(spec, spikes=True, vm_stats=True)
            self._installed[name] = layer.probe
        for syn in self._synapses:
            syn.x = None
            if syn.entry == "call":
                syn.handle = syn.module.register_forward_pre_hook(syn.hook)
            else:
                syn.saved_step = syn.module.__dict__.get("step", _MISSING)
                inner = syn.module.step

                def step(
                    x: torch.Tensor,
                    *args: Any,
                    _syn: _Synapse = syn,
                    _inner: Any = inner,
                    **kwargs: Any,
                ) -> Any:
                    _syn.x = x
                    return _inner(x, *args, **kwargs)

                syn.module.__dict__["step"] = step
        self.reset()

    def remove(self) -> None:
        """Drop the hooks and give every layer back the probe it had before :meth:`install`
        (a probe someone else has set since is left alone)."""
        if self._saved_probes is None:
            return
        for name, layer in self.layers.items():
            if layer.probe is self._installed.get(name):
                layer.probe = self._saved_probes[name]
                layer.record = None
        self._saved_probes = None
        self._installed = {}
        for syn in self._synapses:
            if syn.handle is not None:
                syn.handle.remove()
                syn.handle = None
            if syn.entry == "step":
                if syn.saved_step is _MISSING:
                    syn.module.__dict__.pop("step", None)
                else:
                    syn.module.__dict__["step"] = syn.saved_step
                syn.saved_step = _MISSING
            syn.x = None

    def reset(self) -> None:
        """A new stream: forget the window's channel counts."""
        self._acc_all = None
        self._acc_steps = 0
        self._steps = 0

    # -- per step --------------------------------------------------------------------------
    def _fanout(self, syn: _Synapse, x: torch.Tensor, fresh: bool) -> torch.Tensor:
        """The position part of the fan-out map for ``x``'s shape (:func:`factorise`),
        recomputed when the shape or the weights change (the weight tensor is looked up
        again at each window's first step)."""
        w = syn.w if syn.w is not None and not fresh else syn.weight()
        if syn.fanout is None or x.shape != syn.xshape or w is not syn.w or w._version != syn.ver:
            shape = tuple(x.shape[1:])
            fan, dense = fanout_map(syn.apply, w, shape)
            a, m = factorise(fan, shape)
            # float32 partial counts are exact below 2**24
            small = float(m.sum()) * x.shape[0] < _EXACT32
            syn.fanout = m.to(x.device, torch.float32 if small else torch.float64)
            syn.channels = a
            syn.dense, syn.xshape, syn.w, syn.ver = dense, x.shape, w, w._version
        return syn.fanout

    def collect(self, step_in_window: int) -> StepAnalysis:
        """What the probes measured at the step just run; ``step_in_window`` (1-based) = 1
        starts a new window for the channels' window rates."""
        parts: list[torch.Tensor] = []
        wide: list[torch.Tensor] = []  # float64 parts (counts beyond float32's exact range)
        ch_at: list[tuple[str, int, int, bool]] = []
        at = 0
        spikes_of: set[int] = set()
        batch = 1
        vm_layers: list[tuple[str, SpikingNeuron]] = []
        maps: list[torch.Tensor] = []
        self._steps += 1
        want_vm = (self._steps - 1) % self.vm_every == 0
        for name, layer in self.layers.items():
            rec = layer.record
            if rec is None:
                continue
            if want_vm and rec.vm_stats is not None:
                vm_layers.append((name, layer))
                maps.append(rec.vm_stats)
            sp = rec.spikes
            if sp is not None:
                batch = sp.shape[0]
                per_channel = name in self._conv and sp.dim() == 4
                sums = sp.sum((0, 2, 3)) if per_channel else sp.sum().reshape(1)
                ch_at.append((name, at, sums.numel(), per_channel))
                parts.append(sums)
                at += sums.numel()
            if layer.o is not None:
                spikes_of.add(id(layer.o))
        counts_at = -1  # in host64 when < 0
        rest_at = rest_len = 0
        plan = None
        if maps:
            plan = self._vm_plan(vm_layers, maps)
            counts, *rest = plan.reduce(maps)
            if max(plan.sizes) < _EXACT32:
                parts.append(counts.to(torch.float32))
                counts_at = at
                at += counts.numel()
            else:
                wide.append(counts.to(torch.float64))
            rest_at = at
            parts.extend(rest)
            at += sum(r.numel() for r in rest)
            rest_len = at - rest_at
        # synapse, batch, where its partial counts start (< 0: in host64), its flag's slot
        syn_at: list[tuple[_Synapse, int, int, int]] = []
        ops64: list[torch.Tensor] = []
        n64 = 0
        flags: list[torch.Tensor] = []
        for syn in self._synapses:
            x = syn.x
            if x is None:
                continue
            syn.x = None
            fan = self._fanout(syn, x, step_in_window <= 1)
            b = x.shape[0]
            if id(x) in spikes_of:  # a spiking layer's output: 0/1
                nz, flag = x, -1
            else:  # NeuroBench's test: every value in {-1, 0, 1}
                a = x.detach().abs()
                nz = a.sign()
                flags.append(torch.dist(a, nz, 1))
                flag = len(flags) - 1
            flat = nz.reshape(-1, fan.numel())  # [B * C, positions]
            if flat.dtype != fan.dtype:
                flat = flat.to(fan.dtype)
            partial = torch.mv(flat, fan)  # [B * C]: a step's count is channels @ these
            if fan.dtype == torch.float64:
                syn_at.append((syn, b, -1 - n64, flag))
                ops64.append(partial)
                n64 += partial.numel()
            else:
                syn_at.append((syn, b, at, flag))
                parts.append(partial)
                at += partial.numel()
        flag_at = at
        parts.extend(f.to(torch.float32).reshape(1) for f in flags)
        at += len(flags)
        host = torch.cat(parts).cpu().numpy().astype(np.float64) if parts else np.zeros(0)
        host64 = np.zeros(0)
        if ops64 or wide:
            host64 = torch.cat([*wide, *ops64]).cpu().numpy()
        self._n64 = n64
        out = self._unpack(step_in_window, batch, host, host64, ch_at, syn_at, flag_at)
        if plan is not None:
            n = plan.minlength
            counts_host = host[counts_at : counts_at + n] if counts_at >= 0 else host64[:n]
            _vm_stats(out, vm_layers, *plan.unpack(counts_host, host[rest_at : rest_at + rest_len]))
        return out

    def _vm_plan(self, layers: list[tuple[str, SpikingNeuron]], maps: list[torch.Tensor]) -> VmPlan:
        key = (
            tuple(
                (n, m.numel(), lay.threshold, lay.effective_threshold)
                for (n, lay), m in zip(layers, maps, strict=True)
            ),
            maps[0].device,
            maps[0].dtype,
        )
        if self._plan_key != key:
            self._plan = VmPlan(
                [m.numel() for m in maps],
                [lay.threshold for _, lay in layers],
                [lay.effective_threshold for _, lay in layers],
                maps[0],
            )
            self._plan_key = key
        assert self._plan is not None
        return self._plan

    def _synops(
        self, syn_at: list[tuple[_Synapse, int, int, int]], host: np.ndarray, host64: np.ndarray
    ) -> list[float]:
        """Each synaptic layer's count: its partial counts (per channel) times its channel
        weights, summed; one multiply and one reduceat when they lie side by side (batch 1,
        float32), else layer by layer."""
        first = syn_at[0][2]
        key = tuple((id(syn), b, slot) for syn, b, slot, _ in syn_at)
        if self._syn_key != key:
            sizes = [syn.channels.size * b for syn, b, _, _ in syn_at]  # type: ignore[union-attr]
            together = first >= 0 and all(
                b == 1 and slot == first + sum(sizes[:k])
                for k, (_, b, slot, _) in enumerate(syn_at)
            )
            weights = np.concatenate([syn.channels for syn, _, _, _ in syn_at])  # type: ignore[misc]
            starts = np.cumsum([0, *sizes[:-1]]).astype(np.intp)
            self._syn_key, self._syn_plan = key, (together, weights, starts, sum(sizes))
        together, weights, starts, total = self._syn_plan
        if together:
            return np.add.reduceat(host[first : first + total] * weights, starts).tolist()
        out = []
        for syn, b, slot, _ in syn_at:
            assert syn.channels is not None
            n = syn.channels.size * b
            if slot < 0:
                start = host64.size - self._n64 - 1 - slot
                partial = host64[start : start + n]
            else:
                partial = host[slot : slot + n]
            out.append(float(partial.reshape(b, -1).sum(0) @ syn.channels))
        return out

    def _channel_layout(self, ch_at: list[tuple[str, int, int, bool]], batch: int) -> _Channels:
        key = (tuple(ch_at), batch)
        if self._ch is None or self._ch.key != key:
            self._ch = _Channels(key, ch_at, self._numel, batch)
            self._acc_all = None
        return self._ch

    def _unpack(
        self,
        step_in_window: int,
        batch: int,
        host: np.ndarray,
        host64: np.ndarray,
        ch_at: list[tuple[str, int, int, bool]],
        syn_at: list[tuple[_Synapse, int, int, int]],
        flag_at: int,
    ) -> StepAnalysis:
        out = StepAnalysis()
        if ch_at:
            ch = self._channel_layout(ch_at, batch)
            sums = host[: ch.size]
            if step_in_window <= 1 or step_in_window <= self._acc_steps or self._acc_all is None:
                self._acc_all = None
            acc = sums if self._acc_all is None else self._acc_all + sums
            self._acc_all = acc
            self._acc_steps = step_in_window
            rates = (sums / ch.plane).astype(np.float32)
            window = acc / (ch.plane * max(step_in_window, 1))
            # one reduceat segment per layer (1-D layers' totals included), then the conv ones
            silent = np.add.reduceat(acc == 0, ch.starts)[ch.pick].tolist()
            saturated = np.add.reduceat(window >= SATURATED_RATE, ch.starts)[ch.pick].tolist()
            window = window.astype(np.float32)
            for k, (name, i, n) in enumerate(ch.layers):
                out.channels[name] = ChannelStats(
                    rates[i : i + n], window[i : i + n], silent[k], saturated[k]
                )
            out.sparsity = (ch.neurons - float(sums.sum())) / ch.neurons if ch.neurons else math.nan
        if syn_at:
            for (syn, b, _, flag), ops in zip(
                syn_at, self._synops(syn_at, host, host64), strict=True
            ):
                spiking = flag < 0 or host[flag_at + flag] == 0.0  # a NaN distance is not 0
                out.synops[syn.name] = SynapticLayer(ops, "AC" if spiking else "MAC", syn.dense * b)
        return out


class _Channels:
    """Where each layer's spike sums lie in the host copy (per channel for [C, H, W] maps,
    one total otherwise) and the neurons behind each entry."""

    def __init__(
        self,
        key: tuple[Any, ...],
        ch_at: list[tuple[str, int, int, bool]],
        numel: Mapping[str, int],
        batch: int,
    ) -> None:
        self.key = key
        self.size = sum(n for _, _, n, _ in ch_at)
        plane = np.ones(self.size)
        self.layers: list[tuple[str, int, int]] = []  # per-channel layers: name, start, C
        self.pick: list[int] = []  # their segments among all the layers'
        for k, (name, i, n, per_channel) in enumerate(ch_at):
            plane[i : i + n] = numel[name] // n * batch
            if per_channel:
                self.layers.append((name, i, n))
                self.pick.append(k)
        self.plane = plane
        #: every layer's first entry: one reduceat segment per layer
        self.starts = np.array([i for _, i, _, _ in ch_at], dtype=np.intp)
        self.neurons = float(sum(numel[name] * batch for name, _, _, _ in ch_at))


def _vm_stats(
    out: StepAnalysis,
    layers: list[tuple[str, SpikingNeuron]],
    counts2: np.ndarray,
    near_counts: np.ndarray,
    sums: np.ndarray,
    squares: np.ndarray,
    lows: np.ndarray,
    highs: np.ndarray,
) -> None:
    """``out.vm`` from the layers' ``[L, 2, NBINS]`` counts (far, near), near counts,
    sums, sums of squares, minima and maxima."""
    counts = counts2.sum(1).astype(np.int64)
    n = counts.sum(1)
    m = np.maximum(n, 1)  # every layer has neurons: counts sum to its size
    mean = sums / m
    std = np.sqrt(np.maximum(squares / m - mean * mean, 0.0))
    columns = zip(
        layers,
        counts,
        n.tolist(),
        (near_counts / m).tolist(),
        mean.tolist(),
        std.tolist(),
        lows.tolist(),
        highs.tolist(),
        strict=True,
    )
    for (name, layer), c, k, near, mu, sd, lo, hi in columns:
        out.vm[name] = VmStats(c, k, float(layer.effective_threshold), near, mu, sd, lo, hi)
