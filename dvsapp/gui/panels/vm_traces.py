"""Membrane potential of chosen neurons over time, with each layer's live threshold."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QPushButton, QWidget

from dvsapp.gui import theme
from dvsapp.gui.panels.base import (
    HISTORY,
    STEP_AXIS,
    X_RANGE,
    X_STEPS,
    Panel,
    canvas,
    pen,
    style_plot,
)
from dvsapp.gui.ring import ColumnRing
from dvsapp.gui.slots import note_slot
from dvsapp.pipeline import ModelInfo, PipelineSettings, StepFrame

#: At most this many traces (the oldest goes when another is added).
MAX_TRACES = 8
#: Width of the right axis that labels the thresholds.
VTH_AXIS_PX = 58


class VmPanel(Panel):
    """One curve per traced neuron; a dashed line per traced layer at its threshold."""

    title = "Membrane potential"
    #: the user cleared the traces
    cleared = Signal()
    #: the traced neurons as [(layer, raster row or -1, colour)], in trace order
    traced_changed = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hint_label.setText("click a raster row to add a neuron")
        self.clear_button = QPushButton("clear")
        self.clear_button.clicked.connect(self.clear_traces_clicked)
        self.header.addWidget(self.clear_button)
        self.canvas = canvas()
        self.body.addWidget(self.canvas)
        self.plot = self.canvas.addPlot()
        style_plot(self.plot, left="Vm", bottom=STEP_AXIS)
        self.plot.setXRange(*X_RANGE, padding=0)
        # The threshold's label goes on the right axis, outside the traces it would hide.
        self.plot.showAxis("right")
        right = self.plot.getAxis("right")
        right.setPen(pg.mkPen(theme.MUTED, width=1))
        right.setTextPen(pg.mkPen(theme.MUTED, width=1))
        right.setStyle(tickLength=4, autoExpandTextSpace=False)
        right.setWidth(VTH_AXIS_PX)
        right.setTicks([[]])
        self.legend = self.plot.addLegend(offset=(6, 4), labelTextSize="8pt")
        self.legend.setBrush(pg.mkBrush(20, 23, 28, 190))
        self.neurons: list[tuple[str, int]] = []  # (layer, flat index), in add order
        #: (layer, flat index) -> its row in the raster (None: not shown there); the
        #: window sets it to the raster panel's.
        self.row_of: Callable[[str, int], int | None] | None = None
        self.names: list[str] = []  # each trace's legend name
        self._positions: dict[str, dict[int, int]] = {}
        self._curves: list[pg.PlotDataItem] = []
        self._ring: ColumnRing | None = None
        self._thresholds: dict[str, pg.InfiniteLine] = {}
        self._scale: dict[str, float] = {}
        self._last_seq = -1
        self._dirty = False

    @Slot()
    def clear_traces_clicked(self) -> None:
        """The clear button."""
        note_slot("VmPanel.clear_traces_clicked")
        self.set_neurons([])
        self.cleared.emit()

    def set_model(self, info: ModelInfo, settings: PipelineSettings) -> None:
        super().set_model(info, settings)
        self.update_info(info)
        self._scale = dict(settings.threshold_scale)
        self.set_neurons([])

    def set_neurons(self, neurons: list[tuple[str, int]]) -> None:
        """Trace exactly these (layer, flat index) neurons; keeps the history of the ones
        already traced."""
        old = dict(zip(self.neurons, range(len(self.neurons)), strict=False))
        old_view = self._ring.view().copy() if self._ring is not None else None
        self.neurons = list(neurons)[-MAX_TRACES:]
        for c in self._curves:
            self.plot.removeItem(c)
        self.legend.clear()
        self._curves = []
        self._ring = ColumnRing(max(len(self.neurons), 1), HISTORY, np.float32, np.nan)
        if old_view is not None:  # keep the history of the neurons still traced
            for i, key in enumerate(self.neurons):
                if key in old:
                    self._ring.load_row(i, old_view[old[key]])
        for i in range(len(self.neurons)):
            curve = self.plot.plot(pen=pen(theme.colour(i)))
            self._curves.append(curve)
        self._relabel()
        self._update_thresholds()
        self._dirty = True
        self.hint_label.setText(
            "click a raster row to add a neuron"
            if not self.neurons
            else f"{len(self.neurons)} neuron(s)  ·  dashed: threshold x live scale"
        )

    def update_info(self, info: ModelInfo) -> None:
        super().update_info(info)
        self._positions = {
            layer: {int(flat): i for i, flat in enumerate(idx)}
            for layer, idx in info.vm_index.items()
        }
        if self.neurons:  # the rasters' rows may have changed (another sample)
            self._relabel()

    def _relabel(self) -> None:
        """Name each trace as the raster shows its neuron (``layer row R``; ``layer #flat``
        when the raster does not show it) and tell the rasters which rows to mark."""
        self.legend.clear()
        self.names = []
        marks = []
        for i, ((layer, idx), curve) in enumerate(zip(self.neurons, self._curves, strict=False)):
            row = self.row_of(layer, idx) if self.row_of is not None else None
            name = f"{layer} row {row}" if row is not None else f"{layer} #{idx}"
            self.names.append(name)
            self.legend.addItem(curve, name)
            marks.append((layer, -1 if row is None else row, theme.colour(i)))
        self.traced_changed.emit(marks)

    def clear_history(self) -> None:
        if self._ring is not None:
            self._ring.clear()
        self._dirty = True

    def set_threshold_scale(self, scale: dict[str, float]) -> None:
        """The live threshold scales changed (layer -> factor)."""
        self._scale = dict(scale)
        self._update_thresholds()

    def _update_thresholds(self) -> None:
        """One dashed line per distinct live threshold of the traced layers, labelled on the
        right axis (never over the traces)."""
        for line in dict.fromkeys(self._thresholds.values()):
            self.plot.removeItem(line)
        self._thresholds = {}
        self.plot.getAxis("right").setTicks([[]])
        if self.info is None:
            return
        groups: dict[float, list[str]] = {}
        for layer in dict.fromkeys(layer for layer, _ in self.neurons):
            vth = self.info.thresholds.get(layer, 1.0) * self._scale.get(layer, 1.0)
            groups.setdefault(round(vth, 6), []).append(layer)
        ticks = []
        tips = []
        for vth, layers in groups.items():
            line = pg.InfiniteLine(pos=vth, angle=0, movable=False, pen=pen(theme.MUTED, "dash"))
            line.setZValue(10)
            self.plot.addItem(line)
            for layer in layers:
                self._thresholds[layer] = line
            ticks.append((vth, f"Vth {vth:.3g}"))
            tips.append(f"Vth {vth:.3g}: {', '.join(layers)}")
        self.plot.getAxis("right").setTicks([ticks])
        self.canvas.setToolTip("\n".join(tips))

    def push(self, seq: int, frame: StepFrame) -> None:
        if not self.neurons or self._ring is None:
            return
        col = np.full(len(self.neurons), np.nan, np.float32)
        for i, (layer, flat) in enumerate(self.neurons):
            values = frame.vm.get(layer)
            pos = self._positions.get(layer, {})
            # frame.vm[layer] follows ModelInfo.vm_index[layer]; a frame from before a
            # change of the traced neurons has another size and is skipped.
            if values is not None and flat in pos and values.size == len(pos):
                col[i] = values[pos[flat]]
        self._ring.push(col)
        self._last_seq = seq
        self._dirty = True

    def render(self, seq: int) -> None:
        if not self._dirty or self._ring is None:
            return
        self._dirty = False
        view = self._ring.view()
        for i, curve in enumerate(self._curves):
            curve.setData(X_STEPS, view[i], connect="finite")
