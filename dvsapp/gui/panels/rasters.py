"""Per-layer spike rasters: neuron x step, scrolling, one uint8 ring buffer per layer drawn
by an ImageItem (constant cost however many spikes; DESIGN.md pyqtgraph notes)."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Signal, Slot
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QToolButton, QWidget

from dvsapp.gui import theme
from dvsapp.gui.panels.base import (
    HISTORY,
    STEP_AXIS,
    X_RANGE,
    CodesImage,
    Panel,
    canvas,
    rgba_lut,
    show_codes,
    style_plot,
)
from dvsapp.gui.ring import ColumnRing
from dvsapp.gui.slots import note_slot
from dvsapp.pipeline import ModelInfo, PipelineSettings, StepFrame

LABEL_WIDTH = 118
#: Opacity (0..255) of the line across a traced row.
MARK_LINE_ALPHA = 90


class LayerRaster:
    """One layer's plot, image and history."""

    def __init__(self, name: str, colour: str, plot: pg.PlotItem, label: pg.LabelItem) -> None:
        self.name = name
        self.plot = plot
        self.label = label
        self.image = CodesImage()
        self.lut = rgba_lut(theme.raster_lut(colour))
        plot.addItem(self.image)
        self.ring: ColumnRing | None = None
        self.last_seq = -1
        self.dirty = False
        #: traced rows: a triangle at the left edge and a faint line across, in the trace's
        #: colour (the Vm legend names the row and uses that colour)
        self.marks = pg.ScatterPlotItem(pxMode=True, size=9, pen=None)
        self.marks.setZValue(20)
        self.marks.setVisible(False)
        plot.addItem(self.marks)
        self.mark_lines: list[pg.InfiniteLine] = []
        self.traced: list[tuple[int, str]] = []

    def mark(self, rows: list[tuple[int, str]]) -> None:
        """Mark these (row, colour) as traced."""
        self.traced = list(rows)
        for line in self.mark_lines:
            self.plot.removeItem(line)
        self.mark_lines = []
        self.marks.setData(
            x=[X_RANGE[0] + 3] * len(rows),
            y=[r + 0.5 for r, _ in rows],
            symbol="t2",
            brush=[pg.mkBrush(c) for _, c in rows],
        )
        # an empty scatter item is still painted with its raster at every redraw
        self.marks.setVisible(bool(rows))
        for r, c in rows:
            faint = pg.mkColor(c)
            faint.setAlpha(MARK_LINE_ALPHA)
            line = pg.InfiniteLine(pos=r + 0.5, angle=0, movable=False, pen=pg.mkPen(faint))
            line.setZValue(15)
            self.plot.addItem(line)
            self.mark_lines.append(line)

    def push(self, seq: int, spikes: np.ndarray) -> None:
        if self.ring is None or self.ring.rows != spikes.size:
            self.ring = ColumnRing(spikes.size, HISTORY, np.uint8)
            self.plot.setYRange(0, spikes.size, padding=0)
        # Steps the panel did not see (none normally) stay blank columns.
        gap = min(seq - self.last_seq - 1, HISTORY) if self.last_seq >= 0 else 0
        for _ in range(max(gap, 0)):
            self.ring.push(0)
        self.ring.push(spikes.reshape(-1))
        self.last_seq = seq
        self.dirty = True

    def render(self, seq: int) -> None:
        if self.ring is None or not self.dirty:
            return
        self.dirty = False
        rect = QRectF(X_RANGE[0], 0, HISTORY, self.ring.rows)
        show_codes(self.image, self.ring.view(), self.lut, rect)

    @property
    def rows(self) -> int:
        return 0 if self.ring is None else self.ring.rows


class RasterPanel(Panel):
    """Rasters of the chosen layers; clicking a row asks for that neuron's Vm trace."""

    title = "Spike rasters"
    #: (layer, row, rows in the raster): a raster row was clicked.
    neuron_clicked = Signal(str, int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hint_label.setText("neuron x step  ·  click a row to trace its Vm")
        self.picker = QToolButton()
        self.picker.setText("layers")
        self.picker.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.picker_menu = QMenu(self.picker)
        self.picker.setMenu(self.picker_menu)
        self.header.addWidget(self.picker)
        self.canvas = canvas()
        self.canvas.ci.layout.setSpacing(2)
        self.canvas.ci.setContentsMargins(2, 2, 2, 2)
        self.body.addWidget(self.canvas)
        self.canvas.scene().sigMouseClicked.connect(self.pick_raster_row)
        self.layers: dict[str, LayerRaster] = {}
        self._actions: dict[str, QAction] = {}
        self._shown: list[str] = []
        self._captions: dict[str, str] = {}
        self._traced: list[tuple[str, int, str]] = []  # (layer, row, colour)

    # -- layout ----------------------------------------------------------------------------
    def set_model(self, info: ModelInfo, settings: PipelineSettings) -> None:
        super().set_model(info, settings)
        self.picker_menu.clear()
        self._actions = {}
        for name in info.layer_names:
            act = QAction(name, self.picker_menu)
            act.setCheckable(True)
            act.setChecked(True)
            act.toggled.connect(self.apply_layer_picks)
            self.picker_menu.addAction(act)
            self._actions[name] = act
        self.set_captions(settings)
        self._rebuild(list(info.layer_names))

    def set_captions(self, settings: PipelineSettings) -> None:
        """What each raster shows (sampled neurons or one channel), from the settings."""
        if self.info is None:
            return
        for name in self.info.layer_names:
            shape = self.info.layer_shapes.get(name, ())
            ch = settings.raster_channel.get(name)
            if ch is not None and len(shape) == 3:
                self._captions[name] = f"channel {ch}"
            else:
                size = int(np.prod(shape)) if shape else 0
                n = min(settings.raster_neurons, size) if size else settings.raster_neurons
                self._captions[name] = f"{n} of {size:,}" if size > n else f"all {size}"
        for name, lr in self.layers.items():
            lr.label.setText(self._label_html(name))

    def shown_layers(self) -> list[str]:
        """The layers drawn now, in forward order."""
        return list(self._shown)

    def show_layers(self, names: list[str]) -> None:
        """Draw exactly these layers (unknown names are ignored)."""
        for name, act in self._actions.items():
            act.blockSignals(True)
            act.setChecked(name in names)
            act.blockSignals(False)
        self.apply_layer_picks()

    @Slot()
    def apply_layer_picks(self) -> None:
        """The layer picker changed."""
        note_slot("RasterPanel.apply_layer_picks")
        if self.info is None:
            return
        names = [n for n in self.info.layer_names if self._actions[n].isChecked()]
        self._rebuild(names)

    def _label_html(self, name: str) -> str:
        short = name if len(name) <= 16 else "…" + name[-15:]
        cap = self._captions.get(name, "")
        return (
            f"<span style='color:{theme.FOREGROUND}; font-size:10pt'>{short}</span><br>"
            f"<span style='color:{theme.MUTED}; font-size:8pt'>{cap}</span>"
        )

    def _rebuild(self, names: list[str]) -> None:
        old = self.layers
        self.canvas.clear()
        self.layers = {}
        self._shown = names
        n = len(names)
        self.picker.setText(f"layers ({n}/{len(self._actions)})")
        for i, name in enumerate(names):
            idx = self.info.layer_names.index(name) if self.info else i
            label = self.canvas.addLabel(self._label_html(name), row=i, col=0, justify="right")
            label.setFixedWidth(LABEL_WIDTH)
            plot = self.canvas.addPlot(row=i, col=1)
            style_plot(plot, bottom=STEP_AXIS if i == n - 1 else "")
            plot.getAxis("left").setWidth(34)
            plot.getAxis("left").setStyle(tickLength=-3)
            plot.invertY(True)
            if i < n - 1:
                plot.getAxis("bottom").setStyle(showValues=False)
                plot.getAxis("bottom").setHeight(4)
            lr = LayerRaster(name, theme.colour(idx), plot, label)
            prev = old.get(name)
            if prev is not None and prev.ring is not None:  # keep the history
                lr.ring, lr.last_seq, lr.dirty = prev.ring, prev.last_seq, True
                plot.setYRange(0, lr.ring.rows, padding=0)
            plot.setXRange(*X_RANGE, padding=0)
            self.layers[name] = lr
        for lr in self.layers.values():
            lr.plot.setXLink(next(iter(self.layers.values())).plot)
        self._apply_marks()

    # -- traced rows -----------------------------------------------------------------------
    def row_of(self, layer: str, flat: int) -> int | None:
        """The raster row showing neuron ``flat`` of ``layer`` (None: not shown)."""
        if self.info is None:
            return None
        index = self.info.raster_index.get(layer)
        if index is not None and len(index):
            hits = np.flatnonzero(np.asarray(index) == flat)
            return int(hits[0]) if hits.size else None
        shape = self.info.layer_shapes.get(layer, ())
        return flat if shape and 0 <= flat < int(np.prod(shape)) else None

    @Slot(list)
    def mark_traced(self, marks: list) -> None:
        """The traced neurons changed: [(layer, row or -1, colour)]."""
        note_slot("RasterPanel.mark_traced")
        self._traced = [(str(lay), int(r), str(c)) for lay, r, c in marks if int(r) >= 0]
        self._apply_marks()

    def traced_rows(self, layer: str) -> list[tuple[int, str]]:
        """The (row, colour) marked in ``layer``'s raster now."""
        lr = self.layers.get(layer)
        return [] if lr is None else list(lr.traced)

    def _apply_marks(self) -> None:
        for name, lr in self.layers.items():
            lr.mark([(r, c) for lay, r, c in self._traced if lay == name])

    # -- data ------------------------------------------------------------------------------
    def clear_history(self) -> None:
        """Forget every raster's history (rows may change after a reconfigure)."""
        for lr in self.layers.values():
            lr.ring = None
            lr.last_seq = -1
            lr.image.clear()

    def push(self, seq: int, frame: StepFrame) -> None:
        for name, lr in self.layers.items():
            spikes = frame.raster.get(name)
            if spikes is not None and spikes.size:
                lr.push(seq, spikes)

    def render(self, seq: int) -> None:
        for lr in self.layers.values():
            lr.render(seq)

    # -- clicks ----------------------------------------------------------------------------
    @Slot(object)
    def pick_raster_row(self, event: object) -> None:
        """A click on the canvas: which layer and row (if any) was hit."""
        note_slot("RasterPanel.pick_raster_row")
        pos = event.scenePos()  # type: ignore[attr-defined]
        for name, lr in self.layers.items():
            vb = lr.plot.getViewBox()
            if not vb.sceneBoundingRect().contains(pos) or lr.rows == 0:
                continue
            row = int(np.floor(vb.mapSceneToView(pos).y()))
            if 0 <= row < lr.rows:
                self.neuron_clicked.emit(name, row, lr.rows)
            return
