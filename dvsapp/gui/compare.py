"""Compare mode's second column: the compared model's (lane 1) prediction, rasters and firing
rates (and, in tabs, its Vm traces, Vm histogram, channels and synaptic operations), built
from the same panel classes as the main model's and fed only lane-1 frames. A click on one of
its raster rows traces that neuron's Vm (``PipelineSettings.compare_vm_neurons``), a click on
one of its channels rasters that channel (``compare_raster_channel``), both of the compared
model.

The column keeps its own step count and stream epoch (a lane steps at its own binning), so
its history is cleared and scrolled exactly as the main panels' are in
:meth:`~dvsapp.gui.main_window.MainWindow.redraw_tick`. :class:`CompareMode` is the window's
side of it: the chooser's requests, the column's life, the load-error notice and the note.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Qt, Slot
from PySide6.QtWidgets import QFileDialog, QSplitter, QTabWidget, QVBoxLayout, QWidget

from dvsapp.gui.controls import BROWSE
from dvsapp.gui.neurons import add_traced, raster_row_to_flat, traced_by_layer
from dvsapp.gui.panels.base import Panel
from dvsapp.gui.panels.channels import ChannelPanel
from dvsapp.gui.panels.prediction import PredictionPanel
from dvsapp.gui.panels.rasters import RasterPanel
from dvsapp.gui.panels.rates import RatesPanel
from dvsapp.gui.panels.synops import SynopsPanel
from dvsapp.gui.panels.vm_hist import VmHistogramPanel
from dvsapp.gui.panels.vm_traces import VmPanel
from dvsapp.gui.pipeline_port import model_key
from dvsapp.gui.slots import note_slot
from dvsapp.gui.widgets import ElidedLabel
from dvsapp.pipeline import ModelInfo, PipelineSettings, PipelineStats, StepFrame

if TYPE_CHECKING:
    from dvsapp.gui.main_window import MainWindow

#: The colour of the note that the two models bin differently.
NOTE_STYLE = "color: #ffb74d;"
#: Column titles (the model's name follows).
MAIN_TITLE, COMPARE_TITLE = "main", "compared"
#: The compared column's share of the width when it appears.
COMPARE_SHARE = 0.45


def column_title(label: str, info: ModelInfo | None) -> str:
    """A column's title: which model it is and its name."""
    return f"{label}: {info.name if info is not None else 'loading…'}"


def lane_view(settings: PipelineSettings) -> PipelineSettings:
    """The settings as the compared model's panels read them: its own rastered channels,
    spike-map layer and traced neurons in the main model's fields."""
    return dataclasses.replace(
        settings,
        raster_channel=dict(settings.compare_raster_channel),
        channel_layer=settings.compare_channel_layer,
        vm_neurons=dict(settings.compare_vm_neurons),
    )


def title_label() -> ElidedLabel:
    """The label that names a column's model (elided, whole in its tooltip)."""
    label = ElidedLabel("", mode=Qt.TextElideMode.ElideMiddle, min_chars=12)
    label.setObjectName("columnTitle")
    label.setStyleSheet("font-weight: bold; padding: 1px 4px;")
    return label


class CompareColumn(QWidget):
    """The compared model's panels, titled with its name; a note when its binning differs
    from the main model's. :meth:`take` draws a batch of lane-1 frames."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("CompareColumn")
        col = QVBoxLayout(self)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(1)
        self.title = title_label()
        col.addWidget(self.title)
        self.note = ElidedLabel("", min_chars=8)
        self.note.setObjectName("compareNote")
        self.note.setStyleSheet(NOTE_STYLE)
        self.note.setVisible(False)
        col.addWidget(self.note)
        self.prediction = PredictionPanel()
        self.rasters = RasterPanel()
        self.rates = RatesPanel()
        self.vm = VmPanel()
        self.vm.row_of = self.rasters.row_of
        self.vm.traced_changed.connect(self.rasters.mark_traced)
        self.vm_hist = VmHistogramPanel()
        self.channels = ChannelPanel()
        self.synops = SynopsPanel()
        self.panels: list[Panel] = [self.prediction, self.rasters, self.rates, self.vm]
        #: In tabs under the rates, drawn while shown.
        self.depth_panels: list[Panel] = [self.vm_hist, self.channels, self.synops]
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.vm, "Vm traces")
        self.tabs.addTab(self.vm_hist, "Vm histogram")
        self.tabs.addTab(self.channels, "Channels")
        self.tabs.addTab(self.synops, "Synaptic ops")
        # the Vm histogram first: a collapsed layer shows there at once, traces need a click
        self.tabs.setCurrentWidget(self.vm_hist)
        self.tabs.currentChanged.connect(self.tab_shown)
        side = QSplitter(Qt.Orientation.Vertical)
        side.addWidget(self.rates)
        side.addWidget(self.tabs)
        side.setSizes([300, 280])
        bottom = QSplitter(Qt.Orientation.Horizontal)
        bottom.addWidget(self.rasters)
        bottom.addWidget(side)
        bottom.setSizes([360, 260])
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(self.prediction)
        self.splitter.addWidget(bottom)
        self.splitter.setSizes([370, 580])
        for s in (side, bottom, self.splitter):
            s.setChildrenCollapsible(False)
        col.addWidget(self.splitter, 1)
        self.info: ModelInfo | None = None
        self.seq = 0  # lane-1 frames drawn, monotonic for the column's lifetime
        self.epoch: int | None = None  # StepFrame.epoch of the lane-1 stream drawn now
        self.frames = 0  # lane-1 frames taken
        self.set_title(None)

    def set_title(self, info: ModelInfo | None) -> None:
        self.title.setText(column_title(COMPARE_TITLE, info))

    @property
    def all_panels(self) -> list[Panel]:
        return [*self.panels, *self.depth_panels]

    @Slot(int)
    def tab_shown(self, index: int) -> None:
        """A tab came into view: draw what it was given while hidden."""
        note_slot("CompareColumn.tab_shown")
        panel = self.tabs.widget(index)
        if isinstance(panel, Panel) and self.info is not None:
            panel.render(self.seq)

    def set_model(self, info: ModelInfo, settings: PipelineSettings) -> None:
        """The compared model was (re)loaded: lay every panel out for it (``settings`` are
        the window's; the column reads its lane's fields, :func:`lane_view`)."""
        self.info = info
        self.set_title(info)
        view = lane_view(settings)
        for p in self.all_panels:
            p.set_model(info, view)
        self.prediction.set_binning_note(info)

    def update_info(self, info: ModelInfo) -> None:
        """Same compared model, new details (e.g. which neurons its rasters carry)."""
        self.info = info
        for p in self.all_panels:
            p.update_info(info)
        self.prediction.set_binning_note(info)

    def set_note(self, text: str) -> None:
        """How the two models' binning differs ("" hides the note)."""
        if text != self.note.text():
            self.note.setText(text)
        self.note.setVisible(bool(text))

    def clear_history(self) -> None:
        for p in self.all_panels:
            p.clear_history()

    def take(self, frames: list[StepFrame]) -> bool:
        """Push lane-1 ``frames`` (oldest first) into the panels and redraw them; False
        while no model is laid out (the frames are dropped)."""
        if self.info is None or not frames:
            return False
        for f in frames:
            if f.epoch != self.epoch:
                if self.epoch is not None:
                    self.clear_history()
                self.epoch = f.epoch
            self.seq += 1
            self.frames += 1
            for p in self.all_panels:
                p.push(self.seq, f)
        for p in self.all_panels:
            if p not in self.depth_panels or p.isVisible():
                p.render(self.seq)
        return True

    def flush_hints(self) -> None:
        for p in self.all_panels:
            p.flush_hint()


class CompareMode(QObject):
    """Compare mode for one window: the chooser's requests, the second column beside
    ``window.main_column`` (made when lane 1 has a model, removed when it has none), the
    one-line notice of a compare load error and the binning note. GUI thread only."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.column: CompareColumn | None = None
        self._error_seen = ""  # the compare error shown last (shown once)

    @Slot(object)
    def choose(self, choice: object) -> None:
        """The compare chooser: a checkpoint, None ("none": end compare mode) or browse."""
        note_slot("CompareMode.choose")
        from dvsapp.gui.main_window import CHECKPOINT_FILTER  # (imports this module)

        win = self.window
        if choice == BROWSE:
            path, _ = QFileDialog.getOpenFileName(
                win, "Compare with a checkpoint", "", CHECKPOINT_FILTER
            )
            if not path:
                win.controls.select_compare(win.settings.compare_checkpoint)
                return
            choice = Path(path)
        self.compare_with(None if choice is None else Path(str(choice)))

    def compare_with(self, checkpoint: Path | None) -> None:
        """Step ``checkpoint`` beside the main model (lane 1); None ends compare mode and
        removes the second column at once. A load failure shows as a notice."""
        win = self.window
        path = None if checkpoint is None else Path(checkpoint)
        options = None if path is None else win.import_options.get(path)
        win.settings = dataclasses.replace(
            win.settings,
            compare_checkpoint=path,
            compare_import_options=options,
            compare_raster_channel={},  # picks on the model compared before
            compare_channel_layer=None,
            compare_vm_neurons={},
        )
        win.controls.select_compare(path)
        self._error_seen = ""
        win.compare_notice.clear()
        if path is None:
            self.remove()
        win._guard(win.pipeline.compare_model, path, options)
        win.sync_analysis()  # the column's panels are in-depth ones

    def check_model(self) -> None:
        """Redraw tick: lay out (or out again, or remove) the column for lane 1's model."""
        win = self.window
        try:
            info = win.pipeline.model_info(1)
        except Exception as e:
            win.show_error(str(e))
            return
        column = self.column
        if info is None or win.settings.compare_checkpoint is None:
            if column is not None and (info is None or info is not column.info):
                self.remove()
            return
        if column is not None and info is column.info:
            return
        if column is None:
            column = self.column = CompareColumn()
            column.channels.channel_clicked.connect(self.show_channel)
            column.channels.layer_changed.connect(self.send_channel_layer)
            column.rasters.neuron_clicked.connect(self.trace_neuron)
            column.vm.cleared.connect(self.clear_traced)
            win.columns.addWidget(column)
            width = max(win.columns.width(), 2)
            other = round(width * COMPARE_SHARE)
            win.columns.setSizes([width - other, other])
            win.main_title.setVisible(True)
        elif column.info is not None and model_key(info) == model_key(column.info):
            column.update_info(info)
            return
        column.set_model(info, win.settings)  # its Vm panel starts with no traces
        if win.settings.compare_vm_neurons:
            win._configure(compare_vm_neurons={})
        self.send_channel_layer(column.channels.wanted_layer() or "")
        win.compare_notice.clear()
        win._update_title()

    @Slot(str, int, int)
    def trace_neuron(self, layer: str, row: int, rows: int) -> None:
        """A click on the compared column's raster row: trace that neuron's Vm there."""
        note_slot("CompareMode.trace_neuron")
        column, win = self.column, self.window
        if column is None or column.info is None:
            return
        flat = raster_row_to_flat(column.info, lane_view(win.settings), layer, row, rows)
        if flat is None:
            win.status.showMessage(f"{layer}: cannot tell which neuron row {row} is", 4000)
            return
        self._set_traced(add_traced(column.vm.neurons, layer, flat))

    @Slot()
    def clear_traced(self) -> None:
        """The compared column's Vm panel was cleared."""
        note_slot("CompareMode.clear_traced")
        self._set_traced([])

    def _set_traced(self, neurons: list[tuple[str, int]]) -> None:
        column = self.column
        if column is not None:
            column.vm.set_neurons(neurons)
            neurons = column.vm.neurons
        self.window._configure(compare_vm_neurons=traced_by_layer(neurons))

    @Slot(str, int)
    def show_channel(self, layer: str, channel: int) -> None:
        """The compared column's channel click: raster that channel of the compared model's
        ``layer``, showing the layer's raster there if it was hidden."""
        note_slot("CompareMode.show_channel")
        win, column = self.window, self.column
        chosen = {**win.settings.compare_raster_channel, layer: int(channel)}
        win._configure(compare_raster_channel=chosen)
        if column is None:
            return
        column.rasters.set_captions(lane_view(win.settings))
        column.rasters.clear_history()
        column.channels.set_picked_channel(int(channel))
        shown = column.rasters.shown_layers()
        if layer not in shown:
            column.rasters.show_layers([*shown, layer])

    @Slot(str)
    def send_channel_layer(self, layer: str) -> None:
        """Ask the pipeline for the compared model's ``layer`` spike maps (its Channels tab)."""
        note_slot("CompareMode.send_channel_layer")
        want = layer or None
        if self.column is not None:
            self.column.channels.set_spike_map_layer(want)
        if want != self.window.settings.compare_channel_layer:
            self.window._configure(compare_channel_layer=want)

    def take(self, frames: list[StepFrame]) -> None:
        """Lane-1 frames of this tick (dropped while there is no column)."""
        if self.column is not None and frames:
            self.column.take(frames)

    def remove(self) -> None:
        """Take the second column away (compare mode is off)."""
        column, self.column = self.column, None
        self.window.main_title.setVisible(False)
        if column is not None:
            column.hide()
            column.deleteLater()  # in the GUI thread, by Qt (not by a collector elsewhere)
            self.window._update_title()

    def check_stats(self, st: PipelineStats) -> None:
        """Stats tick: a compare load error (once per error) as a notice, and compare mode
        off (the pipeline runs the main model alone then); the binning note."""
        win = self.window
        error = st.compare_error
        if error and error != self._error_seen:
            self._error_seen = error
            text = f"Compare mode: {error} (the main model keeps running)"
            win.compare_notice.show_notice(("compare", error), text, "", None, error)
            win.settings = dataclasses.replace(
                win.settings, compare_checkpoint=None, compare_import_options=None
            )
            win.controls.select_compare(None)
            self.remove()
        if self.column is not None:
            self.column.set_note(st.compare_note)
            self.column.flush_hints()

    def title_suffix(self) -> str:
        """What the window title adds in compare mode (" vs NAME")."""
        info = None if self.column is None else self.column.info
        return "" if info is None else f" vs {info.name}"

    def update_titles(self) -> None:
        """Each column's title names its model."""
        self.window.main_title.setText(column_title(MAIN_TITLE, self.window.info))
        if self.column is not None:
            self.column.set_title(self.column.info)
