"""The worker thread: owns the source and a :class:`~dvsapp.session.core.Session` (the
binners and steppers of the main model and, in compare mode, a second model on the same
events), applies commands between steps, paces the replay, and publishes one StepFrame per
model step (plus stats) to the mailbox. The stepping itself is the session's, the same code
``dvsapp run`` drives.

Loop: take the queued commands (waiting up to ``IDLE_S`` for one when the last round did no
work, so an idle worker sleeps instead of spinning), then do one bounded piece of work: step
one frame already binned, or poll the source once and bin what it delivered. Nothing in the
loop blocks on anything unbounded, so ``stop`` is seen within one model step.

Pause is the source's own pause (replay pacing stops; a live source's events are dropped).
``step_once`` while paused reads the replay ahead of its pace until the binner closes one
frame: as fast as possible at speed inf, else by pushing the source's clock forwards one bin
at a time (doubling through gaps). Frames binned but not stepped yet stay queued, so each
request steps exactly one.

Errors (a bad recording, a checkpoint for another architecture, CUDA missing, a failing
step) never leave the thread: they become the state "error" with a one-line message, and the
next open / load / configure that succeeds clears them. A model that fails to load while
another runs is the exception: the running one stays (and keeps stepping), and the failure
shows in the stats (``model_failures``, ``failed_model``, ``model_error``) instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dvsapp.events.sources import EventSource, ReplaySource, SourceState
from dvsapp.events.span import SpanScan
from dvsapp.pipeline.advice import RecordingAdvice
from dvsapp.pipeline.frames import model_info, step_frame
from dvsapp.pipeline.lanes import binning_difference, lane_settings
from dvsapp.pipeline.mailbox import Mailbox
from dvsapp.pipeline.meter import Meter
from dvsapp.pipeline.records import (
    PipelineSettings,
    PipelineStats,
    StepFrame,
)
from dvsapp.session.core import Lane, LaneStep, Session
from dvsapp.session.labels import class_of, segment_at
from dvsapp.session.loading import (
    DEFAULT_SENSOR,
    LoadedModel,
    Recording,
    bin_seconds,
    demo_input,
    load_model,
    open_recording,
)

IDLE_S = 0.0015
#: Events one poll may return: bounds the binning work between two command checks, and how
#: far a fast replay reads ahead of the model (frames binned but not stepped yet).
POLL_EVENTS = 1 << 13
STATS_EVERY_S = 0.05
#: Polls one step_once request may make per loop round (the clock doubles on each empty one).
STEP_TRIES = 40
#: Events one of those polls may return (step_once reads ahead of the pace: not too far).
STEP_EVENTS = 1 << 12
CHAIN_FIELDS = (
    "bin_us",
    "window_steps",
    "policy",
    "exit_threshold",
    "exit_consecutive",
    "exit_metric",
    "temporal_exit_gamma",
)
TAP_FIELDS = (
    "raster_neurons",
    "raster_channel",
    "vm_neurons",
    "analysis",
    "channel_layer",
    "compare_raster_channel",
    "compare_channel_layer",
    "compare_vm_neurons",
)
COMPARE_FIELDS = ("compare_checkpoint", "compare_import_options", "device")
FORCE_ALL = frozenset({"recording", "model", "compare"})
#: An empty event view (the compared model's frames: the view is the main model's).
NO_EVENTS = np.zeros((0, 0), np.uint16)

Command = tuple[Any, ...]


class VirtualClock:
    """``time.monotonic`` plus an offset the worker pushes forwards (the replay's clock)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset

    def skip(self, seconds: float) -> None:
        self.offset += seconds


def one_line(error: BaseException) -> str:
    """An exception as one line (our errors are already; others get their type name)."""
    from dvsapp.errors import DvsappError

    lines = [" ".join(ln.split()) for ln in str(error).splitlines() if ln.strip()]
    text = lines[0] if lines else ""
    if isinstance(error, DvsappError):
        return text or type(error).__name__
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class Worker:
    """Everything the pipeline thread owns; only that thread touches it."""

    def __init__(
        self,
        settings: PipelineSettings,
        mailbox: Mailbox,
        commands: queue.Queue[Command],
        stop: threading.Event,
        paused: bool,
        threads: int,
    ) -> None:
        self.s = settings
        self.mailbox = mailbox
        self._commands = commands
        self._stop = stop
        self._playing = not paused
        self._threads = threads
        self._clock = VirtualClock()
        self._meter = Meter()
        self._rec: Recording | None = None
        self._model: LoadedModel | None = None
        self._loaded_as: tuple[Any, ...] = ()  # (checkpoint, import_options, device) of it
        self._failed_as: tuple[Any, ...] = ()  # the same, of the last load that failed
        self._model_failures = 0
        self._failed_model: Path | None = None
        self._model_error = ""
        self._session: Session | None = None  # the main model's lane, and the compared one
        self._compare: LoadedModel | None = None  # compare mode's second model
        self._compare_as: tuple[Any, ...] = ()  # (checkpoint, import_options, device) of it
        self._compare_error = ""
        self._compare_note = ""
        self._exporter: Any = None  # dvsapp.session.export.SessionExport while exporting
        self._export_error = ""
        self._export_path: Path | None = None
        self._export_rows = 0
        self._errors: dict[str, str] = {}  # what failed ("recording", "model", ...) -> why
        self._notice = ""
        self._acc: np.ndarray | None = None  # accumulated event view (accumulate_events)
        self._step_requests = 0
        self._primer: np.ndarray | None = None  # the replay's first event, read at open
        self._discarded = False  # a paused live source's events were dropped
        self._index = [0, 0]  # steps published per lane
        self._epoch = 0
        self._period: int | None = None  # a loop pass's length in stream time, once known
        self._duration: int | None = None
        self._span: SpanScan | None = None  # scans a file for its length, so seek works early
        self._position: int | None = None  # end of the last step, recording clock
        self._last_t: int | None = None  # last delivered event, stream clock
        self._last_wall = 0.0
        self._published = 0.0
        self._shown: tuple[str, str, int | None] = ("", "", None)
        self._advice = RecordingAdvice()  # the open replay's origin and mismatch warnings
        self._recording_failures = 0
        self._failed_recording: Path | None = None
        self._recording_error = ""
        self._failed_open: Path | None = None  # not tried again until an open is forced
        #: (recording, model, duration) the cached warnings are about, and the warnings.

    # -- the loop ----------------------------------------------------------------------
    def run(self) -> None:
        """The thread's body: load, then loop until the stop flag is set."""
        try:
            torch.set_num_threads(self._threads)
            self._configure(self.s, FORCE_ALL, first=True)
            self._publish(force=True)
            busy = False
            while not self._stop.is_set():
                self._take_commands(wait=not busy)
                if self._stop.is_set():
                    break
                busy = self._guarded(self._tick)
                self._publish()
        finally:
            self._shutdown()

    def _take_commands(self, wait: bool) -> None:
        """Apply every queued command (waiting up to IDLE_S for the first when ``wait``)."""
        try:
            cmd = self._commands.get(timeout=IDLE_S) if wait else self._commands.get_nowait()
        except queue.Empty:
            return
        while True:
            self._notice = ""
            name, *args = cmd
            self._guarded(getattr(self, f"_cmd_{name}"), *args)
            try:
                cmd = self._commands.get_nowait()
            except queue.Empty:
                break
        self._publish(force=True)

    def _guarded(self, fn: Callable[..., Any], *args: Any) -> bool:
        """``fn(*args)``; an exception becomes the "run" error instead of leaving the thread."""
        try:
            return bool(fn(*args))
        except Exception as e:
            self._fail("run", e)
            return False

    def _fail(self, key: str, error: BaseException) -> None:
        self._errors.pop(key, None)
        self._errors[key] = one_line(error)

    @contextlib.contextmanager
    def _trap(self, key: str) -> Iterator[None]:
        """Record a failure of the block under ``key``; success clears that key."""
        try:
            yield
            self._errors.pop(key, None)
        except Exception as e:
            self._fail(key, e)

    def _shutdown(self) -> None:
        with contextlib.suppress(Exception):
            self._drop_session()
        with contextlib.suppress(Exception):
            self._close_export()
        self._close_source()
        self._errors.clear()
        self._notice = ""
        self.mailbox.publish_stats(self._stats(time.monotonic(), "stopped"), wake=True)

    # -- commands ----------------------------------------------------------------------
    def _cmd_stop(self) -> None:
        """Only wakes the loop; the stop flag ends it."""

    def _cmd_play(self) -> None:
        self._playing = True
        self._step_requests = 0
        self._errors.pop("run", None)
        rec = self._rec
        if rec is None:
            return
        replay = rec.replay
        if replay is None:
            self._restart_stream()  # a live source's events were dropped while paused
        elif replay.status().state is SourceState.ENDED:
            replay.seek(rec.first_t_us or 0)
            self._restart_stream()
        else:
            replay.resume()

    def _cmd_pause(self) -> None:
        self._playing = False
        if self._rec is not None and self._rec.replay is not None:
            self._rec.replay.pause()

    def _cmd_step(self) -> None:
        self._cmd_pause()
        self._step_requests += 1

    def _cmd_seek(self, t_us: int) -> None:
        replay = None if self._rec is None else self._rec.replay
        if replay is None:
            self._notice = "this source cannot seek"
            return
        self._primer = None
        replay.seek(int(t_us))
        if not self._playing:
            replay.pause()
        self._restart_stream()
        self._step_requests = 0
        self._position = int(t_us)

    def _cmd_configure(self, settings: PipelineSettings, force: frozenset[str]) -> None:
        self._configure(settings, force)

    def _cmd_source(self, source: EventSource) -> None:
        settings = dataclasses.replace(self.s, recording=None)
        self._configure(settings, frozenset({"recording"}), live=source)

    def _cmd_export(self, path: Path | None) -> None:
        """Start writing one row per model step to ``path`` (None: close the open export)."""
        self._close_export()
        if path is None:
            return
        self._export_error = ""
        try:
            self._open_export(path)
        except Exception as e:
            self._export_error = one_line(e)
            self._notice = f"export: {self._export_error}"

    # -- (re)building ------------------------------------------------------------------
    def _configure(
        self,
        new: PipelineSettings,
        force: frozenset[str],
        first: bool = False,
        live: EventSource | None = None,
    ) -> None:
        """Apply ``new``: rebuild what its changes (and ``force``) require."""
        old = None if first else self.s
        self.s = new

        def changed(*names: str) -> bool:
            return old is None or any(getattr(old, n) != getattr(new, n) for n in names)

        reopen = "recording" in force or changed("recording")
        if reopen:
            reopen = self._reopen(new.recording, live, forced="recording" in force)
        reload = (
            "model" in force
            or changed("checkpoint", "device", "import_options")
            or self._demo_misfits()
        )
        if reload:
            with self._trap("model"):
                reload = self._load(forced="model" in force)
        recompare = "compare" in force or changed(*COMPARE_FIELDS)
        if recompare:
            recompare = self._load_compare()
        rebuild = reopen or reload or recompare or changed(*CHAIN_FIELDS)
        if rebuild or self._session is None:
            with self._trap("config"):
                self._rebuild()
        elif changed(*TAP_FIELDS):
            with self._trap("config"):
                self._retap()
        if self._model is not None and (reload or changed("threshold_scale")):
            self._apply_thresholds()
        if not reopen and changed("speed", "loop"):
            self._apply_pace(new)

    def _reopen(self, path: Path | None, live: EventSource | None, forced: bool) -> bool:
        """Open the settings' recording; True when the source changed.

        A recording that fails to open while another plays keeps that one (and its place):
        the settings go back to it and the failure shows in the stats
        (``recording_failures``, ``failed_recording``, ``recording_error``). The same file
        is not tried again until an open is ``forced``. With nothing playing, the failure
        is the "error" state.
        """
        running = self._rec
        if running is not None and live is None and not forced and path == self._failed_open:
            self.s = dataclasses.replace(self.s, recording=running.path)
            return False
        try:
            self._open(path, live)
        except Exception as e:
            if running is None or self._rec is not running or live is not None:
                self._close_source()  # nothing to keep: the "error" state
                self._fail("recording", e)
                return True
            self._recording_failures += 1
            self._failed_recording, self._recording_error = path, one_line(e)
            self._failed_open = path
            self.s = dataclasses.replace(self.s, recording=running.path)
            name = running.path.name if running.path is not None else "the live source"
            self._notice = f"kept {name}: {self._recording_error}"
            return False
        self._errors.pop("recording", None)
        self._failed_open = None
        return True

    def _open(self, path: Path | None, live: EventSource | None) -> None:
        """Open and start the new source first: the old one is closed only once it works."""
        if live is not None:
            rec = Recording(live, None, None)
        elif path is None:
            self._close_source()
            self._period, self._duration, self._position, self._last_t = None, None, None, None
            return
        else:
            rec = open_recording(path, self.s.speed, self.s.loop, self._clock)
        try:
            rec.source.start()
            primer = self._prime(rec.replay) if rec.replay is not None else None
        except BaseException:
            rec.source.stop()
            raise
        self._close_source()
        self._period, self._duration, self._position, self._last_t = None, None, None, None
        self._primer = primer
        self._rec = rec
        if rec.replay is not None and rec.path is not None:
            self._span = SpanScan(rec.path)

    def _prime(self, replay: ReplaySource) -> np.ndarray:
        """Read the first event now (pushed when the chain is built), then pause if paused.

        ReplaySource learns the recording's first timestamp from its first read; a seek
        before that read would make it shift (and pace) later loop passes from the sought
        time, so time would run backwards at the first loop.
        """
        primer = replay.poll(1)
        if not self._playing:
            replay.pause()
        return primer

    def _close_source(self) -> None:
        rec, self._rec = self._rec, None
        if self._span is not None:
            self._span.cancel()
            self._span = None
        if self._session is not None:
            self._session.reset()
        self._primer = None
        if rec is not None:
            with contextlib.suppress(Exception):
                rec.source.stop()

    def _sensor(self) -> tuple[int, int, int]:
        return DEFAULT_SENSOR if self._rec is None else self._rec.source.sensor_size

    def _demo_misfits(self) -> bool:
        """The demo model was built for another sensor than the open recording's."""
        m = self._model
        return (
            m is not None
            and not m.trained
            and self._rec is not None
            and m.ckpt.config.input_size != demo_input(self._sensor())
        )

    def _load(self, forced: bool = True) -> bool:
        """Load the settings' model; True when it replaced the running one.

        A failure with a model running keeps that model (and its chain) and returns False:
        the settings go back to the running model's. The same model is not tried again
        until a load is ``forced`` (``Pipeline.load_model``), so settings sent before the
        caller heard of the failure do not repeat it.
        With no model running, the failure raises (the "error" state).
        """
        s = self.s
        key = (s.checkpoint, s.import_options, s.device)
        running = self._model is not None and bool(self._loaded_as)
        if running and not forced and key == self._failed_as:
            self._keep_running_model()
            return False
        try:
            model = load_model(s.checkpoint, s.device, self._sensor(), s.import_options)
        except Exception as e:
            self._model_failures += 1
            self._failed_model, self._model_error = s.checkpoint, one_line(e)
            self._failed_as = key
            if not running:
                raise
            self._keep_running_model()
            assert self._model is not None
            self._notice = f"kept {self._model.name}: {self._model_error}"
            return False
        self._model_error = ""
        self._failed_as = ()
        self._drop_session()
        self._model = model
        self._loaded_as = key
        return True

    def _load_compare(self) -> bool:
        """Load (or drop) compare mode's second model; True when it changed. A failure is
        the stats' ``compare_error`` and leaves the main model running alone."""
        s = self.s
        key = (s.compare_checkpoint, s.compare_import_options, s.device)
        if s.compare_checkpoint is None:
            changed = self._compare is not None
            self._compare, self._compare_as, self._compare_error = None, (), ""
            return changed
        try:
            model = load_model(
                s.compare_checkpoint, s.device, self._sensor(), s.compare_import_options
            )
        except Exception as e:
            self._compare_error = one_line(e)
            self._notice = f"compare: {self._compare_error}"
            changed = self._compare is not None
            self._compare, self._compare_as = None, ()
            return changed
        self._compare_error = ""
        self._drop_session()
        self._compare, self._compare_as = model, key
        return True

    def _keep_running_model(self) -> None:
        """The settings name the running model again (after a failed load)."""
        checkpoint, options, device = self._loaded_as
        self.s = dataclasses.replace(
            self.s, checkpoint=checkpoint, import_options=options, device=device
        )

    def _drop_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()

    def _rebuild(self) -> None:
        self._drop_session()
        model = self._model
        if model is None:
            self.mailbox.publish_info(None)
            self.mailbox.publish_info(None, 1)
            return
        rec = self._rec
        sensor = model.ckpt.sensor_size if rec is None else rec.source.sensor_size
        path = None if rec is None else rec.path
        lanes = [Lane(0, model, lane_settings(self.s, 0), sensor, path)]
        self._compare_note = ""
        if self._compare is not None:
            try:
                lanes.append(Lane(1, self._compare, lane_settings(self.s, 1), sensor, path))
            except Exception as e:  # e.g. a recording too small for its input
                self._compare_error = one_line(e)
                self._notice = f"compare: {self._compare_error}"
            else:
                self._compare_note = binning_difference(lanes[0], lanes[1])
        self._session = Session(lanes)
        if self._exporter is not None and self._exporter.models != [ln.name for ln in lanes]:
            self._close_export("the models changed")
        self._publish_infos()
        self._restart_stream()
        primer, self._primer = self._primer, None
        if rec is not None and primer is not None and len(primer):
            self._push(rec, primer)

    def _retap(self) -> None:
        session = self._session
        if session is None:
            return
        for lane in session.lanes:
            lane.retap(lane_settings(self.s, lane.index))
        self._publish_infos()

    def _publish_infos(self) -> None:
        session = self._session
        lanes = [] if session is None else session.lanes
        for i in (0, 1):
            lane = next((ln for ln in lanes if ln.index == i), None)
            self.mailbox.publish_info(None if lane is None else model_info(lane), i)

    def _apply_thresholds(self) -> None:
        assert self._model is not None
        layers = self._model.ckpt.model.spiking_layers()
        scales = self.s.threshold_scale
        for name, layer in layers.items():
            layer.threshold_scale = float(scales.get(name, 1.0))
        unknown = [n for n in scales if n not in layers]
        if unknown:
            self._notice = f"threshold scale: no spiking layer named {unknown[0]!r}"

    def _apply_pace(self, s: PipelineSettings) -> None:
        replay = None if self._rec is None else self._rec.replay
        if replay is None:
            return
        replay.loop = s.loop
        old = replay.speed
        try:
            replay.set_speed(s.speed)
        except Exception as e:
            self._notice = one_line(e)
            return
        live = replay.status().state in (SourceState.RUNNING, SourceState.PAUSED)
        if math.isinf(old) and not math.isinf(s.speed) and live:
            self._resync(replay)

    def _resync(self, replay: ReplaySource) -> None:
        """After full speed: continue the replay from the model's position, at the new pace.

        Drops the frames read ahead (they would otherwise be stepped at full speed) and seeks
        to the end of the last step; the seek also re-anchors the pace, which
        ReplaySource.set_speed from inf leaves at int64 max. The model keeps its state; the
        binners restart their grid at the next event.
        """
        first = self._rec.first_t_us if self._rec is not None else None
        position = self._position if self._position is not None else first
        if self._session is not None:
            for lane in self._session.lanes:
                lane.drop_queued()
        replay.seek(position or 0)

    def _restart_stream(self) -> None:
        """Forget binned frames and model state: the stream starts afresh (a new epoch)."""
        if self._session is not None:
            self._session.reset()
        self._acc = None
        self._discarded = False
        self._epoch += 1
        self._errors.pop("run", None)
        self._meter.reset(time.monotonic())

    # -- one round of work -------------------------------------------------------------
    def _tick(self) -> bool:
        """One bounded piece of work; False when there was nothing to do."""
        session, rec = self._session, self._rec
        if session is None or rec is None or self._errors:
            return False
        if session.pending:
            if not (self._playing or self._step_requests):
                return False
            main = self._step_one(session)
            if not self._playing and main:
                self._step_requests -= 1
            return True
        if self._playing:
            return self._read(rec, session)
        if self._step_requests:
            return self._read_for_step(rec, session)
        if rec.replay is None:
            self._discarded |= len(rec.source.poll()) > 0  # a paused live source: drop
        return False

    def _read(self, rec: Recording, session: Session) -> bool:
        events = rec.source.poll(POLL_EVENTS)
        if len(events):
            self._push(rec, events)
            return True
        return self._quiet(rec, session)

    def _quiet(self, rec: Recording, session: Session) -> bool:
        """Nothing arrived: flush at the end; close due bins of a live source."""
        status = rec.source.status()
        if status.state in (SourceState.ENDED, SourceState.ERROR):
            if session.flushed:
                return False
            session.flush()
            ended = status.state is SourceState.ENDED
            if ended and self._duration is None and self._last_t is not None:
                first = rec.first_t_us
                self._duration = None if first is None else self._file_time(self._last_t) - first
            return True
        if rec.replay is None and status.state is SourceState.RUNNING and self._last_t is not None:
            now_us = self._last_t + int((time.monotonic() - self._last_wall) * 1e6)
            session.advance_to(now_us)
            return session.pending
        return False

    def _read_for_step(self, rec: Recording, session: Session) -> bool:
        """Paused with a step requested: read ahead of the pace until a frame closes."""
        replay = rec.replay
        if replay is None:
            if self._discarded:  # the open bin is stale: start afresh from live data
                self._restart_stream()
            return self._read(rec, session)
        if replay.status().state is not SourceState.PAUSED:  # ended or failed
            if self._quiet(rec, session):
                return True
            self._step_requests = 0
            self._notice = "end of the recording"
            return False
        replay.resume()
        try:
            self._poll_until_frame(rec, replay, session)
        finally:
            replay.pause()
        return True

    def _poll_until_frame(self, rec: Recording, replay: ReplaySource, session: Session) -> None:
        binning = session.lanes[0].chain.binning
        delta = None if math.isinf(replay.speed) else bin_seconds(binning) / replay.speed
        for _ in range(STEP_TRIES):
            if delta is not None:
                self._clock.skip(delta)
            events = replay.poll(STEP_EVENTS)
            if len(events):
                self._push(rec, events)
            elif delta is not None:
                delta *= 2
            if session.lanes[0].queued or replay.status().state is not SourceState.RUNNING:
                return

    def _push(self, rec: Recording, events: np.ndarray) -> None:
        now = time.monotonic()
        self._meter.add_events(now, len(events))
        self._last_t, self._last_wall = int(events["t"][-1]), now
        if rec.replay is not None and self._period is None:
            self._note_loop(rec.replay)
        if self._session is not None:
            self._session.push(events)

    def _note_loop(self, replay: ReplaySource) -> None:
        """Once the replay has looped: learn a pass's length (and the recording's duration).

        ReplaySource shifts pass k by k * (last - first + 1): every pass by the same period,
        however many passes one poll spans and wherever a seek landed.
        """
        extra = replay.status().extra
        passes, offset = extra.get("passes"), extra.get("loop_offset_us")
        if isinstance(passes, int) and isinstance(offset, int) and passes > 0:
            self._period = offset // passes
            self._duration = self._period - 1

    def _file_time(self, t_us: int) -> int:
        """A stream time on the recording's own clock (undoing its loop pass's shift)."""
        first = None if self._rec is None else self._rec.first_t_us
        period = self._period
        if first is None or not period:
            return t_us
        return t_us - max(0, (t_us - first) // period) * period

    # -- one step ----------------------------------------------------------------------
    def _step_one(self, session: Session) -> bool:
        """Step the session once and publish the frame; True when the main model stepped."""
        wall0 = time.perf_counter()
        st = session.step()
        if st is None or st.record is None:  # a window closed by the stream's end only
            return False
        rec = st.record
        lane = session.lanes[0] if st.lane == 0 else session.lanes[-1]
        start, end = st.t_start_us, st.t_end_us
        if st.events is not None:
            on, off = self._event_view(st.events, rec.step)
        else:
            on = off = NO_EVENTS
        label, name = self._label((start + end) // 2, lane.model)
        frame = step_frame(st, self._index[st.lane], self._epoch, on, off, label, name)
        frame.recording_t_us = self._file_time(start)
        frame.overhead_ms = max(0.0, (time.perf_counter() - wall0) * 1e3 - rec.latency_ms)
        if self._exporter is not None:
            self._export(lane, st, frame)
        self.mailbox.put(frame)
        self._index[st.lane] += 1
        if st.lane != 0:
            return False
        # A bin ends after its last microsecond: on a loop pass's boundary that is the end
        # of the pass, not the start of the next (the time read 0:00.0 at the end).
        self._position = self._file_time(end - 1) + 1
        self._meter.add_step(time.monotonic(), rec.latency_ms, frame.overhead_ms, end)
        return True

    # -- export ------------------------------------------------------------------------
    def _open_export(self, path: Path) -> None:
        """Open the Parquet export for the session's models (fails at once, one line)."""
        from dvsapp.session.export import SessionExport

        if self._session is None:
            from dvsapp.errors import ConfigError

            raise ConfigError("no model is running")
        self._exporter = SessionExport(path, self._session.lanes)
        self._export_path, self._export_rows = Path(path), 0

    def _export(self, lane: Lane, st: LaneStep, frame: StepFrame) -> None:
        try:
            self._exporter.add(lane, st, frame.true_name, frame.recording_t_us)
            self._export_rows = self._exporter.rows
        except Exception as e:  # a full disk, a vanished folder: stop exporting, keep running
            self._export_error = one_line(e)
            self._notice = f"export stopped: {self._export_error}"
            self._close_export()

    def _close_export(self, why: str = "") -> None:
        exporter, self._exporter = self._exporter, None
        if exporter is None:
            return
        try:
            exporter.close()
            self._export_rows = exporter.rows
        except Exception as e:
            self._export_error = one_line(e)
        if why:
            self._notice = f"export of {self._export_path} closed: {why}"

    def _event_view(self, counts: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray]:
        """(ON, OFF) uint16 [H, W] of this bin, or of the window so far when accumulating."""
        if not self.s.accumulate_events:
            return counts[1].astype(np.uint16), counts[0].astype(np.uint16)
        if step == 1 or self._acc is None:
            self._acc = np.zeros(counts.shape, np.int64)
        self._acc += counts
        view = np.minimum(self._acc, np.iinfo(np.uint16).max).astype(np.uint16)
        return view[1], view[0]

    def _label(self, t_us: int, model: LoadedModel) -> tuple[int | None, str | None]:
        """The label segment at ``t_us`` as (``model``'s class index, name)."""
        rec = self._rec
        if rec is None or not rec.source.labels:
            return None, None
        seg = segment_at(rec.source.labels, self._file_time(t_us))
        if seg is None:
            return None, None
        return class_of(seg, model.ckpt.class_names), seg.name

    # -- stats -------------------------------------------------------------------------
    def _publish(self, force: bool = False) -> None:
        """Publish stats every STATS_EVERY_S (at once when ``force``); a change of state,
        message or known duration wakes the GUI."""
        now = time.monotonic()
        if not force and now - self._published < STATS_EVERY_S:
            return
        self._published = now
        stats = self._stats(now)
        shown = (stats.state, stats.message, stats.duration_us)
        self.mailbox.publish_stats(stats, wake=shown != self._shown)
        self._shown = shown

    def _state(self) -> tuple[str, str]:
        if self._errors:
            return "error", list(self._errors.values())[-1]
        rec = self._rec
        if rec is None:
            return "idle", self._notice or "no recording"
        status = rec.source.status()
        state, message = status.state, status.message or self._notice
        session = self._session
        if (
            state is SourceState.ENDED
            and session is not None
            and (session.pending or not session.flushed)
        ):
            return "running", message  # the tail is still being stepped
        if state is SourceState.RUNNING and not self._playing:
            return "paused", message
        return state.value, message

    def _learn_duration(self) -> None:
        """Take the recording's length from the background scan once it has finished."""
        span, rec = self._span, self._rec
        if self._duration is None and span is not None and span.done and rec is not None:
            self._span = None
            if span.last_t_us is not None and rec.first_t_us is not None:
                self._duration = span.last_t_us - rec.first_t_us

    def _stats(self, now: float, state: str | None = None) -> PipelineStats:
        self._learn_duration()
        latency, overhead = self._meter.step_means(now)
        current, message = self._state() if state is None else (state, self._notice)
        warnings, guess = self._advice.warnings(self._rec, self._model, self._duration)
        return PipelineStats(
            state=current,
            message=message,
            events_per_s=self._meter.events_per_s(now),
            step_latency_ms=latency,
            realtime_factor=self._meter.realtime_factor(now),
            steps=self._index[0],
            dropped_steps=self.mailbox.dropped,
            stream_time_us=self._position,
            duration_us=self._duration,
            t_first_us=None if self._rec is None else self._rec.first_t_us,
            overhead_ms=overhead,
            epoch=self._epoch,
            model_failures=self._model_failures,
            failed_model=self._failed_model,
            model_error=self._model_error,
            recording_origin=self._advice.origin(self._rec),
            recording_failures=self._recording_failures,
            failed_recording=self._failed_recording,
            recording_error=self._recording_error,
            warnings=warnings,
            sensor_guess=guess,
            compare_error=self._compare_error,
            compare_note=self._compare_note,
            export_path=self._export_path if self._exporter is not None else None,
            export_rows=self._export_rows,
            export_error=self._export_error,
        )
