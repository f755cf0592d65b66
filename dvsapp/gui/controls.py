"""The control column: source, model, device, transport, binning, early exit, rasters and
the per-layer threshold knob. Widgets only: the main window owns the settings and the
pipeline, and listens to the signals below (all emitted on the GUI thread)."""

from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from dvsapp.gui.model_combo import ModelCombo
from dvsapp.gui.slots import note_slot
from dvsapp.gui.widgets import ElidedLabel, JumpSlider
from dvsapp.pipeline import ModelInfo, PipelineSettings
from dvsapp.pipeline.advice import UNTRAINED, ModelSummary, summarise_checkpoint, training_data

SPEEDS: tuple[tuple[str, float], ...] = (
    ("0.1x", 0.1),
    ("0.25x", 0.25),
    ("0.5x", 0.5),
    ("1x", 1.0),
    ("2x", 2.0),
    ("4x", 4.0),
    ("10x", 10.0),
    ("max", math.inf),
)
SEEK_STEPS = 1000
#: Model-combo entries that are not a checkpoint path (NO_COMPARE: the compare chooser's
#: "none", which ends compare mode).
DEMO, BROWSE, NO_COMPARE = "demo", "browse", "no-compare"
#: Source-combo entries that are not a ready spec (the window asks for the rest).
RECORDING, NO_CAMERA, NETWORK, VIDEO = "recording", "no-camera", "network", "video"
WEBCAM = "webcam:0"
#: What a recording (replay) source can do; live sources say what they can.
ALL_CAPABILITIES = frozenset({"pause", "seek", "speed", "loop"})
ALL_LAYERS = "all layers"
#: The colour of a setting that leaves the model's training conditions.
DIFFERS_STYLE = "color: #ffb74d;"
#: Families whose networks are time-invariant: the state may run freely across windows.
FREE_RUNNING_FAMILIES = frozenset({"tdbn", "graph"})


def model_text(info: ModelInfo) -> str:
    """The model label: what the network is (where it comes from, for one from elsewhere),
    what it was trained on, its input, classes and device. Explicit lines, each short
    enough for the column."""
    kind = "trained" if info.trained else "untrained"
    data = training_data(info.trained_on) if info.trained else UNTRAINED
    w, h = info.input_size
    last = f"trained on: {data}\ninput {info.trained_input or f'{w}x{h}'}\n"
    last += f"{len(info.class_names)} classes, on {info.device}"
    src = info.source
    if not src:
        return f"{info.arch} ({info.family}, {kind})\n{last}"
    framework = str(src.get("framework", "imported"))
    framework = framework.upper() if framework.lower() == "nir" else framework
    first = f"{framework} graph: {src.get('file') or info.name}"
    details = []
    dt = src.get("dt_s")
    if isinstance(dt, int | float) and not isinstance(dt, bool) and dt > 0:
        details.append(f"dt {dt * 1e3:g} ms")
    if src.get("readout"):
        details.append(str(src["readout"]).replace("_", "-") + " readout")
    return "\n".join([first, ", ".join(details) or "imported", last])


def _combo_disable(combo: QComboBox, index: int, tip: str) -> None:
    item = combo.model().item(index)  # type: ignore[attr-defined]
    item.setEnabled(False)
    item.setToolTip(tip)


#: Recordings shorter than this show times to the millisecond (longer: tenths).
MS_RESOLUTION_BELOW_US = 5_000_000


def _fmt_time(us: float, ms: bool = False) -> str:
    """``m:ss.s`` (``ms``: ``m:ss.sss``)."""
    s = max(0.0, us / 1e6)
    if ms:
        return f"{int(s // 60)}:{s % 60:06.3f}"
    return f"{int(s // 60)}:{s % 60:04.1f}"


def scale_to_slider(scale: float) -> int:
    """Threshold scale 0.1 .. 10 on a log slider of -100 .. 100."""
    return round(100 * math.log10(min(max(scale, 0.1), 10.0)))


class Controls(QWidget):
    """Every control; see the signals for what the main window must do."""

    open_requested = Signal()  # show the file dialog
    source_requested = Signal(str)  # a source-combo entry's data (a spec, or RECORDING ..)
    rescan_requested = Signal()  # look for attached cameras again
    model_requested = Signal(object)  # a checkpoint Path, None for the demo, or "browse"
    settings_edited = Signal(dict)  # PipelineSettings field -> new value
    play_requested = Signal(bool)  # True: play, False: pause
    step_requested = Signal()
    seek_requested = Signal(float)  # fraction of the recording, 0 .. 1
    threshold_edited = Signal(str, float)  # layer ("" = all layers), scale
    compare_requested = Signal(object)  # a checkpoint Path, None to end compare, or "browse"
    export_toggled = Signal(bool)  # True: ask for a file and export; False: stop
    record_toggled = Signal(bool)  # True: ask for a file and record video; False: stop

    def __init__(self, shipped_models: list[Path], cuda: bool, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMinimumWidth(280)
        self.setMaximumWidth(330)
        col = QVBoxLayout(self)
        col.setContentsMargins(4, 4, 4, 4)
        col.setSpacing(6)
        col.addWidget(self._source_group())
        col.addWidget(self._model_group(shipped_models, cuda))
        col.addWidget(self._transport_group())
        col.addWidget(self._binning_group())
        col.addWidget(self._exit_group())
        col.addWidget(self._raster_group())
        col.addWidget(self._threshold_group())
        col.addWidget(self._output_group())
        col.addStretch(1)
        self.info: ModelInfo | None = None
        self._seeking = False
        self._can_seek = True

    # -- groups ----------------------------------------------------------------------------
    def _source_group(self) -> QGroupBox:
        box = QGroupBox("Source")
        form = QFormLayout(box)
        self.source = QComboBox()
        self.source.setToolTip("Where the events come from")
        self.set_cameras([], "cameras not scanned yet")
        self.source.activated.connect(self.source_chosen)
        form.addRow("kind", self.source)
        row = QHBoxLayout()
        self.recording_label = ElidedLabel("no recording", mode=Qt.TextElideMode.ElideMiddle)
        self.open_button = QPushButton("Open…")
        self.open_button.setToolTip("Open a recording (or drop a file on the window)")
        self.open_button.clicked.connect(self.open_recording_clicked)
        self.rescan_button = QPushButton("Rescan")
        self.rescan_button.setToolTip("Look for attached event cameras again")
        self.rescan_button.clicked.connect(self.rescan_clicked)
        row.addWidget(self.recording_label, 1)
        row.addWidget(self.open_button)
        row.addWidget(self.rescan_button)
        form.addRow(row)
        return box

    def set_cameras(self, cameras: list[tuple[str, str]], reason: str = "") -> None:
        """Refill the source chooser: ``cameras`` as (label, spec); none: one "no camera
        found" entry whose tooltip is ``reason``. Keeps the current kind where it can."""
        current = self.source.currentData()
        self.source.blockSignals(True)
        self.source.clear()
        self.source.addItem("Recording file", RECORDING)
        for label, spec in cameras:
            self.source.addItem(f"Event camera: {label}", spec)
        if not cameras:
            self.source.addItem("Event camera (no camera found)", NO_CAMERA)
            self.source.setItemData(
                self.source.count() - 1, reason or "no camera found", Qt.ItemDataRole.ToolTipRole
            )
        self.source.addItem("DV network stream…", NETWORK)
        self.source.addItem("Webcam (emulated DVS)", WEBCAM)
        self.source.addItem("Video file (emulated DVS)…", VIDEO)
        i = self.source.findData(current)
        self.source.setCurrentIndex(max(i, 0))
        self.source.blockSignals(False)

    def show_source(self, data: str) -> None:
        """Show ``data``'s entry as the chosen kind (without emitting)."""
        i = self.source.findData(data)
        if i >= 0:
            self.source.blockSignals(True)
            self.source.setCurrentIndex(i)
            self.source.blockSignals(False)

    def set_capabilities(self, capabilities: frozenset[str]) -> None:
        """Enable seek and loop only for a source that can do them."""
        self._can_seek = "seek" in capabilities
        if not self._can_seek:
            self.seek.setEnabled(False)
            self.seek.setToolTip("This source cannot seek")
        can_loop = "loop" in capabilities
        self.loop.setEnabled(can_loop)
        self.loop.setToolTip("" if can_loop else "This source cannot loop")
        can_speed = "speed" in capabilities
        self.speed.setEnabled(can_speed)
        self.speed.setToolTip("" if can_speed else "A live source runs in real time")

    def _model_group(self, shipped: list[Path], cuda: bool) -> QGroupBox:
        box = QGroupBox("Model")
        form = QFormLayout(box)
        self.model = ModelCombo()
        self._shipped = {Path(p) for p in shipped}
        #: What each listed checkpoint was trained on and takes (from its header).
        self.model_summaries: dict[Path, ModelSummary] = {}
        for p in shipped:
            summary = self.model_summaries[Path(p)] = summarise_checkpoint(p)
            self.model.add_model(p.stem, p, summary)
        self.model.add_model("untrained demo (resnet_small)", DEMO)
        self.model.describe(
            self.model.count() - 1, UNTRAINED, "random weights: the app's panels, not predictions"
        )
        self.model.add_model("other checkpoint or .nir…", BROWSE)
        self.model.activated.connect(self.model_chosen)
        form.addRow(self.model)  # the whole row: long names need the room
        self.device = QComboBox()
        self.device.addItem("auto", "auto")
        self.device.addItem("CPU", "cpu")
        self.device.addItem("CUDA", "cuda")
        if not cuda:
            _combo_disable(self.device, 2, "CUDA is not available to this torch")
        self.device.activated.connect(self.device_chosen)
        form.addRow("device", self.device)
        self.model_label = ElidedLabel("loading…")
        self.model_label.setObjectName("panelHint")
        form.addRow(self.model_label)
        self.compare = ModelCombo()
        self.compare.setMinimumContentsLength(12)  # beside its label: narrower than the model's
        self.compare.setToolTip("Step a second model on the same events, side by side")
        self.compare.add_model("none", NO_COMPARE)
        self.compare.describe(0, "", "one model only (ends compare mode)")
        for p in shipped:
            self.compare.add_model(p.stem, p, self.model_summaries[Path(p)])
        self.compare.add_model("other checkpoint or .nir…", BROWSE)
        self.compare.activated.connect(self.compare_chosen)
        form.addRow("compare", self.compare)
        return box

    def _transport_group(self) -> QGroupBox:
        box = QGroupBox("Playback")
        lay = QVBoxLayout(box)
        row = QHBoxLayout()
        self.play_button = QPushButton("Pause")
        self.play_button.setCheckable(True)
        self.play_button.setChecked(True)
        self.play_button.toggled.connect(self.play_toggled)
        self.step_button = QPushButton("Step")
        self.play_button.setToolTip("Play / pause (Space; F1 lists every key)")
        self.step_button.setToolTip("While paused: run exactly one model step (Right or .)")
        self.step_button.clicked.connect(self.step_clicked)
        self.speed = QComboBox()
        for text, value in SPEEDS:
            self.speed.addItem(text, value)
        self.speed.setCurrentIndex(3)
        self.speed.activated.connect(self.speed_chosen)
        self.loop = QCheckBox("loop")
        self.loop.setChecked(True)
        self.loop.toggled.connect(self.loop_toggled)
        for w in (self.play_button, self.step_button, self.speed, self.loop):
            row.addWidget(w)
        lay.addLayout(row)
        self.seek = JumpSlider(Qt.Orientation.Horizontal)
        self.seek.setRange(0, SEEK_STEPS)
        self.seek.sliderPressed.connect(self.seek_pressed)
        self.seek.sliderReleased.connect(self.seek_released)
        self.position_label = QLabel("-")
        self.position_label.setObjectName("panelHint")
        lay.addWidget(self.seek)
        lay.addWidget(self.position_label)
        return box

    def _binning_group(self) -> QGroupBox:
        box = QGroupBox("Binning")
        form = QFormLayout(box)
        self.bin_us = QSpinBox()
        self.bin_us.setRange(100, 1_000_000)
        self.bin_us.setSingleStep(1000)
        self.bin_us.setSuffix(" us")
        self.window_steps = QSpinBox()
        self.window_steps.setRange(1, 10_000)
        self.window_steps.setSuffix(" steps")
        for spin, field in ((self.bin_us, "bin_us"), (self.window_steps, "window_steps")):
            spin.setKeyboardTracking(False)
            spin.setProperty("field", field)
            spin.valueChanged.connect(self.spin_edited)
        form.addRow("bin width", self.bin_us)
        form.addRow("window", self.window_steps)
        row = QHBoxLayout()
        self.trained_binning = QLabel("trained: -")
        self.trained_binning.setObjectName("panelHint")
        self.trained_binning.setToolTip("The bin width and window the checkpoint was trained with")
        self.binning_reset = QPushButton("reset")
        self.binning_reset.setToolTip("Back to the checkpoint's own bin width and window")
        self.binning_reset.setEnabled(False)
        self.binning_reset.clicked.connect(self.binning_reset_clicked)
        row.addWidget(self.trained_binning, 1)
        row.addWidget(self.binning_reset)
        form.addRow(row)
        self.binning_differs = False
        self.policy = QComboBox()
        self.policy.addItem("reset each window", "reset")
        self.policy.addItem("free-running (tdBN, graph)", "free")
        self.policy.activated.connect(self.policy_chosen)
        form.addRow("state", self.policy)
        return box

    def _exit_group(self) -> QGroupBox:
        box = QGroupBox("Early exit")
        form = QFormLayout(box)
        self.exit_on = QCheckBox("confidence exit")
        self.exit_on.setChecked(True)
        self.exit_threshold = QDoubleSpinBox()
        self.exit_threshold.setRange(0.0, 1.0)
        self.exit_threshold.setSingleStep(0.05)
        self.exit_threshold.setDecimals(3)
        self.exit_threshold.setValue(0.9)
        self.exit_consecutive = QSpinBox()
        self.exit_consecutive.setRange(1, 1000)
        self.exit_consecutive.setValue(3)
        self.exit_metric = QComboBox()
        self.exit_metric.addItem("top probability", "prob")
        self.exit_metric.addItem("margin top - 2nd", "margin")
        self.gamma_on = QCheckBox("BNTT gamma exit")
        self.gamma = QDoubleSpinBox()
        self.gamma.setRange(0.0, 10.0)
        self.gamma.setSingleStep(0.05)
        self.gamma.setValue(0.5)
        self.exit_on.setToolTip(
            "Confidence exit: end each window's decision early once the metric stays at or "
            "above the threshold (marked 'conf' in the Prediction panel)"
        )
        self.exit_threshold.setToolTip("The metric must reach this value (0..1)")
        self.exit_consecutive.setToolTip("... for this many steps in a row")
        self.exit_metric.setToolTip(
            "top probability: the leading class's p; margin: its lead over the second"
        )
        self.gamma_on.setToolTip(
            "BNTT gamma exit (BNTT models only): exit at the step where the mean learned "
            "gamma falls below the value (marked 'γ' in the Prediction panel)"
        )
        self.gamma.setToolTip("The mean BNTT gamma below which the window exits")
        for w in (self.exit_threshold, self.exit_consecutive, self.gamma):
            w.setKeyboardTracking(False)
            w.valueChanged.connect(self.exit_edited)
        self.exit_on.toggled.connect(self.exit_edited)
        self.gamma_on.toggled.connect(self.exit_edited)
        self.exit_metric.activated.connect(self.exit_edited)
        form.addRow(self.exit_on)
        form.addRow("threshold", self.exit_threshold)
        form.addRow("for steps", self.exit_consecutive)
        form.addRow("metric", self.exit_metric)
        form.addRow(self.gamma_on, self.gamma)
        return box

    def _raster_group(self) -> QGroupBox:
        box = QGroupBox("Rasters")
        form = QFormLayout(box)
        self.raster_neurons = QSpinBox()
        self.raster_neurons.setRange(8, 4096)
        self.raster_neurons.setValue(128)
        self.raster_neurons.setKeyboardTracking(False)
        self.raster_neurons.setProperty("field", "raster_neurons")
        self.raster_neurons.valueChanged.connect(self.spin_edited)
        form.addRow("neurons shown", self.raster_neurons)
        self.channel_layer = QComboBox()
        self.channel_layer.activated.connect(self.channel_layer_chosen)
        self.channel = QSpinBox()
        self.channel.setRange(-1, 0)
        self.channel.setSpecialValueText("sampled")
        self.channel.setKeyboardTracking(False)
        self.channel.setToolTip("A conv layer: show one channel's map instead of a sample")
        self.channel.valueChanged.connect(self.channel_edited)
        form.addRow("conv layer", self.channel_layer)
        form.addRow("channel", self.channel)
        self._channels: dict[str, int | None] = {}
        return box

    def _threshold_group(self) -> QGroupBox:
        box = QGroupBox("Threshold scale (provoke collapse)")
        lay = QVBoxLayout(box)
        self.threshold_layer = QComboBox()
        self.threshold_layer.activated.connect(self.threshold_layer_chosen)
        lay.addWidget(self.threshold_layer)
        row = QHBoxLayout()
        self.threshold_slider = QSlider(Qt.Orientation.Horizontal)
        self.threshold_slider.setRange(-100, 100)
        self.threshold_slider.valueChanged.connect(self.threshold_slid)
        self.threshold_spin = QDoubleSpinBox()
        self.threshold_spin.setRange(0.1, 10.0)
        self.threshold_spin.setDecimals(2)
        self.threshold_spin.setSingleStep(0.1)
        self.threshold_spin.setValue(1.0)
        self.threshold_spin.setSuffix(" x")
        self.threshold_spin.setKeyboardTracking(False)
        self.threshold_spin.valueChanged.connect(self.threshold_typed)
        self.threshold_reset = QPushButton("1x")
        self.threshold_reset.setToolTip("Back to the trained threshold")
        self.threshold_reset.clicked.connect(self.threshold_reset_clicked)
        row.addWidget(self.threshold_slider, 1)
        row.addWidget(self.threshold_spin)
        row.addWidget(self.threshold_reset)
        lay.addLayout(row)
        self._scales: dict[str, float] = {}
        return box

    def _output_group(self) -> QGroupBox:
        box = QGroupBox("Export and record")
        form = QFormLayout(box)
        self.export_button = QPushButton("Export…")
        self.export_button.setCheckable(True)
        self.export_button.setToolTip(
            "Write one row per model step (prediction, rates, in-depth probes) to a Parquet "
            "file; press again to close it"
        )
        self.export_button.toggled.connect(self.export_button_toggled)
        self.export_label = ElidedLabel("", mode=Qt.TextElideMode.ElideMiddle)
        self.export_label.setObjectName("panelHint")
        form.addRow(self.export_button, self.export_label)
        self.record_button = QPushButton("Record video…")
        self.record_button.setCheckable(True)
        self.record_button.setToolTip("Record the window as an MP4 video; press again to stop")
        self.record_button.toggled.connect(self.record_button_toggled)
        self.record_label = ElidedLabel("", mode=Qt.TextElideMode.ElideMiddle)
        self.record_label.setObjectName("panelHint")
        form.addRow(self.record_button, self.record_label)
        return box

    # -- updates from the window -----------------------------------------------------------
    def set_model(self, info: ModelInfo, settings: PipelineSettings) -> None:
        """Fill the model-dependent controls (defaults: the checkpoint's bin and T)."""
        self.info = info
        self.show_model_text(info)
        for spin, value in (
            (self.bin_us, settings.bin_us or info.bin_us or self.bin_us.minimum()),
            (self.window_steps, settings.window_steps or info.window_steps),
        ):
            spin.blockSignals(True)
            spin.setValue(int(value))
            spin.blockSignals(False)
        counted = bool(info.event_count) or info.bin_us <= 0
        self.bin_us.setEnabled(not counted)
        self.bin_us.setToolTip(
            f"this model bins by event count ({info.event_count} events per frame)"
            if counted
            else "time per frame (default: the checkpoint's)"
        )
        free = info.family in FREE_RUNNING_FAMILIES
        _set_item_enabled(self.policy, 1, free)
        self.policy.setItemData(
            1,
            "" if free else "only time-invariant networks (tdBN, graph) may run freely",
            Qt.ItemDataRole.ToolTipRole,
        )
        bntt = info.family == "bntt"
        self.gamma_on.setEnabled(bntt)
        self.gamma.setEnabled(bntt)
        if not bntt:  # the option does not apply: off, not an error
            self.gamma_on.blockSignals(True)
            self.gamma_on.setChecked(False)
            self.gamma_on.blockSignals(False)
        self.show_binning(info)
        self.channel_layer.clear()
        for name in info.layer_names:
            if len(info.layer_shapes.get(name, ())) == 3:
                self.channel_layer.addItem(name)
        self._channels = dict(settings.raster_channel)
        self.channel_layer_chosen()
        self.threshold_layer.clear()
        self.threshold_layer.addItem(ALL_LAYERS)
        self.threshold_layer.addItems(info.layer_names)
        self._scales = dict(settings.threshold_scale)
        self.threshold_layer_chosen()

    def show_binning(self, info: ModelInfo) -> None:
        """The checkpoint's own bin width and window beside the spins; marked (and the reset
        enabled) when the running ones differ."""
        self.info = info
        tb, tw = info.trained_bin_us, info.trained_window_steps
        bins = f"{tb / 1000:g} ms" if tb else "count bins"
        steps = f"{tw} steps" if tw else "?"
        differs = bool(tb and info.bin_us != tb) or bool(tw and info.window_steps != tw)
        self.binning_differs = differs
        self.trained_binning.setText(("≠ " if differs else "") + f"trained: {bins}, {steps}")
        self.trained_binning.setStyleSheet(DIFFERS_STYLE if differs else "")
        self.binning_reset.setEnabled(differs)
        for spin, value in ((self.bin_us, info.bin_us), (self.window_steps, info.window_steps)):
            if value and spin.value() != value:
                spin.blockSignals(True)
                spin.setValue(int(value))
                spin.blockSignals(False)

    def show_model_text(self, info: ModelInfo) -> None:
        """The model label for ``info``."""
        # Explicit lines, no word wrap: a wrapped label in this form gets one line's height
        # once the panel is full, and its text was clipped.
        self.model_label.setText(model_text(info))
        tip = str(info.path) if info.path else info.name
        if info.trained_on:
            tip += f"\ntrained on: {info.trained_on}"
        self.model_label.setToolTip(tip)

    def show_settings(self, s: PipelineSettings) -> None:
        """Make the controls show ``s`` (without emitting anything)."""
        values: list[tuple[QWidget, object]] = [
            (self.exit_on, s.exit_threshold is not None),
            (self.exit_consecutive, s.exit_consecutive),
            (self.gamma_on, s.temporal_exit_gamma is not None),
            (self.loop, s.loop),
            (self.raster_neurons, s.raster_neurons),
        ]
        if s.exit_threshold is not None:
            values.append((self.exit_threshold, s.exit_threshold))
        if s.temporal_exit_gamma is not None:
            values.append((self.gamma, s.temporal_exit_gamma))
        for w, v in values:
            w.blockSignals(True)
            if isinstance(w, QCheckBox):
                w.setChecked(bool(v))
            else:
                w.setValue(v)  # type: ignore[attr-defined]
            w.blockSignals(False)
        for combo, data in (
            (self.exit_metric, s.exit_metric),
            (self.device, s.device),
            (self.policy, s.policy),
            (self.speed, s.speed),
        ):
            i = combo.findData(data)
            if i >= 0:
                combo.setCurrentIndex(i)
        for w in (self.exit_threshold, self.exit_consecutive, self.exit_metric):
            w.setEnabled(s.exit_threshold is not None)

    def set_recording(self, path: Path | None) -> None:
        """Show the open recording's name."""
        self.recording_label.setText(path.name if path else "no recording")
        self.recording_label.setToolTip(str(path) if path else "")

    def set_source_label(self, text: str) -> None:
        """Show a live source's spec where the recording's name goes."""
        self.recording_label.setText(text)
        self.recording_label.setToolTip(text)

    def set_position(self, t_us: float | None, duration_us: float | None) -> None:
        """Move the seek slider (unless the user holds it)."""
        if self._can_seek:
            self.seek.setEnabled(bool(duration_us))
            self.seek.setToolTip(
                "" if duration_us else "Seeking works once the recording's length is known"
            )
        if t_us is None:
            self.position_label.setText("-")
            return
        if duration_us:
            if not self._seeking:
                self.seek.blockSignals(True)
                self.seek.setValue(round(SEEK_STEPS * min(max(t_us / duration_us, 0), 1)))
                self.seek.blockSignals(False)
            ms = duration_us < MS_RESOLUTION_BELOW_US
            self.position_label.setText(f"{_fmt_time(t_us, ms)} / {_fmt_time(duration_us, ms)}")
        else:
            self.position_label.setText(_fmt_time(t_us))

    def set_playing(self, playing: bool) -> None:
        """Reflect the play state without emitting."""
        self.play_button.blockSignals(True)
        self.play_button.setChecked(playing)
        self.play_button.setText("Pause" if playing else "Play")
        self.play_button.blockSignals(False)
        self.step_button.setEnabled(not playing)

    def select_model(self, checkpoint: Path | None) -> None:
        """Show ``checkpoint`` (None: the demo) as the chosen model, adding it if new."""
        data: object = DEMO if checkpoint is None else Path(checkpoint)
        for i in range(self.model.count()):
            if self.model.itemData(i) == data:
                self.model.setCurrentIndex(i)
                return
        assert checkpoint is not None
        path = Path(checkpoint)
        summary = None
        if path.suffix.lower() == ".safetensors":
            summary = self.model_summaries[path] = summarise_checkpoint(path)
        self.model.insert_model(0, path.name, path, summary)
        if summary is None:
            self.model.describe(0, "", str(checkpoint))
        self.model.setCurrentIndex(0)
        if self.compare.findData(path) < 0:  # the compare chooser lists the same models
            self.compare.insert_model(1, path.name, path, summary)
            if summary is None:
                self.compare.describe(1, "", str(checkpoint))

    def select_compare(self, checkpoint: Path | None) -> None:
        """Show ``checkpoint`` (None: "none") as the compared model, adding it if new;
        emits nothing."""
        data: object = NO_COMPARE if checkpoint is None else Path(checkpoint)
        self.compare.blockSignals(True)
        try:
            for i in range(self.compare.count()):
                if self.compare.itemData(i) == data:
                    self.compare.setCurrentIndex(i)
                    return
            assert checkpoint is not None
            path = Path(checkpoint)
            summary = self.model_summaries.get(path)
            if summary is None and path.suffix.lower() == ".safetensors":
                summary = self.model_summaries[path] = summarise_checkpoint(path)
            self.compare.insert_model(1, path.name, path, summary)
            if summary is None:
                self.compare.describe(1, "", str(checkpoint))
            self.compare.setCurrentIndex(1)
        finally:
            self.compare.blockSignals(False)

    def set_exporting(self, on: bool, text: str = "") -> None:
        """Show the export button on or off (without emitting) and ``text`` beside it."""
        _set_checked(self.export_button, on)
        self.export_button.setText("Stop export" if on else "Export…")
        self.show_export_text(text)

    def show_export_text(self, text: str) -> None:
        """What the export is doing (rows written, the file)."""
        if text != self.export_label.text():
            self.export_label.setText(text)

    def set_recording_video(self, on: bool, text: str = "") -> None:
        """Show the record button on or off (without emitting) and ``text`` beside it."""
        _set_checked(self.record_button, on)
        self.record_button.setText("Stop video" if on else "Record video…")
        if text != self.record_label.text():
            self.record_label.setText(text)

    def show_raster_channel(self, layer: str, channel: int | None) -> None:
        """Show ``layer``'s raster channel (None: sampled) in the raster group, as if chosen
        there; emits nothing."""
        self._channels[layer] = channel
        i = self.channel_layer.findText(layer)
        if i < 0:
            return
        self.channel_layer.setCurrentIndex(i)
        self.channel_layer_chosen()

    def forget_model(self, checkpoint: Path | None) -> None:
        """Drop the entry added for ``checkpoint`` (one that failed to load); the models in
        ``models/`` stay listed."""
        if checkpoint is None or Path(checkpoint) in self._shipped:
            return
        for i in range(self.model.count()):
            if self.model.itemData(i) == Path(checkpoint) and i != self.model.currentIndex():
                self.model.removeItem(i)
                return

    # -- slots -----------------------------------------------------------------------------
    @Slot()
    def open_recording_clicked(self) -> None:
        note_slot("Controls.open_recording_clicked")
        self.open_requested.emit()

    @Slot(int)
    def source_chosen(self, index: int) -> None:
        note_slot("Controls.source_chosen")
        data = self.source.itemData(index)
        if data is not None:
            self.source_requested.emit(str(data))

    @Slot()
    def rescan_clicked(self) -> None:
        note_slot("Controls.rescan_clicked")
        self.rescan_requested.emit()

    @Slot(int)
    def model_chosen(self, index: int) -> None:
        note_slot("Controls.model_chosen")
        data = self.model.itemData(index)
        self.model_requested.emit(None if data == DEMO else data)

    @Slot(int)
    def compare_chosen(self, index: int) -> None:
        note_slot("Controls.compare_chosen")
        data = self.compare.itemData(index)
        self.compare_requested.emit(None if data == NO_COMPARE else data)

    @Slot(bool)
    def export_button_toggled(self, on: bool) -> None:
        note_slot("Controls.export_button_toggled")
        self.export_toggled.emit(bool(on))

    @Slot(bool)
    def record_button_toggled(self, on: bool) -> None:
        note_slot("Controls.record_button_toggled")
        self.record_toggled.emit(bool(on))

    @Slot(int)
    def device_chosen(self, index: int) -> None:
        note_slot("Controls.device_chosen")
        self.settings_edited.emit({"device": self.device.itemData(index)})

    @Slot(bool)
    def play_toggled(self, playing: bool) -> None:
        note_slot("Controls.play_toggled")
        self.set_playing(playing)
        self.play_requested.emit(playing)

    @Slot()
    def step_clicked(self) -> None:
        note_slot("Controls.step_clicked")
        self.step_requested.emit()

    @Slot(int)
    def speed_chosen(self, index: int) -> None:
        note_slot("Controls.speed_chosen")
        self.settings_edited.emit({"speed": float(self.speed.itemData(index))})

    @Slot(bool)
    def loop_toggled(self, on: bool) -> None:
        note_slot("Controls.loop_toggled")
        self.settings_edited.emit({"loop": bool(on)})

    @Slot()
    def seek_pressed(self) -> None:
        note_slot("Controls.seek_pressed")
        self._seeking = True

    @Slot()
    def seek_released(self) -> None:
        note_slot("Controls.seek_released")
        self._seeking = False
        self.seek_requested.emit(self.seek.value() / SEEK_STEPS)

    @Slot(int)
    def spin_edited(self, value: int) -> None:
        note_slot("Controls.spin_edited")
        field = self.sender().property("field")
        self.settings_edited.emit({str(field): int(value)})

    @Slot()
    def binning_reset_clicked(self) -> None:
        note_slot("Controls.binning_reset_clicked")
        self.settings_edited.emit({"bin_us": None, "window_steps": None})

    @Slot(int)
    def policy_chosen(self, index: int) -> None:
        note_slot("Controls.policy_chosen")
        self.settings_edited.emit({"policy": self.policy.itemData(index)})

    @Slot()
    def exit_edited(self) -> None:
        note_slot("Controls.exit_edited")
        on = self.exit_on.isChecked()
        for w in (self.exit_threshold, self.exit_consecutive, self.exit_metric):
            w.setEnabled(on)
        gamma = self.gamma_on.isChecked() and self.gamma_on.isEnabled()
        self.settings_edited.emit(
            {
                "exit_threshold": float(self.exit_threshold.value()) if on else None,
                "exit_consecutive": int(self.exit_consecutive.value()),
                "exit_metric": self.exit_metric.currentData(),
                "temporal_exit_gamma": float(self.gamma.value()) if gamma else None,
            }
        )

    @Slot()
    def channel_layer_chosen(self) -> None:
        note_slot("Controls.channel_layer_chosen")
        layer = self.channel_layer.currentText()
        has = bool(layer) and self.info is not None
        self.channel.setEnabled(has)
        if not has:
            return
        assert self.info is not None
        channels = self.info.layer_shapes[layer][0]
        ch = self._channels.get(layer)
        self.channel.blockSignals(True)
        self.channel.setRange(-1, channels - 1)
        self.channel.setValue(-1 if ch is None else ch)
        self.channel.blockSignals(False)

    @Slot(int)
    def channel_edited(self, value: int) -> None:
        note_slot("Controls.channel_edited")
        layer = self.channel_layer.currentText()
        if not layer:
            return
        self._channels[layer] = None if value < 0 else int(value)
        chosen = {k: v for k, v in self._channels.items() if v is not None}
        self.settings_edited.emit({"raster_channel": chosen})

    @Slot()
    def threshold_layer_chosen(self) -> None:
        note_slot("Controls.threshold_layer_chosen")
        layer = self.threshold_layer.currentText()
        scale = self._scales.get(layer, 1.0) if layer != ALL_LAYERS else 1.0
        self._show_scale(scale)

    def _show_scale(self, scale: float) -> None:
        for w, v in ((self.threshold_slider, scale_to_slider(scale)), (self.threshold_spin, scale)):
            w.blockSignals(True)
            w.setValue(v)
            w.blockSignals(False)

    @Slot(int)
    def threshold_slid(self, value: int) -> None:
        note_slot("Controls.threshold_slid")
        self._apply_scale(10 ** (value / 100))

    @Slot(float)
    def threshold_typed(self, value: float) -> None:
        note_slot("Controls.threshold_typed")
        self._apply_scale(value)

    @Slot()
    def threshold_reset_clicked(self) -> None:
        note_slot("Controls.threshold_reset_clicked")
        self._apply_scale(1.0)

    def _apply_scale(self, scale: float) -> None:
        scale = round(min(max(scale, 0.1), 10.0), 3)
        self._show_scale(scale)
        layer = self.threshold_layer.currentText()
        if self.info is None or not layer:
            return
        names = self.info.layer_names if layer == ALL_LAYERS else [layer]
        for n in names:
            self._scales[n] = scale
        self.threshold_edited.emit("" if layer == ALL_LAYERS else layer, scale)


def _set_checked(button: QPushButton, on: bool) -> None:
    button.blockSignals(True)
    button.setChecked(on)
    button.blockSignals(False)


def _set_item_enabled(combo: QComboBox, index: int, on: bool) -> None:
    item = combo.model().item(index)  # type: ignore[attr-defined]
    item.setEnabled(on)
