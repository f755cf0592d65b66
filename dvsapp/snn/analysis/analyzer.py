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
from collections.abc import Callable, Collection, Mapping
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
from dvsapp.snn.analysis.vm import VmPlan, compiled_kernels
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
    #: "step": an instance wrapper around module.step (our stepped layers); "call": a
    #: forward pre-hook (nn.Linear / nn.ConvNd, called as modules: an instance wrapper of
    #: ``forward`` would outlive a ``copy.deepcopy`` of the module, as NeuroBench makes)
    entry: str
    weight: Callable[[], torch.Tensor]
    apply: Apply
    x: torch.Tensor | None = None
    xshape: torch.Size | None = None
    w: torch.Tensor | None = None  # the weight the fan-out map was made from, its version
    ver: int = -1
    fanout: torch.Tensor | None = None  # m of :func:`factorise`, on the input's device
    channels: np.ndarray | None = None  # a of :func:`factorise` (float64, host)
    dense: float = 0.0  # per sample
    saved_step: Any = _MISSING
    handle: Any = None

    def hook(self, _module: nn.Module, args: tuple[Any, ...]) -> None:
        self.x = args[0]


def _keeping_input(syn: _Synapse, inner: Callable[..., Any]) -> Callable[..., Any]:
    """``inner`` (a bound step) that first keeps its input in ``syn.x``."""

    def call(x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        syn.x = x
        return inner(x, *args, **kwargs)

    return call


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
        vm_layers: Collection[str] | None = None,
        compiled: bool = True,
    ) -> None:
        self.model = model
        #: On a CPU, compute with the compiled kernels (:mod:`.cpu_kernels`) where they
        #: apply (float32; numba importable); False: the torch/numpy path everywhere.
        self.compiled = compiled
        #: Vm statistics every this many collected steps (1: every step); on the steps
        #: between, ``StepAnalysis.vm`` is empty (the histograms are most of the cost).
        self.vm_every = max(1, int(vm_every))
        #: The spiking layers whose Vm statistics are computed (None: all); the others are
        #: absent from ``StepAnalysis.vm``. May be changed between steps (e.g. to the layer
        #: a view shows). On resnet_small (``benchmarks/bench_probes.py``, one CPU thread,
        #: right after a model step) all 74K neurons' statistics cost ~0.08 ms a step with
        #: the compiled kernels and one 16K-neuron layer's ~0.03 ms (the torch path: ~0.45
        #: and ~0.25 ms, mostly its kernels' fixed cost).
        if isinstance(vm_layers, str):
            vm_layers = (vm_layers,)
        self.vm_layers: frozenset[str] | None = None if vm_layers is None else frozenset(vm_layers)
        self._steps = 0
        self._vplan: VmPlan | None = None
        self._vplan_key: tuple[Any, ...] | None = None
        self._plan: _Plan | None = None
        self._ch_key: tuple[Any, ...] | None = None
        self.device = torch.device(device)
        self.layers: dict[str, SpikingNeuron] = model.spiking_layers()
        self.shapes = {name: tuple(int(s) for s in shapes[name]) for name in self.layers}
        self._synapses = find_synapses(model)
        #: The synaptic layers (conv/linear), in forward order.
        self.synaptic_layers: list[str] = [s.name for s in self._synapses]
        self._conv = {n for n, s in self.shapes.items() if len(s) == 3}
        self._numel = {n: math.prod(s) for n, s in self.shapes.items()}
        self._order = {n: i for i, n in enumerate(self.layers)}
        self._saved_probes: dict[str, ProbeSpec | None] | None = None
        self._installed: dict[str, ProbeSpec] = {}
        self._acc_all: np.ndarray | None = None
        self._acc_steps = 0

    # -- installation ----------------------------------------------------------------------
    def install(self, rates: bool = False) -> None:
        """Add Vm maps (and spikes) to every spiking layer's probe; hook the synaptic
        layers. Whoever sets the layers' probes anew (``ProbeTap.install``) calls
        :meth:`remove` before and this after.

        ``rates``: :attr:`StepAnalysis.layer_rates` stand in for the layers' own rates (their
        ``ProbeRecord.rate``, a torch reduction per layer and step: ~0.1 ms of
        ``resnet_small``'s step on a CPU, for figures the channel sums already hold), which
        are then left out."""
        if self._saved_probes is not None:
            return
        self._saved_probes = {n: layer.probe for n, layer in self.layers.items()}
        self._installed = {}
        for name, layer in self.layers.items():
            spec = layer.probe
            if spec is None:
                layer.probe = ProbeSpec(spikes=True, vm=False, rate=False, vm_stats=True)
            else:
                layer.probe = dataclasses.replace(
                    spec, spikes=True, vm_stats=True, rate=spec.rate and not rates
                )
            self._installed[name] = layer.probe
        for syn in self._synapses:
            syn.x = None
            if syn.entry == "call":
                syn.handle = syn.module.register_forward_pre_hook(syn.hook)
            else:
                syn.saved_step = syn.module.__dict__.get("step", _MISSING)
                syn.module.__dict__["step"] = _keeping_input(syn, syn.module.step)
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
        self._steps += 1
        want_vm = (self._steps - 1) % self.vm_every == 0
        chosen = self.vm_layers
        vm_layers: list[tuple[str, SpikingNeuron]] = []
        maps: list[torch.Tensor] = []
        recs: list[tuple[str, torch.Tensor]] = []
        src: dict[int, tuple[str, torch.Tensor | None]] = {}
        rkey: list[tuple[Any, ...]] = []  # the layout's parts, gathered on the way
        vkey: list[tuple[Any, ...]] = []
        for name, layer in self.layers.items():
            rec = layer.record
            if rec is None:
                continue
            vm = rec.vm_stats
            if want_vm and vm is not None and (chosen is None or name in chosen):
                vm_layers.append((name, layer))
                maps.append(vm)
                vkey.append((name, vm.shape, layer.threshold, layer.threshold_scale))
            sp = rec.spikes
            if sp is not None:
                recs.append((name, sp))
                rkey.append((name, sp.shape, sp.dtype))
            if layer.o is not None:
                src[id(layer.o)] = (name, sp)
        fresh = step_in_window <= 1
        syns: list[tuple[_Synapse, torch.Tensor, torch.Tensor, int]] = []
        skey: list[tuple[Any, ...]] = []
        for syn in self._synapses:
            x = syn.x
            if x is None:
                continue
            syn.x = None
            fan = syn.fanout  # the fan-out map of the step before, unless it is stale
            if fresh or fan is None or x.shape != syn.xshape or syn.w._version != syn.ver:
                fan = self._fanout(syn, x, fresh)
            # a spiking layer's output (0/1): 1, and 2 when it is that layer's recorded map
            source = src.get(id(x))
            kind = 0 if source is None else 1
            if kind and source[1] is not None and source[1].data_ptr() == x.data_ptr():
                kind = 2
            syns.append((syn, x, fan, kind))
            skey.append((id(syn), id(fan), x.shape, x.dtype, kind, kind and source[0]))
        key = (tuple(rkey), tuple(skey))
        plan = self._plan if self._plan is not None and self._plan.key == key else None
        if plan is None:
            plan = self._plan = _Plan(
                key, recs, syns, src, self._conv, self._numel, self._order, self.compiled
            )
            if plan.ch_key != self._ch_key:
                self._ch_key, self._acc_all = plan.ch_key, None
        parts: list[torch.Tensor] = []
        host = np.zeros(0)
        if plan.host is not None:  # CPU: numpy on the tensors' memory (a third of the cost)
            host = plan.host
            self._host_figures(plan, recs, syns)
        else:
            self._device_figures(plan, recs, syns, parts)
        wide = plan.wide
        vplan = None
        rest_len = 0
        vm_host: tuple[np.ndarray, list[list[float]]] | None = None
        if maps:
            vplan = self._vm_plan(vm_layers, maps, tuple(vkey))
            if vplan.compiled and all(m.dtype == torch.float32 and m.is_contiguous() for m in maps):
                vm_host = vplan.host_statistics(maps)
                vplan = None
        if vplan is not None:
            counts, *rest = vplan.reduce(maps)
            wide = wide or max(vplan.sizes) >= _EXACT32
            parts.append(counts.to(torch.float64 if wide else torch.float32))
            parts.extend(rest)
            rest_len = sum(r.numel() for r in rest)
        if wide:
            parts = [p.to(torch.float64) for p in parts]
        fetched = torch.cat(parts).cpu().numpy().astype(np.float64) if parts else np.zeros(0)
        at = 0
        if plan.host is None:
            host, at = fetched, plan.size
        out = self._unpack(step_in_window, plan, host)
        if vplan is not None:
            n = vplan.minlength
            counts_host = fetched[at : at + n]
            rest_host = fetched[at + n : at + n + rest_len]
            _vm_stats(out, vm_layers, *vplan.unpack(counts_host, rest_host))
        elif vm_host is not None:
            counts, stats = vm_host
            for (name, layer), c, (k, near, mu, sd, lo, hi) in zip(
                vm_layers, counts, stats, strict=True
            ):
                thr = float(layer.effective_threshold)
                out.vm[name] = VmStats(c, int(k), thr, near, mu, sd, lo, hi)
        return out

    @staticmethod
    def _device_figures(
        plan: _Plan,
        recs: list[tuple[str, torch.Tensor]],
        syns: list[tuple[_Synapse, torch.Tensor, torch.Tensor, int]],
        parts: list[torch.Tensor],
    ) -> None:
        """The channel sums, partial counts and binary tests, as device tensors in
        ``parts`` (in the plan's order)."""
        for (_, sp), (rows, weights) in zip(recs, plan.blocks, strict=True):
            flat = sp.reshape(rows, -1)
            parts.append(flat.sum(1) if weights is None else torch.mm(flat, weights.t()).view(-1))
        flags: list[torch.Tensor] = []
        for (_, x, fan, kind), alone in zip(syns, plan.alone, strict=True):
            if not alone:
                continue
            if kind:
                nz = x
            else:  # NeuroBench's test: every value in {-1, 0, 1}
                a = x.detach().abs()
                nz = a.sign()
                flags.append(torch.dist(a, nz, 1))
            flat = nz.reshape(-1, fan.numel())
            if flat.dtype != fan.dtype:
                flat = flat.to(fan.dtype)
            parts.append(torch.mv(flat, fan))
        if flags:
            parts.append(torch.stack(flags).to(torch.float64 if plan.wide else torch.float32))

    @staticmethod
    def _host_figures(
        plan: _Plan,
        recs: list[tuple[str, torch.Tensor]],
        syns: list[tuple[_Synapse, torch.Tensor, torch.Tensor, int]],
    ) -> None:
        """The same as :meth:`_device_figures`, for float32 CPU tensors: numpy on their
        memory (no copy), written into ``plan.host`` (a numpy call costs a fraction of a
        torch one, and the figures are small)."""
        assert plan.numpy is not None
        blocks, alone = plan.numpy
        host = plan.host
        assert host is not None
        kernels = compiled_kernels() if plan.kernel is not None else None
        if kernels is not None:
            layout, weights = plan.kernel  # type: ignore[misc]
            # the plan's float32 CPU maps, contiguous (else copied), alive till it returns
            maps = [sp if sp.is_contiguous() else sp.contiguous() for _, sp in recs]
            addresses = np.array([sp.data_ptr() for sp in maps], dtype=np.int64)
            kernels.block_sums(addresses, layout, weights, host)
        else:
            for (_, sp), (weights, view) in zip(recs, blocks, strict=True):
                flat = sp.numpy().reshape(view.shape[0], -1)  # a record's tensors are detached
                np.matmul(flat, weights, out=view)
        for k, view, flag in alone:
            _, x, _, kind = syns[k]
            nz = x.detach().numpy()
            if kernels is not None and nz.dtype == np.float32:
                d = kernels.input_counts(
                    nz.reshape(view.shape[0], -1), plan.fans[k], view, not kind
                )
                if not kind:
                    host[flag] = d
                continue
            if not kind:  # NeuroBench's test: every value in {-1, 0, 1}
                if nz.min() < -1 or nz.max() > 1:  # (event counts): not, at once
                    host[flag] = 1.0
                    nz = nz != 0
                else:  # NaN too (no comparison holds): its distance is NaN, not 0
                    a = np.abs(nz)
                    nz = np.sign(a)
                    host[flag] = np.abs(a - nz).sum()
            if nz.dtype != np.float32:
                nz = nz.astype(np.float32)
            np.matmul(nz.reshape(view.shape[0], -1), plan.fans[k], out=view)

    def _vm_plan(
        self,
        layers: list[tuple[str, SpikingNeuron]],
        maps: list[torch.Tensor],
        per_layer: tuple[tuple[Any, ...], ...],
    ) -> VmPlan:
        """The plan of these layers' maps; ``per_layer``: each one's name, map shape, base
        threshold and threshold scale."""
        key = (per_layer, maps[0].device, maps[0].dtype)
        if self._vplan_key != key:
            self._vplan = VmPlan(
                [m.numel() for m in maps],
                [lay.threshold for _, lay in layers],
                [lay.effective_threshold for _, lay in layers],
                maps[0],
                self.compiled,
            )
            self._vplan_key = key
        assert self._vplan is not None
        return self._vplan

    def _unpack(self, step_in_window: int, plan: _Plan, host: np.ndarray) -> StepAnalysis:
        restart = step_in_window <= 1 or step_in_window <= self._acc_steps or self._acc_all is None
        self._acc_steps = step_in_window
        kernels = compiled_kernels() if self.compiled else None
        if kernels is not None:
            return self._unpack_compiled(kernels, step_in_window, restart, plan, host)
        out = StepAnalysis()
        if plan.entries:
            sums = host[plan.ch_idx].astype(np.float64).sum(0)
            acc = sums if restart or self._acc_all is None else self._acc_all + sums
            self._acc_all = acc
            rates = (sums / plan.plane).astype(np.float32)
            window = acc / (plan.plane * max(step_in_window, 1))
            # one reduceat segment per layer (1-D layers' totals included), then the conv ones
            silent = np.add.reduceat(acc == 0, plan.starts)[plan.pick].tolist()
            saturated = np.add.reduceat(window >= SATURATED_RATE, plan.starts)[plan.pick].tolist()
            window = window.astype(np.float32)
            for k, (name, i, n) in enumerate(plan.channels):
                out.channels[name] = ChannelStats(
                    rates[i : i + n], window[i : i + n], silent[k], saturated[k]
                )
            out.sparsity = (
                (plan.neurons - float(sums.sum())) / plan.neurons if plan.neurons else math.nan
            )
            out.layer_rates = self._layer_rates(plan, np.add.reduceat(sums, plan.starts))
        if plan.synapses:
            ops = np.add.reduceat(host[plan.syn_idx] * plan.syn_w, plan.syn_starts).tolist()
            for (name, dense, flag), n in zip(plan.synapses, ops, strict=True):
                spiking = flag < 0 or host[flag] == 0.0  # a NaN distance is not 0
                out.synops[name] = SynapticLayer(n, "AC" if spiking else "MAC", dense)
        return out

    def _unpack_compiled(
        self, kernels: Any, step_in_window: int, restart: bool, plan: _Plan, host: np.ndarray
    ) -> StepAnalysis:
        """:meth:`_unpack`'s figures from one compiled call."""
        out = StepAnalysis()
        e = plan.entries
        if self._acc_all is None or self._acc_all.size != e:
            self._acc_all, restart = np.zeros(e), True
        rates = np.empty(e, dtype=np.float32)
        window = np.empty(e, dtype=np.float32)
        k = len(plan.channels)
        silent = np.empty(k, dtype=np.int64)
        saturated = np.empty(k, dtype=np.int64)
        ops = np.empty(len(plan.synapses))
        lay_sum = np.empty(plan.starts.size)
        total = kernels.step_figures(
            host,
            plan.ch_idx,
            plan.plane,
            self._acc_all,
            restart,
            step_in_window,
            SATURATED_RATE,
            plan.starts,
            plan.ch_start,
            plan.ch_len,
            plan.syn_idx,
            plan.syn_w,
            plan.syn_starts,
            rates,
            window,
            silent,
            saturated,
            ops,
            lay_sum,
        )
        if e:
            for (name, i, n), dead, full in zip(
                plan.channels, silent.tolist(), saturated.tolist(), strict=True
            ):
                out.channels[name] = ChannelStats(rates[i : i + n], window[i : i + n], dead, full)
            out.sparsity = (plan.neurons - total) / plan.neurons if plan.neurons else math.nan
            out.layer_rates = self._layer_rates(plan, lay_sum)
        for (name, dense, flag), n in zip(plan.synapses, ops.tolist(), strict=True):
            spiking = flag < 0 or host[flag] == 0.0  # a NaN distance is not 0
            out.synops[name] = SynapticLayer(n, "AC" if spiking else "MAC", dense)
        return out

    def _layer_rates(self, plan: _Plan, counts: np.ndarray) -> np.ndarray:
        """Every spiking layer's rate from the recorded layers' spike counts (float32
        ``count / neurons``, as torch's mean; NaN where nothing was recorded)."""
        rates = counts.astype(np.float32) / plan.rate_n
        if plan.rate_pos.size == len(self.layers):  # every layer recorded, in order
            return rates
        out = np.full(len(self.layers), np.nan, dtype=np.float32)
        out[plan.rate_pos] = rates
        return out


class _Plan:
    """One step layout's device work and where its figures lie in the host copy.

    Each recorded spike map is one block: its rows (a channel per row for a conv layer's
    ``[B, C, H, W]`` map, else a sample per row) times ``[ones, m_1, ...]``: the row sums
    and the position part ``m`` (:func:`factorise`) of every synaptic layer whose input is
    that very map (checked by identity and storage), in one matrix product. Other synaptic
    layers' partial counts follow (one matrix-vector product each), then the binary tests'
    distances. The host gathers channel sums and partial counts with precomputed indices.
    """

    def __init__(
        self,
        key: tuple[Any, ...],
        recs: list[tuple[str, torch.Tensor]],
        syns: list[tuple[_Synapse, torch.Tensor, torch.Tensor, int]],
        src: Mapping[int, tuple[str, torch.Tensor | None]],
        conv: set[str],
        numel: Mapping[str, int],
        order: Mapping[str, int],
        compiled: bool = True,
    ) -> None:
        self.key = key
        batch = recs[0][1].shape[0] if recs else 1
        self.batch = batch
        layout: dict[str, tuple[int, int, bool]] = {}  # name -> rows, row length, per channel
        for name, sp in recs:
            per_channel = name in conv and sp.dim() == 4
            rows = sp.shape[0] * sp.shape[1] if per_channel else sp.shape[0]
            layout[name] = (rows, sp.numel() // max(rows, 1), per_channel)
        # which synapses join their source's block, and at which column
        columns: dict[str, list[int]] = {name: [] for name, _ in recs}
        self.alone: list[bool] = []
        self.wide = False
        for k, (syn, x, fan, kind) in enumerate(syns):
            joined = False
            if kind == 2:
                name, sp = src[id(x)]
                assert sp is not None and syn.channels is not None
                rows, length, _ = layout[name]
                joined = (
                    fan.numel() == length
                    and rows == syn.channels.size * x.shape[0]
                    and (sp.dtype == torch.float64 or (sp.dtype == fan.dtype == torch.float32))
                )
                if joined:
                    columns[name].append(k)
            self.alone.append(not joined)
            self.wide = self.wide or (not joined and fan.dtype == torch.float64)
        self.wide = self.wide or any(sp.dtype == torch.float64 for _, sp in recs)
        at = 0
        self.blocks: list[tuple[int, torch.Tensor | None]] = []
        where: dict[int, tuple[int, int, int]] = {}  # synapse -> first entry, stride, count
        ch_idx: list[np.ndarray] = []  # per entry, its positions per sample
        self.channels: list[tuple[str, int, int]] = []  # per-channel layers: name, start, C
        self.pick: list[int] = []
        plane: list[np.ndarray] = []
        starts: list[int] = []
        entries = 0
        self.neurons = 0.0
        for k, (name, sp) in enumerate(recs):
            rows, length, per_channel = layout[name]
            cols = columns[name]
            weights = None
            if cols:
                weights = torch.stack(
                    [torch.ones_like(syns[cols[0]][2]), *(syns[j][2] for j in cols)]
                ).to(sp.dtype)
            self.blocks.append((rows, weights))
            width = 1 + len(cols)
            for c, j in enumerate(cols, start=1):
                where[j] = (at + c, width, rows)
            n = rows // batch  # entries of this layer
            pos = at + np.arange(rows).reshape(batch, n) * width
            ch_idx.append(pos)
            starts.append(entries)
            plane.append(np.full(n, numel[name] // n * batch, dtype=np.float64))
            if per_channel:
                self.channels.append((name, entries, n))
                self.pick.append(k)
            entries += n
            self.neurons += float(numel[name] * batch)
            at += rows * width
        for j, ((_, x, fan, _), alone) in enumerate(zip(syns, self.alone, strict=True)):
            if alone:
                n = x.numel() // fan.numel()
                where[j] = (at, 1, n)
                at += n
        flag_at = at
        self.synapses: list[tuple[str, float, int]] = []  # name, dense, its flag's position
        idx: list[np.ndarray] = []
        w: list[np.ndarray] = []
        syn_starts: list[int] = []
        for j, (syn, x, _, kind) in enumerate(syns):
            assert syn.channels is not None
            first, stride, n = where[j]
            syn_starts.append(sum(a.size for a in idx))
            idx.append(first + stride * np.arange(n))
            w.append(np.tile(syn.channels, n // syn.channels.size))
            flag = -1
            if kind == 0:
                flag, at = at, at + 1
            self.synapses.append((syn.name, syn.dense * x.shape[0], flag))
        assert at == flag_at + sum(1 for _, _, _, kind in syns if kind == 0)
        #: the entries before the Vm statistics
        self.size = at
        self.entries = entries
        self.ch_idx = np.concatenate(ch_idx, axis=1) if ch_idx else np.zeros((1, 0), np.intp)
        self.plane = np.concatenate(plane) if plane else np.zeros(0)
        #: every layer's first entry: one reduceat segment per layer
        self.starts = np.array(starts, dtype=np.intp)
        self.ch_key = (tuple((name, layout[name]) for name, _ in recs), batch)
        #: per recorded layer, its place in the model's layer order and its neurons (float32)
        self.rate_pos = np.array([order[name] for name, _ in recs], dtype=np.intp)
        self.rate_n = np.array([numel[name] * batch for name, _ in recs], dtype=np.float32)
        self.syn_idx = np.concatenate(idx) if idx else np.zeros(0, np.intp)
        self.syn_w = np.concatenate(w) if w else np.zeros(0)
        self.syn_starts = np.array(syn_starts, dtype=np.intp)
        #: per conv layer, its first entry and channel count (for the compiled kernels)
        self.ch_start = np.array([i for _, i, _ in self.channels], dtype=np.intp)
        self.ch_len = np.array([n for _, _, n in self.channels], dtype=np.intp)
        #: CPU float32 only: the host buffer the figures are written into, and per block
        #: (weights ``[P, 1 + k]`` or None, its view), per synapse alone (index, view, flag)
        self.host: np.ndarray | None = None
        self.numpy: tuple[list[Any], list[tuple[int, np.ndarray, int]]] | None = None
        self.fans: dict[int, np.ndarray] = {}
        #: With the compiled kernels: the blocks' layout and their weights, flat
        #: (:func:`.cpu_kernels.block_sums`).
        self.kernel: tuple[np.ndarray, np.ndarray] | None = None
        tensors = [sp for _, sp in recs] + [t for _, x, fan, _ in syns for t in (x, fan)]
        if (
            all(t.device.type == "cpu" for t in tensors)
            and not self.wide
            and all(sp.dtype == torch.float32 for _, sp in recs)
        ):
            host = np.zeros(self.size, dtype=np.float32)
            at = 0
            blocks: list[Any] = []
            for (name, _), (rows, weights) in zip(recs, self.blocks, strict=True):
                if weights is None:  # a matrix-vector product beats numpy's sum here
                    w1 = np.ones(layout[name][1], dtype=np.float32)
                    blocks.append((w1, host[at : at + rows]))
                    at += rows
                else:
                    width = weights.shape[0]
                    w = np.ascontiguousarray(weights.detach().numpy().T)
                    blocks.append((w, host[at : at + rows * width].reshape(rows, width)))
                    at += rows * width
            singles: list[tuple[int, np.ndarray, int]] = []
            flags = iter(f for _, _, f in self.synapses if f >= 0)
            for k, ((_, x, fan, kind), alone) in enumerate(zip(syns, self.alone, strict=True)):
                if alone:
                    n = x.numel() // fan.numel()
                    singles.append((k, host[at : at + n], -1 if kind else next(flags)))
                    self.fans[k] = fan.detach().numpy()
                    at += n
            self.host, self.numpy = host, (blocks, singles)
            if compiled and compiled_kernels() is not None:
                # per block: rows, P, width, its weights' offset, its output's offset in host
                layout, flat, at_w = [], [], 0
                for w, view in blocks:
                    wt = np.ascontiguousarray(w.reshape(w.shape[0], -1).T)  # [width, P]
                    rows = view.shape[0]
                    at_out = (view.__array_interface__["data"][0] - host.ctypes.data) // 4
                    layout.append((rows, wt.shape[1], wt.shape[0], at_w, at_out))
                    flat.append(wt.reshape(-1))
                    at_w += wt.size
                self.kernel = (
                    np.array(layout, dtype=np.int64).reshape(-1, 5),
                    np.concatenate(flat) if flat else np.zeros(0, dtype=np.float32),
                )


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
