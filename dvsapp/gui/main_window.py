"""The main window: panels, controls, status bar; drives the pipeline and redraws on a timer.

Threading: only :class:`~dvsapp.gui.bridge.MailboxBridge` hears from the worker (one queued
signal, one pending wake-up). A 60 Hz timer on the GUI thread drains the mailbox when it is
dirty: every frame goes into the scrolling panels, the latest drives the event view. The GUI
never waits on the model or the source: every pipeline method returns at once.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtGui import QCloseEvent, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QInputDialog,
    QMainWindow,
    QScrollArea,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from dvsapp.gui import theme
from dvsapp.gui.banner import ErrorBanner, NoticeBanner
from dvsapp.gui.bridge import MailboxBridge
from dvsapp.gui.compare import CompareColumn, CompareMode, title_label
from dvsapp.gui.controls import (
    ALL_CAPABILITIES,
    BROWSE,
    NETWORK,
    NO_CAMERA,
    RECORDING,
    VIDEO,
    Controls,
)
from dvsapp.gui.neurons import add_traced, raster_row_to_flat, traced_by_layer
from dvsapp.gui.outputs import Outputs
from dvsapp.gui.panels.base import Panel
from dvsapp.gui.panels.channels import ChannelPanel
from dvsapp.gui.panels.event_view import EventView
from dvsapp.gui.panels.prediction import PredictionPanel
from dvsapp.gui.panels.rasters import RasterPanel
from dvsapp.gui.panels.rates import RatesPanel
from dvsapp.gui.panels.synops import SynopsPanel
from dvsapp.gui.panels.vm_hist import VmHistogramPanel
from dvsapp.gui.panels.vm_traces import VmPanel
from dvsapp.gui.pipeline_port import PipelineLike, leave_a_core_to_the_gui, model_key
from dvsapp.gui.shortcuts import Shortcuts
from dvsapp.gui.slots import note_slot
from dvsapp.gui.status import StatusBar
from dvsapp.pipeline import ModelInfo, PipelineSettings, PipelineStats, StepFrame
from dvsapp.pipeline.advice import UNTRAINED, suggest_model, training_data

REDRAW_MS = 16  # at most ~60 redraws per second
#: Bins this short or shorter (e.g. N-MNIST's 1 ms) hold a handful of events each: unless the
#: user chose, the event view accumulates over the window for such a model.
SHORT_BIN_US = 5000
#: While the pipeline falls behind real time, redraw at most ~31 times a second instead, so
#: the worker gets the CPU the GUI gives up (on a 2-core machine they share one core's worth).
#: 32 ms, not 33: a tick that overruns its slot delays the next, and 33 ms (30.3/s nominal)
#: gave 29.5-30.0 redraws/s, just under the 30 the app promises (docs/BENCHMARKS.md).
SLOW_REDRAW_MS = 32
STATS_MS = 250
#: When the in-depth probes' kernels start loading in the background (0.7 s, mostly holding
#: the GIL): after the first frames, before a user is likely to open an in-depth tab.
PRELOAD_KERNELS_MS = 1500
CHECKPOINT_FILTER = (
    "Models (*.safetensors *.nir);;dvsapp checkpoints (*.safetensors);;NIR graphs (*.nir);;"
    "All files (*)"
)
#: Dropped files with these suffixes load as models (anything else opens as a recording).
MODEL_SUFFIXES = (".safetensors", ".nir")
RECORDING_FILTER = (
    "Event recordings (*.aedat4 *.aedat *.aedat3 *.dat *.raw *.bin *.npy *.npz);;All files (*)"
)
VIDEO_FILTER = "Videos (*.avi *.mp4 *.mkv *.mov *.webm *.mpg);;All files (*)"


def preload_kernels() -> None:
    """Load the in-depth probes' compiled kernels in a background thread."""
    from dvsapp.snn.analysis.vm import load_kernels

    threading.Thread(target=load_kernels, name="dvsapp-kernels", daemon=True).start()


class MainWindow(QMainWindow):
    """The dvsapp window around one pipeline (started by :meth:`start`)."""

    def __init__(
        self,
        pipeline: PipelineLike,
        shipped_models: list[Path] | None = None,
        cuda: bool = False,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.pipeline = pipeline
        self.settings: PipelineSettings = pipeline.settings
        self.info: ModelInfo | None = None
        self.seq = 0  # frames received, monotonic for the GUI's lifetime
        self.redraws = 0  # redraw ticks that drew new frames
        self.ticks = 0
        self.max_tick_gap_s = 0.0
        self._last_tick: float | None = None
        self._last_stats: PipelineStats | None = None
        self._epoch = 0  # StepFrame.epoch of the stream drawn now
        self._auto_trace_at: int | None = None  # when to pick neurons to trace by default
        self._last_state = ""
        self._last_notice = ""
        self._closed = False
        self._torch_threads: int | None = None
        self.live_spec: str | None = None  # the live source streaming now (None: recording)
        self.camera_reason = ""  # why no camera was found, at the last scan
        self._network_spec = "tcp://127.0.0.1:7777"
        #: How to import each NIR graph opened so far (the command line's flags; a graph
        #: chosen in the app gets the defaults).
        self.import_options: dict[Path, Any] = {}
        if self.settings.checkpoint is not None and self.settings.import_options is not None:
            self.import_options[self.settings.checkpoint] = self.settings.import_options
        other, options = self.settings.compare_checkpoint, self.settings.compare_import_options
        if other is not None and options is not None:
            self.import_options[other] = options
        self._model_failures = 0  # PipelineStats.model_failures handled so far
        self._recording_failures = 0  # PipelineStats.recording_failures handled so far
        #: An open or load was asked for: its success (a new stream or model) clears the
        #: error banner.
        self._await_success = False
        self._accumulate_chosen = False  # the user set the event view's accumulation
        #: (recording, model) pairs whose model suggestion the user dismissed.
        self._dismissed_suggestions: set[tuple[Path | None, str]] = set()
        #: The last lane-0 frame drawn (a recorded video's stamp reads it).
        self.last_frame: StepFrame | None = None
        self.setWindowTitle("dvsapp")
        self.setAcceptDrops(True)
        self.setStyleSheet(theme.STYLESHEET)

        self.events = EventView()
        self.rasters = RasterPanel()
        self.vm = VmPanel()
        self.rates = RatesPanel()
        self.prediction = PredictionPanel()
        self.panels: list[Panel] = [
            self.events,
            self.rasters,
            self.vm,
            self.rates,
            self.prediction,
        ]
        #: The in-depth panels, in tabs beside the Vm traces (drawn while shown).
        self.vm_hist = VmHistogramPanel()
        self.channels = ChannelPanel()
        self.synops = SynopsPanel()
        self.depth_panels: list[Panel] = [self.vm_hist, self.channels, self.synops]
        self.controls = Controls(shipped_models or [], cuda)
        self.outputs = Outputs(self)  # export and video recording
        self._build_layout()
        self.comparing = CompareMode(self)  # the second column, beside self.main_column
        self.status = StatusBar(self)
        self.setStatusBar(self.status)
        self._connect()
        self.shortcuts = Shortcuts(self)
        self.controls.set_recording(self.settings.recording)
        self.controls.select_model(self.settings.checkpoint)
        self.controls.select_compare(self.settings.compare_checkpoint)
        self.controls.show_settings(self.settings)

        self.bridge = MailboxBridge(self)
        self.redraw_timer = QTimer(self)
        # Qt's default coarse timer may fire up to 5% late (33 ms: 28.7 redraws/s at best)
        self.redraw_timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.redraw_timer.setInterval(REDRAW_MS)
        self.redraw_timer.timeout.connect(self.redraw_tick)
        self.stats_timer = QTimer(self)
        self.stats_timer.setInterval(STATS_MS)
        self.stats_timer.timeout.connect(self.stats_tick)

    # -- layout ----------------------------------------------------------------------------
    def _build_layout(self) -> None:
        central = QWidget()
        outer = QVBoxLayout(central)
        outer.setContentsMargins(2, 2, 2, 2)
        outer.setSpacing(2)
        self.banner = ErrorBanner()
        outer.addWidget(self.banner)
        self.notice = NoticeBanner()
        outer.addWidget(self.notice)
        self.mismatch = NoticeBanner()  # how the recording differs from the training data
        outer.addWidget(self.mismatch)
        self.compare_notice = NoticeBanner()  # the compared model failed to load
        outer.addWidget(self.compare_notice)

        scroll = QScrollArea()
        scroll.setWidget(self.controls)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(self.controls.minimumWidth() + 14)
        scroll.setMaximumWidth(self.controls.maximumWidth() + 14)

        top = QSplitter(Qt.Orientation.Horizontal)
        top.addWidget(self.events)
        top.addWidget(self.prediction)
        top.setSizes([380, 880])
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.vm, "Vm traces")
        self.tabs.addTab(self.vm_hist, "Vm histogram")
        self.tabs.addTab(self.channels, "Channels")
        self.tabs.addTab(self.synops, "Synaptic ops")
        self.tabs.currentChanged.connect(self.tab_shown)
        side = QSplitter(Qt.Orientation.Vertical)
        side.addWidget(self.rates)
        side.addWidget(self.tabs)
        side.setSizes([300, 280])
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.rasters)
        bottom.addWidget(side)
        bottom.setSizes([700, 560])
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(top)
        right.addWidget(bottom)
        right.setSizes([370, 580])
        # The main model's column, titled in compare mode; the compared one goes beside it.
        self.main_column = QWidget()
        col = QVBoxLayout(self.main_column)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(1)
        self.main_title = title_label()
        self.main_title.setVisible(False)
        col.addWidget(self.main_title)
        col.addWidget(right, 1)
        self.columns = QSplitter(Qt.Orientation.Horizontal)
        self.columns.addWidget(self.main_column)
        main = QSplitter(Qt.Orientation.Horizontal)
        main.addWidget(scroll)
        main.addWidget(self.columns)
        main.setStretchFactor(1, 1)
        for s in (top, side, bottom, right, main, self.columns):
            s.setChildrenCollapsible(False)
        outer.addWidget(main, 1)
        self.setCentralWidget(central)

    def _connect(self) -> None:
        c = self.controls
        c.open_requested.connect(self.choose_recording)
        c.source_requested.connect(self.choose_source)
        c.rescan_requested.connect(self.rescan_cameras)
        c.model_requested.connect(self.choose_model)
        c.settings_edited.connect(self.apply_settings_edit)
        c.play_requested.connect(self.request_play)
        c.step_requested.connect(self.request_step)
        c.seek_requested.connect(self.request_seek)
        c.threshold_edited.connect(self.apply_threshold_scale)
        self.rasters.neuron_clicked.connect(self.trace_neuron)
        self.events.accumulate_changed.connect(self.apply_accumulate)
        self.vm.cleared.connect(self.clear_traced_neurons)
        self.vm.row_of = self.rasters.row_of  # the Vm legend names raster rows
        self.vm.traced_changed.connect(self.rasters.mark_traced)
        self.channels.channel_clicked.connect(self.show_channel)
        self.channels.layer_changed.connect(self.send_channel_layer)
        c.compare_requested.connect(self.comparing.choose)
        c.export_toggled.connect(self.outputs.request_export)
        c.record_toggled.connect(self.outputs.request_record)
        self.notice.action_requested.connect(self.accept_suggestion)
        self.notice.dismissed.connect(self.dismiss_suggestion)
        self.mismatch.dismissed.connect(self.dismiss_mismatch)
        self._dismissed_mismatch: set[object] = set()

    # -- life cycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Attach to the mailbox, start the timers and the pipeline's worker."""
        self._torch_threads = leave_a_core_to_the_gui()
        self.bridge.attach(self.pipeline.mailbox)
        self.redraw_timer.start()
        self.stats_timer.start()
        self._guard(self.pipeline.start)
        self.sync_analysis()
        self.rescan_cameras()
        # The in-depth probes' compiled kernels load in the background once the stream runs,
        # not in the worker when an in-depth tab or a compared model first needs them.
        QTimer.singleShot(PRELOAD_KERNELS_MS, preload_kernels)

    def shutdown(self) -> None:
        """Stop the timers and the worker (joins it); safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.redraw_timer.stop()
        self.stats_timer.stop()
        # the tabs emit currentChanged while Qt deletes them, after the window's Python
        # side may be gone (a window dropped without ending the process)
        self.tabs.currentChanged.disconnect(self.tab_shown)
        self.outputs.stop_all()
        self.bridge.detach()
        self._guard(self.pipeline.stop)
        if self._torch_threads is not None:  # as it was before start()
            import torch

            torch.set_num_threads(self._torch_threads)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)

    @property
    def last_stats(self) -> PipelineStats | None:
        """The pipeline's stats at the last status-bar update."""
        return self._last_stats

    # -- drag and drop ---------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = [Path(u.toLocalFile()) for u in event.mimeData().urls() if u.isLocalFile()]
        if not paths:
            return
        event.acceptProposedAction()
        if paths[0].suffix.lower() in MODEL_SUFFIXES:
            self.load_model(paths[0])
        else:
            self.open_recording(paths[0])

    # -- commands --------------------------------------------------------------------------
    def _guard(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Call a pipeline method; a failure goes to the banner and the GUI keeps going."""
        try:
            fn(*args)
        except Exception as e:  # the GUI must survive anything the pipeline throws
            self.show_error(f"{type(e).__name__}: {e}" if not str(e) else str(e))
            return False
        return True

    def _configure(self, **changes: Any) -> None:
        self.settings = dataclasses.replace(self.settings, **changes)
        self._guard(self.pipeline.configure, self.settings)

    def open_recording(self, path: Path) -> None:
        """Replay ``path`` (the pipeline reports a bad file as an error)."""
        self.settings = dataclasses.replace(self.settings, recording=Path(path))
        self.live_spec = None
        self.controls.set_recording(Path(path))
        self.controls.show_source(RECORDING)
        self.controls.set_capabilities(ALL_CAPABILITIES)
        self._update_title()
        self._clear_output()  # the old recording's frame must not show under the new name
        self._await_success = True
        self._guard(self.pipeline.open_recording, Path(path))

    def _clear_output(self) -> None:
        """Blank the event view and the prediction until the next stream's first frame."""
        self.events.clear_now()
        self.prediction.clear_history()

    def open_source_spec(self, spec: str) -> bool:
        """Stream from the source ``spec`` names (factory.open_source's forms); a recording
        path replays. Errors go to the status bar; returns whether the source was handed over.

        Building a source only parses and probes (a video file's size); opening the device or
        the socket happens in ``start()``, which the pipeline's worker calls, so this never
        waits on hardware or the network.
        """
        from dvsapp.events.sources.factory import open_source, parse_source_spec

        try:
            parsed = parse_source_spec(spec)
            if parsed.kind == "replay":
                self.open_recording(Path(parsed.target))
                return True
            speed = self.settings.speed if parsed.kind == "video" else 1.0
            source = open_source(spec, speed=speed)
        except Exception as e:  # a bad spec, a missing package: say so, keep running
            self.show_error(_one_line(e))
            return False
        if not self._guard(self.pipeline.open_source, source):
            return False
        self.live_spec = spec
        self.settings = dataclasses.replace(self.settings, recording=None)
        self.controls.set_source_label(spec)
        self.controls.set_capabilities(frozenset(source.capabilities))
        self.controls.show_source(self._combo_data(spec))
        self._update_title()
        self.status.showMessage(f"opening {spec}…", 4000)
        return True

    def _combo_data(self, spec: str) -> str:
        if spec.startswith(("tcp://", "unix:")):
            return NETWORK
        if spec.startswith("video:"):
            return VIDEO
        return spec

    def rescan_cameras(self) -> int:
        """Look for attached cameras and refill the chooser; returns how many were found."""
        from dvsapp.events.sources.cameras import list_devices

        notes: list[str] = []
        try:
            devices = list_devices(notes)
        except Exception as e:  # list_devices guards its back ends; belt and braces
            devices, notes = [], [_one_line(e)]
        found = [(f"{d.model} {d.serial}".strip(), d.spec()) for d in devices]
        self.camera_reason = "no camera found" + (f" ({'; '.join(notes)})" if notes else "")
        self.controls.set_cameras(found, self.camera_reason)
        return len(found)

    @Slot(str)
    def choose_source(self, data: str) -> None:
        """A source-combo entry was chosen: ask for what it needs, then open it."""
        note_slot("MainWindow.choose_source")
        if data == RECORDING:
            if self.live_spec is not None:
                self.choose_recording()
                self._show_current_source()
            return
        if data == NO_CAMERA:
            if self.rescan_cameras() == 0:
                self.status.showMessage(self.camera_reason, 10_000)
                self._show_current_source()
                return
            data = str(self.controls.source.itemData(1))  # the first camera found
        if data == NETWORK:
            spec, ok = QInputDialog.getText(
                self, "DV network stream", "tcp://HOST:PORT or unix:PATH", text=self._network_spec
            )
            spec = spec.strip()
            if not ok or not spec:
                self._show_current_source()
                return
            self._network_spec = spec
            data = spec
        elif data == VIDEO:
            path, _ = QFileDialog.getOpenFileName(self, "Open a video", "", VIDEO_FILTER)
            if not path:
                self._show_current_source()
                return
            data = f"video:{path}"
        if not self.open_source_spec(data):
            self._show_current_source()

    def _show_current_source(self) -> None:
        """Point the chooser back at what is streaming now."""
        spec = self.live_spec
        self.controls.show_source(RECORDING if spec is None else self._combo_data(spec))

    def load_model(self, checkpoint: Path | None) -> None:
        """Load a checkpoint or a NIR graph (None: the untrained demo); per-model choices
        start over. If it fails to load, the model running now stays (see
        :meth:`_check_model_failure`)."""
        path = None if checkpoint is None else Path(checkpoint)
        self.settings = dataclasses.replace(
            self.settings,
            checkpoint=path,
            import_options=None if path is None else self.import_options.get(path),
            bin_us=None,
            window_steps=None,
            vm_neurons={},
            raster_channel={},
            threshold_scale={},
        )
        self.controls.select_model(self.settings.checkpoint)
        self.controls.model_label.setText("loading…")
        self._await_success = True
        if self._guard(
            self.pipeline.load_model, self.settings.checkpoint, self.settings.import_options
        ):
            self._guard(self.pipeline.configure, self.settings)  # the per-model resets

    def show_error(self, message: str) -> None:
        """A non-modal error banner plus the status bar; the GUI keeps running."""
        if self.banner.show_message(message):
            self.status.show_error(message)

    # -- model suggestion ------------------------------------------------------------------
    def _update_suggestion(self, st: PipelineStats) -> None:
        """Suggest the model trained on real DVS128 Gesture while a real DVS128 recording
        (advice.recording_origin's rule) plays through a model trained on anything else;
        hide the suggestion as soon as it no longer applies. Never switches by itself."""
        origin = getattr(st, "recording_origin", None)
        info = self.info
        rec = self.settings.recording
        if (
            origin is None
            or info is None
            or self.live_spec is not None
            or rec is None
            or origin.path is None
            or not _same_file(origin.path, rec)
        ):
            self.notice.clear()
            return
        loaded = info.path if info.trained else None
        requested = self.settings.checkpoint
        if (loaded is None) != (requested is None) or (
            loaded is not None and requested is not None and not _same_file(loaded, requested)
        ):
            self.notice.clear()  # another model is on its way: judge that one
            return
        data = training_data(info.trained_on) if info.trained else UNTRAINED
        pick = suggest_model(origin, data, loaded, self.controls.model_summaries.values())
        key = (Path(rec), str(loaded or info.name))
        if pick is None or key in self._dismissed_suggestions:
            self.notice.clear()
            return
        if self.notice.isVisible() and self.notice.key == key:
            return
        message = (
            f"{Path(rec).name} looks like a real DVS128 recording ({origin.reason}), but "
            f"{Path(loaded).stem if loaded else info.name} was trained on {data}. "
            f"{pick.name} was trained on {pick.training} "
            f"(input {pick.input})."
        )
        self.notice.show_notice(key, message, f"use {pick.name}", pick.path, pick.tooltip)

    @Slot(object)
    def accept_suggestion(self, checkpoint: object) -> None:
        """The suggestion's button: load the suggested checkpoint."""
        note_slot("MainWindow.accept_suggestion")
        if checkpoint is not None:
            self.load_model(Path(str(checkpoint)))

    def _update_mismatch(self, st: PipelineStats) -> None:
        """A note while the recording differs from the model's training data (sensor, aspect,
        polarity, time scale, synthetic vs real: dvsapp.advisories), until dismissed."""
        self.events.set_sensor_guess(getattr(st, "sensor_guess", ""))
        warnings = tuple(getattr(st, "warnings", ()) or ())
        key = (self.settings.recording, self.info.name if self.info else None, warnings)
        if not warnings or self.info is None or key in self._dismissed_mismatch:
            self.mismatch.clear()
            return
        if self.mismatch.isVisible() and self.mismatch.key == key:
            return
        model = self.info.name
        text = f"Predictions may mislead: {'; '.join(warnings)} ({model})."
        self.mismatch.show_notice(key, text, "", None, "\n".join(warnings))

    @Slot(object)
    def dismiss_mismatch(self, key: object) -> None:
        note_slot("MainWindow.dismiss_mismatch")
        self._dismissed_mismatch.add(key)

    @Slot(object)
    def dismiss_suggestion(self, key: object) -> None:
        note_slot("MainWindow.dismiss_suggestion")
        if isinstance(key, tuple):
            self._dismissed_suggestions.add(key)  # type: ignore[arg-type]

    @Slot()
    def choose_recording(self) -> None:
        note_slot("MainWindow.choose_recording")
        start = str(self.settings.recording.parent) if self.settings.recording else ""
        path, _ = QFileDialog.getOpenFileName(self, "Open a recording", start, RECORDING_FILTER)
        if path:
            self.open_recording(Path(path))

    @Slot(object)
    def choose_model(self, choice: object) -> None:
        note_slot("MainWindow.choose_model")
        if choice == BROWSE:
            path, _ = QFileDialog.getOpenFileName(self, "Open a checkpoint", "", CHECKPOINT_FILTER)
            if not path:
                self.controls.select_model(self.settings.checkpoint)
                return
            choice = Path(path)
        self.load_model(None if choice is None else Path(str(choice)))

    @Slot(dict)
    def apply_settings_edit(self, changes: dict) -> None:
        note_slot("MainWindow.apply_settings_edit")
        if "speed" in changes and math.isinf(changes["speed"]):
            changes = {**changes, "speed": math.inf}
        self._configure(**changes)
        if "raster_neurons" in changes or "raster_channel" in changes:
            self.rasters.set_captions(self.settings)
            self.rasters.clear_history()

    @Slot(bool)
    def apply_accumulate(self, on: bool) -> None:
        note_slot("MainWindow.apply_accumulate")
        self._accumulate_chosen = True
        self._configure(accumulate_events=bool(on))

    @Slot(bool)
    def request_play(self, playing: bool) -> None:
        note_slot("MainWindow.request_play")
        self._guard(self.pipeline.play if playing else self.pipeline.pause)

    @Slot()
    def request_step(self) -> None:
        note_slot("MainWindow.request_step")
        self._guard(self.pipeline.step_once)

    @Slot(float)
    def request_seek(self, fraction: float) -> None:
        note_slot("MainWindow.request_seek")
        st = self._last_stats
        if st is None or not st.duration_us or st.t_first_us is None:
            self.status.showMessage("cannot seek yet: the recording's length is not known", 3000)
            return
        paused = not self.controls.play_button.isChecked()
        if (
            self._guard(self.pipeline.seek, int(st.t_first_us + fraction * st.duration_us))
            and paused
        ):
            self._guard(self.pipeline.step_once)  # paused: show the new time now

    @Slot(str, float)
    def apply_threshold_scale(self, layer: str, scale: float) -> None:
        note_slot("MainWindow.apply_threshold_scale")
        if self.info is None:
            return
        names = self.info.layer_names if not layer else [layer]
        scales = dict(self.settings.threshold_scale)
        for name in names:
            scales[name] = scale
            self._guard(self.pipeline.set_threshold_scale, name, scale)
        self.settings = dataclasses.replace(self.settings, threshold_scale=scales)
        self.vm.set_threshold_scale(scales)

    @Slot(str, int, int)
    def trace_neuron(self, layer: str, row: int, rows: int) -> None:
        note_slot("MainWindow.trace_neuron")
        if self.info is None:
            return
        flat = raster_row_to_flat(self.info, self.settings, layer, row, rows)
        if flat is None:
            self.status.showMessage(f"{layer}: cannot tell which neuron row {row} is", 4000)
            return
        self._set_traced(add_traced(self.vm.neurons, layer, flat))

    @Slot()
    def clear_traced_neurons(self) -> None:
        note_slot("MainWindow.clear_traced_neurons")
        self._set_traced([])

    def _auto_trace(self) -> None:
        """Trace the busiest neuron of the first and the last layer that fired, so the Vm
        panel shows something before the user picks rows (only while none are picked)."""
        self._auto_trace_at = None
        if self.info is None or self.vm.neurons:
            return
        picks: list[tuple[str, int]] = []
        active = [lr for lr in self.rasters.layers.values() if lr.ring is not None]
        active = [lr for lr in active if lr.ring.view().any()]  # type: ignore[union-attr]
        for lr in dict.fromkeys(active[:1] + active[-1:]):
            counts = lr.ring.view().sum(axis=1, dtype=np.int64)  # type: ignore[union-attr]
            row = int(counts.argmax())
            flat = raster_row_to_flat(self.info, self.settings, lr.name, row, lr.rows)
            if flat is not None:
                picks.append((lr.name, flat))
        if picks:
            self._set_traced(picks)
            self.status.showMessage("tracing the busiest neurons; click raster rows to add", 8000)

    def _set_traced(self, neurons: list[tuple[str, int]]) -> None:
        self.vm.set_neurons(neurons)
        self._configure(vm_neurons=traced_by_layer(self.vm.neurons))

    # -- timers ----------------------------------------------------------------------------
    @Slot()
    def redraw_tick(self) -> None:
        """GUI thread, <= 60 Hz: drain the mailbox into the panels and redraw them."""
        note_slot("MainWindow.redraw_tick")
        now = time.perf_counter()
        if self._last_tick is not None:
            self.max_tick_gap_s = max(self.max_tick_gap_s, now - self._last_tick)
        self._last_tick = now
        self.ticks += 1
        self._check_model()
        self.comparing.check_model()
        frames = self.bridge.take()
        if not frames:
            return
        main = [f for f in frames if f.lane == 0]
        self.comparing.take([f for f in frames if f.lane == 1])
        if not main:
            return
        panels = self.all_panels if self.info is not None else [self.events]
        for f in main:
            if f.epoch != self._epoch:
                self._epoch = f.epoch
                for p in panels:
                    p.clear_history()
                self._succeeded()
            self.seq += 1
            for p in panels:
                p.push(self.seq, f)
        for p in panels:
            if p not in self.depth_panels or p.isVisible():  # a hidden tab draws when shown
                p.render(self.seq)
        self.last_frame = main[-1]
        self.redraws += 1
        if self._auto_trace_at is not None and self.seq >= self._auto_trace_at:
            self._auto_trace()

    def _pace_redraws(self, st: PipelineStats) -> None:
        behind = st.state == "running" and 0 < st.realtime_factor < 0.95
        caught_up = st.state != "running" or st.realtime_factor >= 0.99
        interval = self.redraw_timer.interval()
        if behind and interval != SLOW_REDRAW_MS:
            self.redraw_timer.setInterval(SLOW_REDRAW_MS)
        elif caught_up and interval != REDRAW_MS:
            self.redraw_timer.setInterval(REDRAW_MS)

    def _check_model(self) -> None:
        try:
            info = self.pipeline.model_info()
        except Exception as e:
            self.show_error(str(e))
            return
        if info is None or info is self.info:
            return
        same_model = self.info is not None and model_key(info) == model_key(self.info)
        self.info = info
        self._succeeded()
        if same_model:
            for p in self.all_panels:
                p.update_info(info)
            self.controls.show_model_text(info)  # e.g. the same file loaded again
            self.controls.show_binning(info)
            self.prediction.set_binning_note(info)
            return
        if info.family != "bntt" and self.settings.temporal_exit_gamma is not None:
            self.settings = dataclasses.replace(self.settings, temporal_exit_gamma=None)
            self._guard(self.pipeline.configure, self.settings)
        short = 0 < info.bin_us <= SHORT_BIN_US
        if not self._accumulate_chosen and self.settings.accumulate_events != short:
            self._configure(accumulate_events=short)
        for p in self.all_panels:
            p.set_model(info, self.settings)
        self.send_channel_layer(self.channels.wanted_layer() or "")
        self._auto_trace_at = self.seq + 2 * info.window_steps
        self.controls.set_model(info, self.settings)
        self.controls.show_settings(self.settings)
        self.prediction.set_binning_note(info)
        self._update_title()

    @property
    def all_panels(self) -> list[Panel]:
        """Every panel of the main model: the live ones and the in-depth tabs."""
        return [*self.panels, *self.depth_panels]

    @Slot(int)
    def tab_shown(self, index: int) -> None:
        """An in-depth tab came into view: draw what it was given while hidden."""
        note_slot("MainWindow.tab_shown")
        self.sync_analysis()
        panel = self.tabs.widget(index)
        if isinstance(panel, Panel) and self.info is not None:
            panel.render(self.seq)

    def analysis_needed(self) -> bool:
        """The in-depth probes are wanted: an in-depth tab is shown, a compared model's
        column (its tabs are all in-depth) is up, or an export is running."""
        return (
            self.tabs.currentWidget() in self.depth_panels
            or self.settings.compare_checkpoint is not None
            or self.outputs.export_target is not None
        )

    def sync_analysis(self) -> None:
        """Switch the in-depth probes on only while something shows or keeps them: they
        cost nothing off, and about 0.7 ms a step on resnet_small on (docs/BENCHMARKS.md)."""
        needed = self.analysis_needed()
        if needed != self.settings.analysis:
            self._configure(analysis=needed)

    @Slot(str, int)
    def show_channel(self, layer: str, channel: int) -> None:
        """The channel panel's click: raster that channel of ``layer`` (as the raster
        group's channel spin does), showing the layer's raster if it was hidden."""
        note_slot("MainWindow.show_channel")
        chosen = {**self.settings.raster_channel, layer: int(channel)}
        self.controls.show_raster_channel(layer, int(channel))
        self.apply_settings_edit({"raster_channel": chosen})
        self.channels.set_picked_channel(int(channel))
        shown = self.rasters.shown_layers()
        if layer not in shown:
            self.rasters.show_layers([*shown, layer])

    @Slot(str)
    def send_channel_layer(self, layer: str) -> None:
        """Ask the pipeline for ``layer``'s whole spike maps (the channel panel's layer)."""
        note_slot("MainWindow.send_channel_layer")
        want = layer or None
        self.channels.set_spike_map_layer(want)
        if want != self.settings.channel_layer:
            self._configure(channel_layer=want)

    # -- compare mode (dvsapp.gui.compare.CompareMode does the work) ------------------------
    @property
    def compare(self) -> CompareColumn | None:
        """The compared model's column (None: compare mode is off)."""
        return self.comparing.column

    def compare_with(self, checkpoint: Path | None) -> None:
        """Step ``checkpoint`` beside the main model (lane 1); None ends compare mode."""
        self.comparing.compare_with(checkpoint)

    def _succeeded(self) -> None:
        """A new stream or model came: an error from an earlier open or load is over."""
        if self._await_success:
            self._await_success = False
            self.banner.clear()

    def _check_recording_failure(self, st: PipelineStats) -> None:
        """A recording failed to open while another played: say why, and show the one still
        playing (the worker kept it) as the open one again."""
        failures = getattr(st, "recording_failures", 0)
        if failures <= self._recording_failures:
            return
        self._recording_failures = failures
        self._await_success = False
        self.show_error(st.recording_error or "the recording failed to open")
        if self.live_spec is not None or st.failed_recording != self.settings.recording:
            return  # an older request: a newer one is on its way
        origin = getattr(st, "recording_origin", None)  # of the replay still open
        kept = None if origin is None or origin.path is None else Path(origin.path)
        self.settings = dataclasses.replace(self.settings, recording=kept)
        self.controls.set_recording(kept)
        self._update_title()
        self._guard(self.pipeline.configure, self.settings)

    def _check_model_failure(self, st: PipelineStats) -> None:
        """A model failed to load: say why; when it was the one asked for last, show the
        model still running (the worker kept it) as the chosen one again."""
        failures = getattr(st, "model_failures", 0)
        if failures <= self._model_failures:
            return
        self._model_failures = failures
        self._await_success = False
        self.show_error(st.model_error or "the model failed to load")
        if st.failed_model != self.settings.checkpoint:
            return  # an older request: a newer one is on its way
        info = self.info
        if info is None:
            self.controls.model_label.setText("no model loaded\n(see the error above)")
            return
        keep = info.path if info.trained else None
        self.settings = dataclasses.replace(
            self.settings,
            checkpoint=keep,
            import_options=None if keep is None else self.import_options.get(keep),
        )
        self.controls.select_model(keep)
        self.controls.forget_model(st.failed_model)
        self.controls.set_model(info, self.settings)
        self.controls.show_settings(self.settings)
        self._guard(self.pipeline.configure, self.settings)

    def _update_title(self) -> None:
        rec = self.settings.recording.name if self.settings.recording else "no recording"
        if self.live_spec is not None:
            rec = self.live_spec
        model = self.info.name if self.info else "loading model"
        model += self.comparing.title_suffix()
        self.setWindowTitle(f"dvsapp — {rec} — {model}")
        self.comparing.update_titles()

    @Slot()
    def stats_tick(self) -> None:
        """GUI thread, 4 Hz: status bar, seek position, errors; drains a missed wake-up."""
        note_slot("MainWindow.stats_tick")
        if not self.bridge.dirty:
            self.bridge.dirty = True  # a safety net: draining an empty mailbox is cheap
        try:
            st = self.pipeline.stats()
        except Exception as e:
            self.show_error(str(e))
            return
        self._last_stats = st
        self.sync_analysis()  # compare mode or an export began or ended
        self._check_model_failure(st)
        self._check_recording_failure(st)
        self._update_suggestion(st)
        self._update_mismatch(st)
        self.comparing.check_stats(st)
        self.outputs.check(st)
        for p in self.all_panels:
            p.flush_hint()
        self.status.update_stats(st, self.rates.health if self.info else None, self.info)
        if st.state == "error" and st.message:
            self.show_error(st.message)
        elif st.message and st.message != self._last_notice:
            self.status.showMessage(st.message, 6000)
        self._last_notice = st.message
        self._pace_redraws(st)
        if st.state != self._last_state:  # follow the worker (e.g. ended), not fight clicks
            self._last_state = st.state
            self.controls.set_playing(st.state not in ("paused", "ended", "error", "stopped"))
        t, t0 = st.stream_time_us, st.t_first_us
        if st.state == "ended" and st.duration_us and t0 is not None:
            t = t0 + st.duration_us  # a stopped replay may end just into a new pass
        self.controls.set_position(None if t is None or t0 is None else t - t0, st.duration_us)


def _same_file(a: Path, b: Path) -> bool:
    """The same path once made absolute (symlinks resolved where they can be)."""
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return Path(a) == Path(b)


def _one_line(error: BaseException) -> str:
    """The first non-empty line of an error's message (its type when it has none)."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    return lines[0] if lines else type(error).__name__
