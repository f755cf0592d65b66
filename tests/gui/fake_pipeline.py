"""A stand-in for :class:`dvsapp.pipeline.Pipeline` with the same methods: a worker thread
that makes plausible StepFrames (a rotating bar, random spikes, a prediction that firms up
and exits early) and hands them over through the real :class:`Mailbox`."""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from pathlib import Path

import numpy as np

from dvsapp.pipeline import Mailbox, ModelInfo, PipelineSettings, PipelineStats, StepFrame
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

    # -- contract --------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="fake-pipeline", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._state = "stopped"

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
            self.settings = settings
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

    def model_info(self) -> ModelInfo | None:
        return self._info

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
        )

    # -- worker ----------------------------------------------------------------------------
    def _publish_info(self) -> None:
        s = self.settings
        index = {}
        for name, shape in LAYERS.items():
            size = math.prod(shape)
            ch = s.raster_channel.get(name)
            if ch is not None and len(shape) == 3:
                hw = shape[1] * shape[2]
                index[name] = np.arange(ch * hw, (ch + 1) * hw)
            else:
                n = min(s.raster_neurons, size)
                index[name] = np.sort(np.random.default_rng(1).choice(size, n, replace=False))
        self._info = ModelInfo(
            name="fake.safetensors",
            arch="resnet_small",
            family="tdbn",
            class_names=list(CLASSES),
            layer_names=list(LAYERS),
            layer_shapes=dict(LAYERS),
            thresholds=dict.fromkeys(LAYERS, 0.2),
            window_steps=s.window_steps or 16,
            bin_us=s.bin_us or 10_000,
            input_size=(64, 64),
            sensor_size=(128, 128),
            device="cpu",
            trained=True,
            raster_index=index,
            vm_index={k: np.asarray(v, np.int64) for k, v in s.vm_neurons.items()},
        )
        self.mailbox.publish_info(self._info)

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

    def _frame(self, n: int) -> StepFrame:
        info = self._info
        assert info is not None
        rng = self._rng
        t_steps = info.window_steps
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
            name: (rng.random(len(idx)) < 0.05 + 0.1 * (i % 2)).astype(np.uint8)
            for i, (name, idx) in enumerate(info.raster_index.items())
        }
        vm = {
            name: (0.15 + 0.1 * np.sin(n / 5 + idx)).astype(np.float32)
            for name, idx in info.vm_index.items()
        }
        rates = np.array([0.08, 0.12, 0.2, 0.0, 0.95], np.float32)
        true = window % len(CLASSES)
        logits = rng.normal(0, 0.3, len(CLASSES))
        logits[true] += 0.4 * step
        probs = np.exp(logits) / np.exp(logits).sum()
        pred = int(np.argmax(probs))
        exited = step == 6
        result = None
        if step == t_steps:
            result = WindowResult(
                window=window,
                t_start_us=(n - step + 1) * 10_000,
                t_end_us=(n + 1) * 10_000,
                steps=t_steps,
                complete=True,
                pred=pred,
                label=CLASSES[pred],
                probs=probs.astype(np.float32),
                exit_step=6,
                exit_pred=pred,
                exit_label=CLASSES[pred],
                exit_reason="confidence",
            )
        return StepFrame(
            index=n,
            window=window,
            step=step,
            t_start_us=n * 10_000,
            t_end_us=(n + 1) * 10_000,
            events_on=on,
            events_off=off,
            raster=raster,
            vm=vm,
            rates=rates,
            probs=probs.astype(np.float32),
            pred=pred,
            exited=exited,
            window_result=result,
            health=HealthReport(silent=("layer3.0.lif1",), saturated=("lif_hidden",)),
            latency_ms=1.0,
            true_label=true,
            epoch=self._epoch,
        )
