"""The stepper: feeds frames one at a time into a spiking model and reports every step.

Window policies (``window_steps = T``, by default the model's trained ``time_steps``):

* ``"reset"``: the model is reset at the start of every window of T steps, so each window is
  a fresh T-step inference, exactly ``model.forward`` over its frames. BNTT needs this (its
  batch norm is chosen by the step index) and T may not exceed the trained T.
* ``"free"`` (tdBN only): the neuron state runs on across windows; only the reporting
  (accumulated prediction, early exit) restarts every T steps.

Everything in a :class:`StepRecord` is numpy / Python on the host. The stream is batch 1:
a frame is ``[C, H, W]`` or ``[1, C, H, W]``, numpy or torch (already on the device or not).
With no probes, no rates and no health the stepper's per-step work around ``model.step``
(about 20 us on a CPU) does not grow with the number of layers; the model's own
``reset()``, once per window under ``"reset"``, does.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from dvsapp.binning import Frames
from dvsapp.errors import ConfigError
from dvsapp.snn.base import ProbeSpec, SpikingModel, SpikingNeuron
from dvsapp.snn.early_exit import ExitPolicy, ExitTracker
from dvsapp.snn.health import FiringRateHealth, HealthReport

Policy = Literal["reset", "free"]
POLICIES: tuple[str, ...] = ("reset", "free")


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else the CPU; refuses CUDA on a CPU-only torch."""
    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":
        dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError):
            raise ConfigError(f"unknown device {device!r} (use auto, cpu or cuda)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda requested but CUDA is not available to this torch")
    return dev


@dataclass
class LayerProbe:
    """One probed layer's record of one step (batch dimension dropped)."""

    spikes: np.ndarray | None  # uint8, the layer's map shape
    vm: np.ndarray | None  # float32, the map shape or [n_selected]
    rate: float | None  # fraction of the layer's neurons that fired


@dataclass
class WindowResult:
    """The outcome of one window (see :mod:`dvsapp.snn.early_exit` for the exit fields)."""

    window: int
    t_start_us: int
    t_end_us: int
    steps: int
    complete: bool  # False for a last window cut short by the end of the stream
    pred: int
    label: str
    probs: np.ndarray  # float32 [K]: by the model's readout (Stepper._probs)
    exit_step: int
    exit_pred: int
    exit_label: str
    exit_reason: str | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        out = dataclasses.asdict(self)
        out["probs"] = [round(float(p), 6) for p in self.probs]
        return out


@dataclass(slots=True)
class StepRecord:
    """What one step did, all on the host."""

    index: int  # steps since the stepper started or was reset (0-based)
    window: int  # reporting window (0-based)
    step: int  # steps run in this window, this one included (1-based)
    t_start_us: int
    t_end_us: int
    output: np.ndarray  # float32 [K]: this step's logits
    probs: np.ndarray  # float32 [K]: the window's so far, by the model's readout
    pred: int
    latency_ms: float  # frame transfer + model.step (+ CUDA synchronisation)
    exited: bool = False  # the window's early exit fired at this step
    layer_names: tuple[str, ...] = ()  # order of ``rates`` (empty when rates are off)
    rates: np.ndarray | None = None  # float32 [L]: every layer's firing rate
    probes: dict[str, LayerProbe] = field(default_factory=dict)
    health: HealthReport | None = None
    window_result: WindowResult | None = None  # set on the step that ends a window
    #: The in-depth probes' figures (:attr:`Stepper.analyzer`'s ``collect``), when they run.
    analysis: Any = None

    def rate_dict(self) -> dict[str, float]:
        """Layer name -> firing rate (empty when rates are off)."""
        if self.rates is None:
            return {}
        return dict(zip(self.layer_names, self.rates.tolist(), strict=True))


class Stepper:
    """Runs a :class:`SpikingModel` frame by frame under a window policy (module docstring).

    Args:
        model: the network; moved to ``device`` and put in eval mode. Its probes are set
            by the stepper (:meth:`close` removes them).
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"`` or a torch device.
        window_steps: steps per window (default: the model's ``time_steps``).
        policy: ``"reset"`` or ``"free"``.
        exits: early-exit policies; the first to fire decides the window's exit.
        probes: what the probed layers record (spikes / Vm / rate), or None.
        probe_layers: the layers to probe (all when None and ``probes`` is set).
        health: a firing-rate watchdog, fed every layer's rate each step.
        rates: collect every layer's firing rate each step (implied by ``health``).
        class_names: names for the class indices (default "0", "1", ...).
    """

    def __init__(
        self,
        model: SpikingModel,
        device: str | torch.device = "auto",
        window_steps: int | None = None,
        policy: Policy = "reset",
        exits: Sequence[ExitPolicy] = (),
        probes: ProbeSpec | None = None,
        probe_layers: Sequence[str] | None = None,
        health: FiringRateHealth | None = None,
        rates: bool = True,
        class_names: Sequence[str] | None = None,
        cuda_graph: bool | None = None,
    ) -> None:
        cfg = model.config
        self.window_steps = cfg.time_steps if window_steps is None else window_steps
        self.policy = policy
        self._check_policy(model)
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        self._cuda = self.device.type == "cuda"
        self.frame_shape = (cfg.in_channels, cfg.input_size[1], cfg.input_size[0])
        names = [str(i) for i in range(cfg.num_classes)] if class_names is None else class_names
        if len(names) != cfg.num_classes:
            raise ConfigError(f"{len(names)} class names for a {cfg.num_classes}-class model")
        self.class_names = list(names)
        self._tracker = ExitTracker(exits)
        self._spike_readout = getattr(model, "readout", "mean_softmax") == "spike_count"
        self.health = health
        #: The in-depth probes (:class:`dvsapp.snn.analysis.Analyzer`), collected right after
        #: each step into ``StepRecord.analysis``; None: none.
        self.analyzer: Any = None
        #: Take the layers' rates from the probes' ``layer_rates`` (their install left the
        #: layers' own rate reductions out: ``Analyzer.install(rates=True)``).
        self.rates_from_analysis = False
        self._setup_probes(probes, probe_layers, rates or health is not None)
        self._step_fn = self._make_step_fn(cuda_graph)
        self.reset()

    def _make_step_fn(self, cuda_graph: bool | None) -> Callable[[torch.Tensor], torch.Tensor]:
        """``model.step``, or on CUDA (``cuda_graph`` None or True) the step replayed from CUDA
        graphs. ``cuda_graph=True`` on the CPU runs the same static-state logic without a graph
        (so it is tested where there is no GPU); False always steps eagerly."""
        use = self._cuda if cuda_graph is None else cuda_graph
        if not use:
            return self.model.step
        from dvsapp.snn.cuda_graph import CudaGraphStep

        try:
            self._graph = CudaGraphStep(
                self.model, 1, self.frame_shape, self.device, use_graph=self._cuda
            )
        except ValueError:  # a model whose state a graph cannot carry: step eagerly
            return self.model.step
        return self._graph.step

    def _check_policy(self, model: SpikingModel) -> None:
        t = self.window_steps
        if isinstance(t, bool) or not isinstance(t, int) or t < 1:
            raise ConfigError(f"window_steps must be an integer >= 1, got {t!r}")
        if self.policy not in POLICIES:
            raise ConfigError(f"window policy must be one of {POLICIES}, got {self.policy!r}")
        if model.family == "bntt" and self.policy == "free":
            raise ConfigError(
                "window policy 'free' keeps the state running, but a BNTT model's batch norm "
                "is tied to the step index: use policy 'reset'"
            )
        if model.family == "bntt" and t > model.config.time_steps:
            raise ConfigError(
                f"a BNTT model trained for {model.config.time_steps} steps has no statistics "
                f"for a {t}-step window"
            )

    def _setup_probes(
        self, probes: ProbeSpec | None, probe_layers: Sequence[str] | None, rates: bool
    ) -> None:
        layers: dict[str, SpikingNeuron] = self.model.spiking_layers()
        if probe_layers is not None:
            unknown = [n for n in probe_layers if n not in layers]
            if unknown:
                raise ConfigError(f"no spiking layer named {unknown[0]!r} (have {list(layers)})")
        self.model.set_probes(None)
        probed = set() if probes is None else set(layers if probe_layers is None else probe_layers)
        spec = dataclasses.replace(probes, rate=True) if probes is not None and rates else probes
        rate_only = ProbeSpec(spikes=False, vm=False, rate=True)
        for name, layer in layers.items():
            layer.probe = spec if name in probed else rate_only if rates else None
        self._own_probes = {name: layer.probe for name, layer in layers.items()}
        self._probed = [(n, layer, i) for i, (n, layer) in enumerate(layers.items()) if n in probed]
        self._rate_layers = list(layers.values()) if rates else []
        self.layer_names: tuple[str, ...] = tuple(layers) if rates else ()
        self._nan = torch.full((1,), float("nan"), device=self.device)
        if self.health is not None:
            self.health.bind(self.layer_names)

    def restore_probes(self) -> None:
        """Set every layer's probe back to the stepper's own (after a tap replaced them)."""
        layers = self.model.spiking_layers()
        for name, spec in self._own_probes.items():
            layers[name].probe = spec
            layers[name].record = None

    def close(self) -> None:
        """Remove the probes the stepper set on the model."""
        self.model.set_probes(None)

    # -- state -------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything: model state, window count, health runs."""
        self.model.reset()
        self.steps = 0
        self.window = 0
        self._step = 0
        self._acc = np.zeros(self.model.config.num_classes, np.float64)
        self._win_start = 0
        self._tracker.reset()
        if self.health is not None:
            self.health.reset()

    @property
    def step_in_window(self) -> int:
        """Steps run in the open window (0 right after a window ends)."""
        return self._step

    # -- stepping ----------------------------------------------------------------------
    def _as_input(self, frame: np.ndarray | torch.Tensor) -> torch.Tensor:
        if isinstance(frame, torch.Tensor):
            x = frame
        else:
            x = torch.from_numpy(np.ascontiguousarray(frame))
        if x.ndim == 3:
            x = x.unsqueeze(0)
        if x.ndim != 4 or x.shape[0] != 1 or tuple(x.shape[1:]) != self.frame_shape:
            raise ConfigError(
                f"frame of shape {list(frame.shape)} for a model taking {list(self.frame_shape)}"
            )
        return x

    def push(self, frame: np.ndarray | torch.Tensor, t_start_us: int, t_end_us: int) -> StepRecord:
        """Run one step on ``frame`` (covering ``[t_start_us, t_end_us)``) and report it."""
        x = self._as_input(frame)
        if self._step == 0:
            if self.policy == "reset":
                self.model.reset()
            self._acc[:] = 0.0
            self._tracker.reset()
            self._win_start = int(t_start_us)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = self._step_fn(x.to(self.device, torch.float32, non_blocking=True))
            if self._cuda:
                torch.cuda.synchronize(self.device)
        latency_ms = (time.perf_counter() - t0) * 1e3
        output = out.detach().float().cpu().numpy().reshape(-1)
        self._step += 1
        self._acc += output
        probs = self._probs()
        pred = int(probs.argmax())
        rec = StepRecord(
            index=self.steps,
            window=self.window,
            step=self._step,
            t_start_us=int(t_start_us),
            t_end_us=int(t_end_us),
            output=output,
            probs=probs,
            pred=pred,
            latency_ms=latency_ms,
            exited=self._tracker.update(self._step, probs),
        )
        if self.analyzer is not None:
            rec.analysis = self.analyzer.collect(self._step)
        if self._rate_layers or self._probed:
            self._collect(rec)
        self.steps += 1
        if self._step == self.window_steps:
            rec.window_result = self._close_window(rec.t_end_us, probs, complete=True)
        self._last = rec
        return rec

    def _probs(self) -> np.ndarray:
        """The window's class probabilities so far, by the model's readout rule: the softmax
        of the mean output, or (``readout == "spike_count"``) ``(n_k + 1/K) / (N + 1)`` for
        ``n_k`` of the ``N`` output spikes on class k of K: the posterior mean of the class
        shares under a prior worth one spike spread evenly over the classes. Uniform before
        the first spike, it tends to the share of the spikes as they accumulate, so one
        spike alone is no confident answer (p = 0.55 with 10 classes; 0.9 needs >= 9 spikes
        of one class); the class is always the one with most spikes."""
        if self._spike_readout:
            counts = np.maximum(self._acc, 0.0)
            return ((counts + 1.0 / counts.size) / (counts.sum() + 1.0)).astype(np.float32)
        z = self._acc / self._step  # softmax of the running mean, in float64
        e = np.exp(z - z.max())
        return (e / e.sum()).astype(np.float32)

    def push_frames(self, frames: Frames) -> list[StepRecord]:
        """:meth:`push` every frame of a binner's output, in order."""
        return [
            self.push(frames.data[i], int(frames.t_start_us[i]), int(frames.t_end_us[i]))
            for i in range(len(frames))
        ]

    def finish(self) -> WindowResult | None:
        """Close a window cut short by the end of the stream (None when none is open)."""
        if self._step == 0:
            return None
        last = self._last
        return self._close_window(last.t_end_us, last.probs, complete=False)

    def _close_window(self, t_end_us: int, probs: np.ndarray, complete: bool) -> WindowResult:
        pred = int(np.argmax(probs))
        ex = self._tracker.result(self._step, pred)
        result = WindowResult(
            window=self.window,
            t_start_us=self._win_start,
            t_end_us=int(t_end_us),
            steps=self._step,
            complete=complete,
            pred=pred,
            label=self.class_names[pred],
            probs=probs.copy(),
            exit_step=ex.exit_step,
            exit_pred=ex.exit_pred,
            exit_label=self.class_names[ex.exit_pred],
            exit_reason=ex.reason,
        )
        self._step = 0
        self.window += 1
        return result

    def _collect(self, rec: StepRecord) -> None:
        """Every layer's rate (one device -> host copy) and the probed layers' maps."""
        rates = None
        shared = rec.analysis.layer_rates if self.rates_from_analysis and rec.analysis else None
        if shared is not None and len(shared) == len(self._rate_layers):
            rates = shared
            rec.layer_names, rec.rates = self.layer_names, rates
        elif self._rate_layers:
            parts = [
                lay.record.rate[:1]
                if lay.record is not None and lay.record.rate is not None
                else self._nan
                for lay in self._rate_layers
            ]
            rates = torch.cat(parts).float().cpu().numpy()
            rec.layer_names, rec.rates = self.layer_names, rates
        for name, layer, i in self._probed:
            r = layer.record
            spikes = vm = rate = None
            if r is not None:
                if r.spikes is not None:
                    spikes = r.spikes[0].to(torch.uint8).cpu().numpy()
                if r.vm is not None:
                    vm = r.vm[0].float().cpu().numpy()
                if rates is not None:
                    rate = float(rates[i])
                elif r.rate is not None:
                    rate = float(r.rate[0])
                elif shared is not None:
                    rate = float(shared[i])
            rec.probes[name] = LayerProbe(spikes, vm, rate)
        if self.health is not None and rates is not None:
            rec.health = self.health.update(rates)
