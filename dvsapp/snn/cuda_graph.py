"""Fast streaming steps: static neuron state and, on CUDA, the whole ``model.step`` replayed
as one CUDA graph.

A CUDA graph replays the kernels of one captured call with the tensor addresses of that call,
so everything a step reads or writes between calls must live at fixed addresses:

* the input frame: copied into a static ``[B, C, H, W]`` tensor each step;
* the neuron state: before capture every layer's ``v`` and ``o`` are allocated as views into
  one zeroed buffer per dtype ("static state"); at the end of the captured step the new state
  is copied into them and the layers' attributes are pointed back at them, so each replay
  reads the state the previous replay wrote;
* weights: eval-mode folded weights (tdBN into the conv, BNTT into a scale/shift) are cached
  by the model; the wrapper keeps them alive and re-captures when any parameter or buffer
  changes (data pointer or version counter), e.g. after ``load_state_dict``.

What Python decides at capture time is frozen into a graph, so graphs are keyed by it:

* the step index: tdBN models are time-invariant (one graph). BNTT picks ``BN_t`` with the
  Python int ``model.steps_taken``: one graph per BN index ``model.bn_index(t)``, which also
  maps every step beyond the trained T to the last step's graph under ``beyond_t="clamp"``
  (at most T graphs) and raises :class:`~dvsapp.snn.bntt.BeyondTrainedStepsError` under
  ``"error"``, exactly as the eager step does. Other families: one graph per step index below
  ``config.time_steps``, eager beyond it.
* each layer's threshold and ``threshold_scale`` and its probe spec, selected neurons
  included: a change captures a new graph (kept, up to ``max_graphs``, oldest dropped
  first). Probes recording spikes, rates, the whole Vm map or the Vm of selected neurons are
  captured with the step; their records hold graph memory that the next step overwrites
  (read them before stepping again, as the stepper does). A selection's device index tensor
  is built (host-to-device copy, bounds mask) by the warm-up steps before capture and cached
  by the layer, so the captured step only gathers with it; the graph keeps that tensor
  alive. Other neuron constants (``tau_decay``, ``leak``) are frozen too: call
  :meth:`CudaGraphStep.invalidate` after changing them. A capture that fails (something in
  a custom model that a graph cannot hold) warns and leaves that key to eager steps.

``reset()`` zeroes the static state (one kernel) and the step counter. For :class:`TdLIF` and
:class:`BnttLIF` a zero state is exactly a fresh one (``tau * 0 * (1 - 0) + x == x`` and
``leak * 0 + x == x`` bit for bit). For other neuron classes, whose ``None`` state may differ
from zeros, the first step after a reset runs eagerly from ``None`` (``zero_state_is_fresh``).
``model.reset()`` or eager ``model.step`` calls made behind the wrapper's back are noticed at
the next step (the layers no longer hold the static tensors) and followed.

``use_graph=False`` runs the same static-state logic eagerly (the CPU path, and what the tests
check on machines without a GPU); it is not faster than plain ``model.step`` on a CPU.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import torch

from dvsapp.snn.base import ProbeRecord, ProbeSpec, SpikingModel, SpikingNeuron
from dvsapp.snn.bntt import BnttLIF
from dvsapp.snn.tdbn import TdLIF

__all__ = ["ZERO_STATE_IS_FRESH", "CudaGraphStep", "GraphStats", "graphed_step"]

#: Neuron classes whose all-zero ``(v, o)`` state steps exactly like their fresh ``None`` state.
ZERO_STATE_IS_FRESH: tuple[type[SpikingNeuron], ...] = (TdLIF, BnttLIF)


@dataclass
class GraphStats:
    """What the wrapper did: graphs captured, graph replays, eager steps (and why)."""

    captures: int = 0
    replays: int = 0
    eager_steps: int = 0
    invalidations: int = 0


@dataclass
class _Captured:
    graph: torch.cuda.CUDAGraph
    output: torch.Tensor
    records: list[ProbeRecord | None]
    keepalive: list[torch.Tensor] = field(default_factory=list)


def _probe_key(spec: ProbeSpec | None) -> tuple[bool, bool | tuple[int, ...], bool] | None:
    """What a graph freezes of a probe spec: a Vm selection by its neuron indices."""
    if spec is None:
        return None
    vm = spec.vm if isinstance(spec.vm, bool) else tuple(int(i) for i in spec.vm)
    return (bool(spec.spikes), vm, bool(spec.rate))


def _tensors_in(value: Any) -> Iterable[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif isinstance(value, tuple | list):
        for v in value:
            yield from _tensors_in(v)


def _model_device(model: torch.nn.Module) -> torch.device:
    for t in chain(model.parameters(), model.buffers()):
        return t.device
    return torch.device("cpu")


class CudaGraphStep:
    """``model.step`` over static input and state, replayed from CUDA graphs on a GPU.

    ``step(frame)`` takes ``[B, C, H, W]`` (or ``[C, H, W]`` when ``batch_size == 1``) on any
    device and returns that step's output ``[B, K]`` (a fresh tensor unless
    ``clone_output=False``, then graph memory valid until the next step). The model must be
    in eval mode and stay on ``device``; build a new wrapper after moving it.
    """

    def __init__(
        self,
        model: SpikingModel,
        batch_size: int = 1,
        frame_shape: Sequence[int] | None = None,
        device: str | torch.device | None = None,
        *,
        use_graph: bool | None = None,
        zero_state_is_fresh: bool | None = None,
        warmup_steps: int = 2,
        max_graphs: int = 64,
        clone_output: bool = True,
        watch_weights: bool = True,
    ) -> None:
        if model.training:
            raise ValueError("CudaGraphStep needs the model in eval mode (call model.eval())")
        self.model = model
        self.device = torch.device(device) if device is not None else _model_device(model)
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        self.use_graph = self.device.type == "cuda" if use_graph is None else bool(use_graph)
        if self.use_graph and self.device.type != "cuda":
            raise ValueError(f"CUDA graphs need a CUDA device, got {self.device}")
        if self.use_graph and type(model)._reset_extra is not SpikingModel._reset_extra:
            raise ValueError(
                f"{type(model).__name__} keeps state outside its neurons (_reset_extra), "
                "which a CUDA graph cannot carry; use use_graph=False"
            )
        cfg = model.config
        if frame_shape is None:
            frame_shape = (cfg.in_channels, cfg.input_size[1], cfg.input_size[0])
        self.frame_shape = (int(batch_size), *(int(s) for s in frame_shape))
        self.layers: list[SpikingNeuron] = list(model.spiking_layers().values())
        if zero_state_is_fresh is None:
            zero_state_is_fresh = all(isinstance(la, ZERO_STATE_IS_FRESH) for la in self.layers)
        self.zero_state_is_fresh = zero_state_is_fresh
        self.warmup_steps = max(1, int(warmup_steps))
        self.max_graphs = max(1, int(max_graphs))
        self.clone_output = clone_output
        self.watch_weights = watch_weights
        self.stats = GraphStats()
        self._graphs: dict[tuple, _Captured] = {}
        self._pool: Any = None
        self._stream: torch.cuda.Stream | None = None  # warm-up and capture stream
        self._uncapturable: set[tuple] = set()  # keys whose capture failed: eager
        self._weights = self._weights_key()
        dtype = next(chain(model.parameters(), [torch.empty(0)])).dtype
        with torch.inference_mode(False), torch.no_grad():
            self._x = torch.zeros(self.frame_shape, dtype=dtype, device=self.device)
        self._allocate_state()
        self.reset()

    # -- public ---------------------------------------------------------------------------

    @property
    def steps_taken(self) -> int:
        """Steps since the last reset (the model's own counter, kept in step)."""
        return self.model.steps_taken

    @property
    def n_graphs(self) -> int:
        return len(self._graphs)

    def reset(self) -> None:
        """Zero the static state, clear the records, restart at step 0."""
        with torch.inference_mode():
            self.model.reset()
            for flat in self._flats:
                flat.zero_()
            self._attach()
        self._fresh = not self.zero_state_is_fresh
        if not self.watch_weights:
            self._check_weights()

    def invalidate(self) -> None:
        """Drop every captured graph (they are re-captured on demand)."""
        if self._graphs:
            self.stats.invalidations += 1
        self._graphs.clear()
        self._uncapturable.clear()

    def release(self) -> None:
        """Drop the graphs and hand the model back with a plain fresh state."""
        self.invalidate()
        self.model.reset()

    def graph_key(self, t: int | None = None) -> tuple | None:
        """The key of the graph that serves step ``t`` (default: the next step) with the
        layers' current thresholds and probes; None where that step runs eagerly. Raises
        :class:`~dvsapp.snn.bntt.BeyondTrainedStepsError` where the model's step would."""
        index = self._step_index(self.model.steps_taken if t is None else t)
        if index is None:
            return None
        config = tuple(
            (la.threshold, la.threshold_scale, _probe_key(la.probe)) for la in self.layers
        )
        return (index, config)

    def prepare(self, indices: Iterable[int] | None = None) -> int:
        """Capture, now, the graphs of steps ``indices`` (default: every step index the model
        distinguishes, e.g. all T for BNTT), so no capture stalls the stream later. Returns
        the number of graphs held."""
        if not self.use_graph:
            return 0
        if indices is None:
            indices = range(self._n_indices())
        with torch.inference_mode():
            self._follow_model()
            self._check_weights()
            for t in indices:
                key = self.graph_key(t)
                if key is not None and key not in self._graphs and key not in self._uncapturable:
                    self._capture(key, t)
        return self.n_graphs

    def step(self, frame: torch.Tensor) -> torch.Tensor:
        """One frame -> this step's output; the static state carries over."""
        if self.model.training:
            raise RuntimeError("the model was put back in training mode; call model.eval()")
        if frame.dim() == len(self.frame_shape) - 1:
            frame = frame.unsqueeze(0)
        if tuple(frame.shape) != self.frame_shape:
            raise ValueError(f"expected a frame of shape {list(self.frame_shape)}, "
                             f"got {list(frame.shape)}")  # fmt: skip
        with torch.inference_mode():
            self._follow_model()
            t = self.model.steps_taken
            key = self.graph_key(t)  # raises past T under beyond_t="error"
            self._x.copy_(frame)
            if self._fresh:
                out = self._fresh_step()
            elif key is None or not self.use_graph:
                out = self._eager_step(t)
            else:
                out = self._replay(key, t)
            self.model.steps_taken = t + 1
        return out

    __call__ = step

    # -- state ----------------------------------------------------------------------------

    def _allocate_state(self) -> None:
        """Discover each layer's state shape with one fresh step, then allocate it as views
        into one flat zero buffer per dtype (so ``reset`` is one kernel per dtype)."""
        model = self.model
        with torch.inference_mode():
            model.reset()
            model.step(self._x)
            shapes = [(la.v, la.o) for la in self.layers]
            model.reset()
        if any(v is None or o is None for v, o in shapes):
            raise ValueError("a spiking layer kept no (v, o) state after a step")
        sizes: dict[torch.dtype, int] = {}
        for v, o in shapes:
            for s in (v, o):
                sizes[s.dtype] = sizes.get(s.dtype, 0) + s.numel()
        with torch.inference_mode(False), torch.no_grad():
            flats = {dt: torch.zeros(n, dtype=dt, device=self.device) for dt, n in sizes.items()}
            offsets = dict.fromkeys(sizes, 0)
            state = []
            for v, o in shapes:
                pair = []
                for s in (v, o):
                    off = offsets[s.dtype]
                    pair.append(flats[s.dtype][off : off + s.numel()].view(s.shape))
                    offsets[s.dtype] = off + s.numel()
                state.append((pair[0], pair[1]))
        self._flats = list(flats.values())
        self._state: list[tuple[torch.Tensor, torch.Tensor]] = state

    def _attach(self) -> None:
        for la, (v, o) in zip(self.layers, self._state, strict=True):
            la.v, la.o = v, o

    def _commit(self) -> None:
        """Copy the layers' new state into the static tensors and point the layers back."""
        for la, (v, o) in zip(self.layers, self._state, strict=True):
            if la.v is not v:
                v.copy_(la.v)
                la.v = v
            if la.o is not o:
                o.copy_(la.o)
                la.o = o

    def _follow_model(self) -> None:
        """Adopt a ``model.reset()`` or eager steps made behind our back."""
        pairs = zip(self.layers, self._state, strict=True)
        if all(la.v is v and la.o is o for la, (v, o) in pairs):
            return
        if self.model.steps_taken == 0 and all(la.v is None for la in self.layers):
            steps = 0
            for flat in self._flats:
                flat.zero_()
            self._fresh = not self.zero_state_is_fresh
        else:
            steps = self.model.steps_taken
            for la, (v, o) in zip(self.layers, self._state, strict=True):
                for live, static in ((la.v, v), (la.o, o)):
                    if live is None:
                        static.zero_()
                    elif live is not static:
                        static.copy_(live)
            self._fresh = False
        records = [la.record for la in self.layers]
        self._attach()
        for la, rec in zip(self.layers, records, strict=True):
            la.record = rec
        self.model.steps_taken = steps

    # -- steps ----------------------------------------------------------------------------

    def _step_index(self, t: int) -> int | None:
        model = self.model
        bn_index = getattr(model, "bn_index", None)
        if callable(bn_index):
            return int(bn_index(t))
        if model.family == "tdbn":
            return 0
        return t if t < model.config.time_steps else None

    def _n_indices(self) -> int:
        model = self.model
        if model.family == "tdbn" and not callable(getattr(model, "bn_index", None)):
            return 1
        return int(getattr(model, "time_steps", model.config.time_steps))

    def _eager_step(self, t: int) -> torch.Tensor:
        self.model.steps_taken = t
        out = self.model.step(self._x)
        self._commit()
        self.stats.eager_steps += 1
        return out

    def _fresh_step(self) -> torch.Tensor:
        """First step after a reset for neurons whose zero state is not a fresh one."""
        for la in self.layers:
            la.v = la.o = None
        out = self._eager_step(0)
        self._fresh = False
        return out

    def _replay(self, key: tuple, t: int) -> torch.Tensor:
        if self.watch_weights:
            self._check_weights()
        cap = self._graphs.get(key)
        if cap is None:
            cap = None if key in self._uncapturable else self._capture(key, t)
            if cap is None:
                return self._eager_step(t)
        cap.graph.replay()
        self.stats.replays += 1
        for la, rec in zip(self.layers, cap.records, strict=True):
            la.record = rec
        return cap.output.clone() if self.clone_output else cap.output

    def _capture(self, key: tuple, t: int) -> _Captured | None:
        """Warm up (eagerly, on the capture stream, state restored afterwards), then capture
        on the same stream (its cuBLAS/cuDNN handles and workspaces are then ready)."""
        if len(self._graphs) >= self.max_graphs:
            self._graphs.pop(next(iter(self._graphs)))
        saved = [flat.clone() for flat in self._flats]
        steps, eager = self.model.steps_taken, self.stats.eager_steps
        if self._stream is None:
            self._stream = torch.cuda.Stream(self.device)
        side = self._stream
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(self.warmup_steps):
                self._eager_step(t)
        torch.cuda.current_stream(self.device).wait_stream(side)
        for flat, old in zip(self._flats, saved, strict=True):
            flat.copy_(old)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(
                graph, pool=self._pool, stream=side, capture_error_mode="thread_local"
            ):
                output = self._eager_step(t)
        except RuntimeError as exc:  # something in the step cannot be captured
            self._attach()
            self.model.steps_taken, self.stats.eager_steps = steps, eager
            self._uncapturable.add(key)
            warnings.warn(f"CUDA graph capture failed, stepping eagerly: {exc}", stacklevel=3)
            return None
        if self._pool is None:
            self._pool = graph.pool()
        self.model.steps_taken, self.stats.eager_steps = steps, eager
        cap = _Captured(graph, output, [la.record for la in self.layers], self._caches())
        self._graphs[key] = cap
        self.stats.captures += 1
        return cap

    # -- weights --------------------------------------------------------------------------

    def _weights_key(self) -> tuple:
        return tuple(
            (t.data_ptr(), t._version) for t in chain(self.model.parameters(), self.model.buffers())
        )

    def _check_weights(self) -> None:
        key = self._weights_key()
        if key != self._weights:
            self._weights = key
            self.invalidate()

    def _caches(self) -> list[torch.Tensor]:
        """Tensors that modules hold as plain attributes (folded-weight caches): a graph reads
        them by address, so they must outlive it even when the module replaces its cache."""
        out: list[torch.Tensor] = []
        for m in self.model.modules():
            for name, value in vars(m).items():
                if not name.startswith("_parameters") and not name.startswith("_buffers"):
                    out.extend(_tensors_in(value))
        return out


def graphed_step(model: SpikingModel, example_frame: torch.Tensor, **kwargs: Any) -> CudaGraphStep:
    """A :class:`CudaGraphStep` for frames like ``example_frame`` (``[B, C, H, W]``) on the
    model's device, with every graph the model needs captured up front (:meth:`prepare`)."""
    if example_frame.dim() != 4:
        raise ValueError(f"example_frame must be [B, C, H, W], got {list(example_frame.shape)}")
    runner = CudaGraphStep(model, example_frame.shape[0], tuple(example_frame.shape[1:]), **kwargs)
    runner.prepare()
    return runner
