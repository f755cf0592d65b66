"""A stand-in for :class:`dvsapp.pipeline.Pipeline` with the same methods: a worker thread
that makes plausible StepFrames (a rotating bar, random spikes, a prediction that firms up
and exits early) and hands them over through the real :class:`Mailbox`.

Compare mode (:meth:`FakePipeline.compare_model`) adds lane-1 frames from a "collapsed"
model (near-silent deep layers, an unsure prediction); a checkpoint whose name holds
``coarse`` bins twice as wide (a lane-1 step every second lane-0 step, and a compare note);
one that does not exist fails (``compare_error``). Every frame carries a plausible
:class:`StepAnalysis` and, for ``settings.channel_layer``, the layer's spike map. Exports
are recorded, not written: ``export_rows`` counts the steps since ``start_export``.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from pathlib import Path

import numpy as np

from dvsapp.pipeline import Mailbox, ModelInfo, PipelineSettings, PipelineStats, StepFrame
from dvsapp.snn.analysis.records import (
    NEAR_FRACTION,
    SATURATED_RATE,
    VM_BINS,
    ChannelStats,
    StepAnalysis,
    SynapticLayer,
    VmStats,
    vm_edges,
)
from dvsapp.snn.health import HealthReport
from dvsapp.snn.stepper import WindowResult

LAYERS = {
    "lif1": (16, 32, 32),
    "layer1.0.lif1": (16, 32, 32),
    "layer2.0.lif1": (32, 16, 16),
    "layer3.0.lif1": (64, 8, 8),
    "lif_hidden": (64,),
}
CLASSES = [f"class {i}" for i in range(11)]
#: The synaptic layers (conv / linear) in front of each spiking layer, and what a dense
#: evaluation of each costs per step.
SYNAPTIC = {
    "conv1": 2 * 16 * 9 * 32 * 32,
    "layer1.0.conv1": 16 * 16 * 9 * 32 * 32,
    "layer2.0.conv1": 16 * 32 * 9 * 16 * 16,
    "layer3.0.conv1": 32 * 64 * 9 * 8 * 8,
    "fc": 64 * 8 * 8 * 64,
}
#: Each lane's layer rates, in LAYERS order: lane 0 as before (layer3 silent, the hidden
#: layer saturated), lane 1 a collapsed model whose deep layers are (nearly) silent.
RATES = {
    0: np.array([0.08, 0.12, 0.2, 0.0, 0.95], np.float32),
    1: np.array([0.03, 0.004, 0.0005, 0.0, 0.0], np.float32),
}
#: Each lane's spike probability per raster row, per layer.
RASTER_P = {
    0: [0.05 + 0.1 * (i % 2) for i in range(len(LAYERS))],
    1: [0.03, 0.004, 0.0005, 0.0, 0.0],
}
#: Where each lane's membrane potentials sit, in units of the threshold: (mean, std).
VM_SHAPE = {0: (0.3, 0.8), 1: (-1.2, 0.5)}


def _normal_cdf(x: np.ndarray) -> np.ndarray:
    return np.array([0.5 * (1.0 + math.erf(float(v) / math.sqrt(2.0))) for v in x])


class FakePipeline:
    """Same methods as the real pipeline; ``error_after`` steps puts it in the error state."""

    def __init__(
        self,
        settings: PipelineSettings,
        mailbox: Mailbox | None = None,
        step_hz: float = 200.0,
        error_after: int | None = None,
    ) -> None:
        self.settings = settings
        self.mailbox = mailbox or Mailbox()
        self.step_hz = step_hz
        self.error_after = error_after
        self.calls: list[tuple[str, object]] = []
        self.worker_exceptions: list[BaseException] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._playing = threading.Event()
        self._playing.set()
        self._step_once = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = "idle"
        self._message = ""
        self._steps = 0
        self._epoch = 0
        self._info: ModelInfo | None = None
        self._rng = np.random.default_rng(0)
        #: lane 1: the compared model's info (None: compare mode off), its bin factor
        self._compare: ModelInfo | None = None
        self._compare_factor = 1
        self._compare_steps = 0
        self.compare_error = ""
        self.compare_note = ""
        self.export_path: Path | None = None
        self.export_rows = 0
        self.export_error = ""
        self._exporting = False
        #: lane -> the last rates / probs sent (what the panels should show)
        self.sent_rates: dict[int, np.ndarray] = {}
        self.sent_frames: dict[int, int] = {0: 0, 1: 0}
        self._lane_rng = {0: np.random.default_rng(10), 1: np.random.default_rng(11)}
        self._vm_p: dict[tuple[int, str], np.ndarray] = {}
        self._window_spikes: dict[tuple[int, str], np.ndarray] = {}

    # -- contract --------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fake-pipeline", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._state = "stopped"
        self._exporting = False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def thread(self) -> threading.Thread | None:
        return self._thread

    def play(self) -> None:
        self.calls.append(("play", None))
        self._playing.set()

    def pause(self) -> None:
        self.calls.append(("pause", None))
        self._playing.clear()

    def step_once(self) -> None:
        self.calls.append(("step_once", None))
        self._step_once.set()

    def seek(self, t_us: int) -> None:
        self.calls.append(("seek", t_us))
        self._epoch += 1

    def configure(self, settings: PipelineSettings) -> None:
        self.calls.append(("configure", settings))
        with self._lock:
            old = self.settings.compare_checkpoint
            old_taps = (self.settings.compare_raster_channel, self.settings.compare_vm_neurons)
            self.settings = settings
        taps = (settings.compare_raster_channel, settings.compare_vm_neurons)
        if settings.compare_checkpoint != old:
            self._apply_compare(settings.compare_checkpoint)
        elif taps != old_taps and self._compare is not None:
            c = self._compare  # as the worker re-taps both lanes
            self._compare = self._make_info(1, c.name, c.path, self._compare_factor)
            self.mailbox.publish_info(self._compare, 1)
        if self._info is not None:
            self._publish_info()

    def open_recording(self, path: object) -> None:
        self.calls.append(("open_recording", path))
        self.settings = dataclasses.replace(self.settings, recording=Path(str(path)))
        self._epoch += 1

    def open_source(self, source: object) -> None:
        self.calls.append(("open_source", source))
        self.settings = dataclasses.replace(self.settings, recording=None)
        self._epoch += 1

    def load_model(self, checkpoint: object, import_options: object = None) -> None:
        self.calls.append(("load_model", checkpoint))
        self._publish_info()

    def set_threshold_scale(self, layer: str, scale: float) -> None:
        self.calls.append(("set_threshold_scale", (layer, scale)))
        with self._lock:
            scales = dict(self.settings.threshold_scale)
            scales[layer] = scale
            self.settings = dataclasses.replace(self.settings, threshold_scale=scales)

    def compare_model(self, checkpoint: object, import_options: object = None) -> None:
        """Compare with ``checkpoint`` (lane 1); None ends compare mode."""
        path = None if checkpoint is None else Path(str(checkpoint))
        self.calls.append(("compare_model", path))
        with self._lock:
            self.settings = dataclasses.replace(
                self.settings, compare_checkpoint=path, compare_import_options=import_options
            )
        self._apply_compare(path)

    def start_export(self, path: object) -> None:
        """Count rows from now on; a path whose folder does not exist fails at once."""
        p = Path(str(path))
        self.calls.append(("start_export", p))
        self.export_rows = 0
        if not p.parent.is_dir():
            self._exporting = False
            self.export_path = None
            self.export_error = f"cannot write {p.name}: {p.parent} does not exist"
            return
        self.export_error = ""
        self.export_path = p
        self._exporting = True

    def stop_export(self) -> None:
        self.calls.append(("stop_export", None))
        self._exporting = False

    @property
    def exporting(self) -> bool:
        return self._exporting

    def model_info(self, lane: int = 0) -> ModelInfo | None:
        return self._info if lane == 0 else self._compare if lane == 1 else None

    def stats(self) -> PipelineStats:
        return PipelineStats(
            state=self._state,
            message=self._message,
            events_per_s=123_456.0,
            step_latency_ms=1.25,
            realtime_factor=1.0,
            steps=self._steps,
            dropped_steps=self.mailbox.dropped,
            stream_time_us=self._steps * 10_000 % 8_000_000,
            duration_us=8_000_000,
            t_first_us=0,
            epoch=self._epoch,
            compare_error=self.compare_error,
            compare_note=self.compare_note,
            export_path=self.export_path,
            export_rows=self.export_rows,
            export_error=self.export_error,
        )

    # -- worker ----------------------------------------------------------------------------
    def _raster_index(self, lane: int = 0) -> dict[str, np.ndarray]:
        s = self.settings
        chosen = s.raster_channel if lane == 0 else s.compare_raster_channel
        index = {}
        for name, shape in LAYERS.items():
            size = math.prod(shape)
            ch = chosen.get(name)
            if ch is not None and len(shape) == 3:
                hw = shape[1] * shape[2]
                index[name] = np.arange(ch * hw, (ch + 1) * hw)
            else:
                n = min(s.raster_neurons, size)
                index[name] = np.sort(np.random.default_rng(1).choice(size, n, replace=False))
        return index

    def _make_info(self, lane: int, name: str, path: Path | None, factor: int) -> ModelInfo:
        s = self.settings
        bin_us = (s.bin_us or 10_000) * factor
        return ModelInfo(
            name=name,
            arch="resnet_small",
            family="tdbn",
            class_names=list(CLASSES),
            layer_names=list(LAYERS),
            layer_shapes=dict(LAYERS),
            thresholds=dict.fromkeys(LAYERS, 0.2),
            window_steps=s.window_steps or 16,
            bin_us=bin_us,
            input_size=(64, 64),
            sensor_size=(128, 128),
            device="cpu",
            trained=True,
            raster_index=self._raster_index(lane),
            vm_index={
                k: np.asarray(v, np.int64)
                for k, v in (s.vm_neurons if lane == 0 else s.compare_vm_neurons).items()
            },
            path=path,
            trained_bin_us=bin_us,
            trained_window_steps=16,
            lane=lane,
            synaptic_layers=list(SYNAPTIC),
        )

    def _publish_info(self) -> None:
        self._info = self._make_info(0, "fake.safetensors", None, 1)
        self.mailbox.publish_info(self._info)

    def _apply_compare(self, path: Path | None) -> None:
        """Start, switch or end compare mode as the worker would."""
        if path is None:
            self._compare = None
            self.compare_error = self.compare_note = ""
            self.mailbox.publish_info(None, 1)
            return
        if not path.exists():  # as the worker does: the main model runs on alone
            self.compare_error = f"{path.name}: no such file"
            self._compare = None
            self.mailbox.publish_info(None, 1)
            return
        factor = 2 if "coarse" in path.name else 1
        self._compare_factor = factor
        self._compare_steps = 0
        self.compare_error = ""
        self.compare_note = (
            f"{path.name} bins {10 * factor} ms, the main model 10 ms" if factor != 1 else ""
        )
        self._compare = self._make_info(1, path.name, path, factor)
        self.mailbox.publish_info(self._compare, 1)

    def _run(self) -> None:
        try:
            time.sleep(0.05)  # "loading"
            self._publish_info()
            self._state = "running"
            period = 1.0 / self.step_hz
            next_t = time.perf_counter()
            while not self._stop.is_set():
                if not self._playing.is_set() and not self._step_once.is_set():
                    self._state = "paused"
                    time.sleep(0.005)
                    continue
                self._step_once.clear()
                if self.error_after is not None and self._steps >= self.error_after:
                    self._state = "error"
                    self._message = "fake.aedat4: truncated packet at byte 4096"
                    time.sleep(0.01)
                    continue
                self._state = "running" if self._playing.is_set() else "paused"
                self.mailbox.put(self._frame(self._steps))
                self._sent(0)
                other = self._compare
                if other is not None and self._steps % self._compare_factor == 0:
                    self.mailbox.put(self._frame(self._compare_steps, other))
                    self._compare_steps += 1
                    self._sent(1)
                self._steps += 1
                next_t += period
                delay = next_t - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                else:
                    next_t = time.perf_counter()
        except BaseException as e:
            self.worker_exceptions.append(e)
            raise

    def _sent(self, lane: int) -> None:
        self.sent_frames[lane] += 1
        if self._exporting:
            self.export_rows += 1

    def _frame(self, n: int, info: ModelInfo | None = None) -> StepFrame:
        info = info or self._info
        assert info is not None
        lane = info.lane
        rng = self._rng if lane == 0 else self._lane_rng[1]
        t_steps = info.window_steps
        bin_us = info.bin_us
        window, step = divmod(n, t_steps)
        step += 1
        h = w = 128
        on = np.zeros((h, w), np.uint16)
        off = np.zeros((h, w), np.uint16)
        angle = n * 0.05
        r = np.linspace(-50, 50, 400)
        xs = (64 + r * math.cos(angle)).astype(int).clip(0, w - 1)
        ys = (64 + r * math.sin(angle)).astype(int).clip(0, h - 1)
        np.add.at(on, (ys, xs), 1)
        np.add.at(off, (ys[::3].clip(0, h - 2) + 1, xs[::3]), 1)
        raster = {
            name: (rng.random(len(idx)) < RASTER_P[lane][i]).astype(np.uint8)
            for i, (name, idx) in enumerate(info.raster_index.items())
        }
        vm = {
            name: (0.15 + 0.1 * np.sin(n / 5 + idx)).astype(np.float32)
            for name, idx in info.vm_index.items()
        }
        rates = RATES[lane].copy()
        self.sent_rates[lane] = rates
        true = window % len(CLASSES)
        logits = rng.normal(0, 0.3, len(CLASSES))
        if lane == 0:
            logits[true] += 0.4 * step
        else:  # the collapsed model: unsure, and mostly wrong
            logits[(true + 3) % len(CLASSES)] += 0.08 * step
        probs = np.exp(logits) / np.exp(logits).sum()
        pred = int(np.argmax(probs))
        exit_step = 6 if lane == 0 else None
        exited = step == exit_step
        result = None
        if step == t_steps:
            result = WindowResult(
                window=window,
                t_start_us=(n - step + 1) * bin_us,
                t_end_us=(n + 1) * bin_us,
                steps=t_steps,
                complete=True,
                pred=pred,
                label=CLASSES[pred],
                probs=probs.astype(np.float32),
                exit_step=exit_step,
                exit_pred=pred if exit_step else None,
                exit_label=CLASSES[pred] if exit_step else None,
                exit_reason="confidence" if exit_step else None,
            )
        analysis, spike_map = None, None
        if self.settings.analysis:
            s = self.settings
            layer = s.channel_layer if lane == 0 else s.compare_channel_layer
            analysis, spike_map = self._analysis(info, rates, step, layer)
        silent = tuple(nm for nm, r_ in zip(LAYERS, rates, strict=True) if r_ == 0)
        saturated = tuple(nm for nm, r_ in zip(LAYERS, rates, strict=True) if r_ >= 0.9)
        return StepFrame(
            index=n,
            window=window,
            step=step,
            t_start_us=n * bin_us,
            t_end_us=(n + 1) * bin_us,
            events_on=on,
            events_off=off,
            raster=raster,
            vm=vm,
            rates=rates,
            probs=probs.astype(np.float32),
            pred=pred,
            exited=exited,
            window_result=result,
            health=HealthReport(silent=silent, saturated=saturated),
            latency_ms=1.0,
            true_label=true,
            epoch=self._epoch,
            lane=lane,
            analysis=analysis,
            spike_map=spike_map,
        )

    # -- in-depth probes -------------------------------------------------------------------
    def _vm_probs(self, lane: int, name: str, threshold: float) -> np.ndarray:
        """Bin probabilities (under, VM_BINS bins, over) of a normal Vm, per lane."""
        key = (lane, name)
        if key not in self._vm_p:
            mu, sd = VM_SHAPE[lane]
            z = (vm_edges(threshold) / abs(threshold) - mu) / sd
            cdf = _normal_cdf(z)
            p = np.concatenate([[cdf[0]], np.diff(cdf), [1.0 - cdf[-1]]])
            self._vm_p[key] = np.clip(p, 0, None) / np.clip(p, 0, None).sum()
        return self._vm_p[key]

    def _channel_base(self, lane: int, name: str, rate: float, channels: int) -> np.ndarray:
        """Each channel's spike probability: every fifth channel silent (lane 1: every
        channel but a few of the first layer's)."""
        c = np.arange(channels)
        base = rate * (0.5 + (c * 37 % 11) / 10.0)
        base[c % 5 == 0] = 0.0
        if lane == 1 and name != "lif1":
            base[:] = 0.0
        return np.clip(base, 0.0, 1.0)

    def _analysis(
        self, info: ModelInfo, rates: np.ndarray, step: int, channel_layer: str | None
    ) -> tuple[StepAnalysis, np.ndarray | None]:
        lane = info.lane
        rng = self._lane_rng[lane]
        out = StepAnalysis()
        spike_map = None
        zeros, total = 0.0, 0
        scales = self.settings.threshold_scale
        for i, name in enumerate(info.layer_names):
            shape = info.layer_shapes[name]
            n = math.prod(shape)
            base_thr = info.thresholds[name]
            thr = base_thr * scales.get(name, 1.0)
            p = self._vm_probs(lane, name, base_thr)
            counts = rng.multinomial(n, p).astype(np.int64)
            edges = vm_edges(base_thr)
            centres = np.concatenate([[edges[0]], (edges[:-1] + edges[1:]) / 2, [edges[-1]]])
            near = np.abs(centres - thr) <= NEAR_FRACTION * abs(thr)
            mean = float((counts * centres).sum() / n)
            std = float(np.sqrt((counts * (centres - mean) ** 2).sum() / n))
            filled = np.flatnonzero(counts)
            out.vm[name] = VmStats(
                counts=counts,
                neurons=n,
                threshold_now=float(thr),
                near=float(counts[near].sum() / n),
                mean=mean,
                std=std,
                min=float(centres[filled[0]]),
                max=float(centres[filled[-1]]),
            )
            rate = float(rates[i])
            zeros += n * (1.0 - rate)
            total += n
            if len(shape) != 3:
                if name == channel_layer:
                    spike_map = (rng.random(shape) < rate).astype(np.uint8)
                continue
            c, hw = shape[0], shape[1] * shape[2]
            base = self._channel_base(lane, name, rate, c)
            if name == channel_layer:
                spike_map = (rng.random(shape) < base[:, None, None]).astype(np.uint8)
                fired = spike_map.reshape(c, hw).sum(axis=1)
            else:
                fired = rng.binomial(hw, base)
            key = (lane, name)
            acc = self._window_spikes.get(key)
            if acc is None or step == 1 or acc.shape != (c,):
                acc = np.zeros(c, np.int64)
            acc = acc + fired
            self._window_spikes[key] = acc
            window_rates = (acc / (hw * step)).astype(np.float32)
            out.channels[name] = ChannelStats(
                rates=(fired / hw).astype(np.float32),
                window_rates=window_rates,
                silent=int((acc == 0).sum()),
                saturated=int((window_rates >= SATURATED_RATE).sum()),
            )
        inputs = [0.05, *rates[:-1].tolist()]  # what reaches each synaptic layer
        for (name, dense), density in zip(SYNAPTIC.items(), inputs, strict=True):
            kind = "MAC" if name == "conv1" else "AC"
            out.synops[name] = SynapticLayer(ops=float(dense * density), kind=kind, dense=dense)
        out.sparsity = zeros / total if total else float("nan")
        assert len(out.vm[info.layer_names[0]].counts) == VM_BINS + 2
        return out, spike_map
