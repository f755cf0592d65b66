"""Compare mode's second column: the compared model's (lane 1) prediction, rasters and firing
rates (and, in tabs, its Vm histogram and synaptic operations), built from the same panel
classes as the main model's and fed only lane-1 frames.

The column keeps its own step count and stream epoch (a lane steps at its own binning), so
its history is cleared and scrolled exactly as the main panels' are in
:meth:`~dvsapp.gui.main_window.MainWindow.redraw_tick`.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QSplitter, QTabWidget, QVBoxLayout, QWidget

from dvsapp.gui.panels.base import Panel
from dvsapp.gui.panels.prediction import PredictionPanel
from dvsapp.gui.panels.rasters import RasterPanel
from dvsapp.gui.panels.rates import RatesPanel
from dvsapp.gui.panels.synops import SynopsPanel
from dvsapp.gui.panels.vm_hist import VmHistogramPanel
from dvsapp.gui.slots import note_slot
from dvsapp.gui.widgets import ElidedLabel
from dvsapp.pipeline import ModelInfo, PipelineSettings, StepFrame

#: The colour of the note that the two models bin differently.
NOTE_STYLE = "color: #ffb74d;"
#: Column titles (the model's name follows).
MAIN_TITLE, COMPARE_TITLE = "main", "compared"


def column_title(label: str, info: ModelInfo | None) -> str:
    """A column's title: which model it is and its name."""
    return f"{label}: {info.name if info is not None else 'loading…'}"


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
        self.vm_hist = VmHistogramPanel()
        self.synops = SynopsPanel()
        self.panels: list[Panel] = [self.prediction, self.rasters, self.rates]
        #: In tabs under the rates, drawn while shown.
        self.depth_panels: list[Panel] = [self.vm_hist, self.synops]
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.vm_hist, "Vm histogram")
        self.tabs.addTab(self.synops, "Synaptic ops")
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
        """The compared model was (re)loaded: lay every panel out for it."""
        self.info = info
        self.set_title(info)
        for p in self.all_panels:
            p.set_model(info, settings)
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
