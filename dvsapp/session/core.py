"""The session: one event source, one or more models (lanes) stepped on the same events.

Each lane bins the stream with its own checkpoint's binning (bin width, input size,
denoising), so two models with different inputs or class sets run side by side; a lane
queues the frames its binner closed and steps them one at a time. :meth:`Session.step` steps
the lane whose next frame starts first (ties: lane order), so the lanes advance through the
stream together and every lane's steps are exactly those of running its model alone.

The session is synchronous and owns no thread: ``dvsapp run`` and ``dvsapp play`` drive it
to the end of a recording (:meth:`Session.drive`); the app's worker thread reads the source
at its own pace and calls :meth:`Session.push` / :meth:`Session.step` between commands.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dvsapp.binning import Frames
from dvsapp.errors import DvsappError
from dvsapp.events.sources import EventSource, SourceState
from dvsapp.events.types import SensorSize
from dvsapp.session.loading import Chain, LaneSettings, LoadedModel, build_chain
from dvsapp.session.probes import ProbeTap
from dvsapp.snn.analysis.records import StepAnalysis
from dvsapp.snn.stepper import StepRecord, WindowResult

IDLE_SLEEP_S = 0.002


@dataclass
class LaneStep:
    """One model step of one lane (all numpy: safe to hand across threads)."""

    lane: int
    #: The stepper's record; None for a window the stream's end closed between two steps
    #: (``window_result`` then holds it).
    record: StepRecord | None
    t_start_us: int
    t_end_us: int
    #: int16 [2, H, W] OFF/ON counts of this bin at the sensor's resolution (lanes with an
    #: event view), else None.
    events: np.ndarray | None = None
    raster: dict[str, np.ndarray] = field(default_factory=dict)  # ProbeTap.collect
    vm: dict[str, np.ndarray] = field(default_factory=dict)
    analysis: StepAnalysis | None = None
    spike_map: np.ndarray | None = None  # LaneSettings.channel_layer's whole map, uint8
    #: Set on the step that ends a window, including the stream's last (short) window.
    window_result: WindowResult | None = None
    wall_ms: float = 0.0  # the lane's whole step: model, taps and probes


@dataclass
class _Chunk:
    """Frames one push closed (with their sensor-resolution twins), stepped one at a time."""

    frames: Frames
    events: Frames | None
    next: int = 0


class Lane:
    """One model on the session's stream: its binners, its stepper and its taps."""

    def __init__(
        self,
        index: int,
        model: LoadedModel,
        settings: LaneSettings,
        sensor: SensorSize,
        path: Path | None = None,
    ) -> None:
        self.index = index
        self.model = model
        self.name = model.name
        self.settings = settings
        self.chain: Chain = build_chain(model, settings, sensor, path)
        self.tap: ProbeTap | None = None
        self.analyzer: object | None = None
        self._queue: deque[_Chunk] = deque()
        self.flushed = False  # the stream ended: the binner's tail is queued
        self._finished = False  # the stream's last window was closed
        self.retap(settings)

    # -- taps --------------------------------------------------------------------------
    def retap(self, settings: LaneSettings) -> None:
        """(Re)install the raster/Vm tap and the in-depth probes the settings ask for; the
        model's state and the queued frames are kept."""
        self.settings = settings
        self._remove_taps()
        model, dev = self.model, self.model.device
        if settings.tapped:
            self.tap = ProbeTap(
                model.ckpt.model,
                model.shapes,
                settings.raster_neurons,
                settings.raster_channel,
                settings.vm_neurons,
                dev,
            )
            self.tap.install()
        layers = model.ckpt.model.spiking_layers()
        self._map_layer = layers.get(settings.channel_layer or "")
        if self._map_layer is not None:
            from dataclasses import replace

            from dvsapp.snn.base import ProbeSpec

            spec = self._map_layer.probe or ProbeSpec(spikes=True, vm=False, rate=True)
            self._map_layer.probe = replace(spec, spikes=True)
        if settings.analysis:
            from dvsapp.snn.analysis.analyzer import Analyzer

            analyzer = Analyzer(model.ckpt.model, model.shapes, dev)
            # on a CPU the probes' channel counts give the layers' rates (the same float32
            # figures), and the layers skip their own rate reductions (~0.1 ms a step)
            shared = str(dev).split(":")[0] == "cpu"
            analyzer.install(rates=shared)
            stepper = self.chain.stepper
            stepper.analyzer, stepper.rates_from_analysis = analyzer, shared
            self.analyzer = analyzer

    def _remove_taps(self) -> None:
        stepper = self.chain.stepper
        stepper.analyzer, stepper.rates_from_analysis = None, False
        if self.analyzer is not None:
            self.analyzer.remove()  # type: ignore[attr-defined]
            self.analyzer = None
        self.tap = None
        self._map_layer = None
        self.chain.stepper.restore_probes()

    @property
    def synaptic_layers(self) -> list[str]:
        """The synaptic layers the in-depth probes count (empty when they are off)."""
        return list(getattr(self.analyzer, "synaptic_layers", []))

    # -- the stream --------------------------------------------------------------------
    def push(self, events: np.ndarray) -> None:
        chain = self.chain
        view = None if chain.events is None else chain.events.push(events)
        self._queue_frames(chain.binner.push(events), view)

    def advance_to(self, t_us: int) -> None:
        """Close the bins that end by ``t_us`` (a live source's quiet time)."""
        chain = self.chain
        view = None if chain.events is None else chain.events.advance_to(t_us)
        self._queue_frames(chain.binner.advance_to(t_us), view)

    def flush(self) -> None:
        """The stream ended: queue the binner's last (partial) frame."""
        if self.flushed:
            return
        self.flushed = True
        chain = self.chain
        view = None if chain.events is None else chain.events.flush()
        self._queue_frames(chain.binner.flush(), view)

    def _queue_frames(self, frames: Frames, events: Frames | None) -> None:
        if events is not None and (
            len(frames) != len(events) or not np.array_equal(frames.t_start_us, events.t_start_us)
        ):
            raise RuntimeError("internal: the event view's bins differ from the model's")
        if len(frames):
            self._queue.append(_Chunk(frames, events))

    @property
    def queued(self) -> int:
        """Frames binned and not stepped yet."""
        return sum(len(c.frames) - c.next for c in self._queue)

    def next_start(self) -> int | None:
        """The start of the next frame to step (None: nothing queued)."""
        if not self._queue:
            return None
        chunk = self._queue[0]
        return int(chunk.frames.t_start_us[chunk.next])

    @property
    def tail_due(self) -> bool:
        """The stream ended, every frame is stepped and the last window is still open."""
        return self.flushed and not self._queue and not self._finished

    def reset(self) -> None:
        """A new stream: forget queued frames and the model's state."""
        self.chain.reset()
        self._queue.clear()
        self.flushed = False
        self._finished = False
        if self.analyzer is not None:
            self.analyzer.reset()  # type: ignore[attr-defined]

    def drop_queued(self) -> None:
        """Forget the frames binned ahead and restart the binners' grids (the model keeps
        its state): a replay that jumps back to where the model is."""
        self._queue.clear()
        self.flushed = False
        self.chain.binner.reset()
        if self.chain.events is not None:
            self.chain.events.reset()

    def close(self) -> None:
        self._remove_taps()
        self.chain.close()

    # -- one step ----------------------------------------------------------------------
    def step(self) -> LaneStep:
        """Step the next queued frame (or close the stream's last window when due)."""
        if not self._queue:
            if not self.tail_due:
                raise RuntimeError("internal: nothing to step")
            self._finished = True
            tail = self.chain.stepper.finish()
            t = 0 if tail is None else tail.t_end_us
            return LaneStep(self.index, None, t, t, window_result=tail)
        wall0 = time.perf_counter()
        chunk = self._queue[0]
        i = chunk.next
        chunk.next += 1
        if chunk.next == len(chunk.frames):
            self._queue.popleft()
        start, end = int(chunk.frames.t_start_us[i]), int(chunk.frames.t_end_us[i])
        stepper = self.chain.stepper
        rec = stepper.push(chunk.frames.data[i], start, end)
        result = rec.window_result
        if self.flushed and not self._queue:
            self._finished = True
            tail = stepper.finish()  # the stream's last window, cut short by its end
            result = tail if result is None else result
        raster, vm = self.tap.collect() if self.tap is not None else ({}, {})
        analysis = rec.analysis  # the stepper collects the in-depth probes (if any)
        spike_map = None
        layer = self._map_layer
        if layer is not None and layer.record is not None and layer.record.spikes is not None:
            spike_map = layer.record.spikes[0].to("cpu").numpy().astype(np.uint8)
        events = None if chunk.events is None else np.asarray(chunk.events.data[i])
        return LaneStep(
            self.index,
            rec,
            start,
            end,
            events=events,
            raster=raster,
            vm=vm,
            analysis=analysis,
            spike_map=spike_map,
            window_result=result,
            wall_ms=(time.perf_counter() - wall0) * 1e3,
        )


class Session:
    """One event source and the lanes stepped on it (module docstring)."""

    def __init__(self, lanes: Sequence[Lane] = (), source: EventSource | None = None) -> None:
        self.lanes: list[Lane] = list(lanes)
        self.source = source

    # -- feeding -----------------------------------------------------------------------
    def push(self, events: np.ndarray) -> None:
        """Give a packet of events to every lane's binners."""
        for lane in self.lanes:
            lane.push(events)

    def advance_to(self, t_us: int) -> None:
        for lane in self.lanes:
            lane.advance_to(t_us)

    def flush(self) -> None:
        """The stream ended: every lane queues its last frame (and closes its last window
        once that is stepped)."""
        for lane in self.lanes:
            lane.flush()

    @property
    def flushed(self) -> bool:
        return bool(self.lanes) and all(lane.flushed for lane in self.lanes)

    def read(self, max_events: int | None = None) -> int:
        """Poll the source once and push what it delivered; returns the event count."""
        if self.source is None:
            return 0
        events = self.source.poll() if max_events is None else self.source.poll(max_events)
        if len(events):
            self.push(events)
        return len(events)

    # -- stepping ----------------------------------------------------------------------
    @property
    def pending(self) -> bool:
        """A lane has a frame to step (or a last window to close)."""
        return any(lane.queued or lane.tail_due for lane in self.lanes)

    def step(self) -> LaneStep | None:
        """Step the lane whose next frame starts first; None when nothing is queued."""
        best: Lane | None = None
        best_t = math.inf
        for lane in self.lanes:
            t = lane.next_start()
            if t is None:
                if lane.tail_due and best is None:
                    best, best_t = lane, math.inf
                continue
            if t < best_t:
                best, best_t = lane, t
        return None if best is None else best.step()

    def reset(self) -> None:
        """A new stream (seek, new recording): every lane starts afresh."""
        for lane in self.lanes:
            lane.reset()

    def close(self) -> None:
        for lane in self.lanes:
            lane.close()
        self.lanes = []

    # -- synchronous driving (run, play) -------------------------------------------------
    def drive(self, max_events: int | None = None) -> Iterator[LaneStep]:
        """Read the source to its end and yield every step of every lane, in stream order;
        a failing source raises :class:`DvsappError` with its one-line message."""
        source = self.source
        if source is None:
            raise DvsappError("internal: the session has no source")
        while True:
            while (step := self.step()) is not None:
                yield step
            if self.flushed:
                return
            if self.read(max_events):
                continue
            status = source.status()
            if status.state is SourceState.ERROR:
                raise DvsappError(status.message)
            if status.state is SourceState.ENDED:
                self.flush()
                continue
            time.sleep(IDLE_SLEEP_S)
