"""Membrane potential of chosen neurons over time, with each layer's live threshold."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QPushButton, QWidget

from dvsapp.gui import theme
from dvsapp.gui.panels.base import HISTORY, STEP_AXIS, X_RANGE, X_STEPS, Panel, pen, style_plot
from dvsapp.gui.ring import ColumnRing
from dvsapp.gui.slots import note_slot
from dvsapp.pipeline import ModelInfo, PipelineSettings, StepFrame

#: At most this many traces (the oldest goes when another is added).
MAX_TRACES = 8


class VmPanel(Panel):
    """One curve per traced neuron; a dashed line per traced layer at its threshold."""

    title = "Membrane potential"
    #: the user cleared the traces
    cleared = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hint_label.setText("click a raster row to add a neuron")
        self.clear_button = QPushButton("clear")
        self.clear_button.clicked.connect(self.clear_traces_clicked)
        self.header.addWidget(self.clear_button)
        self.canvas = pg.GraphicsLayoutWidget()
        self.body.addWidget(self.canvas)
        self.plot = self.canvas.addPlot()
        style_plot(self.plot, left="Vm", bottom=STEP_AXIS)
        self.plot.setXRange(*X_RANGE, padding=0)
        self.legend = self.plot.addLegend(offset=(6, 4), labelTextSize="8pt")
        self.legend.setBrush(pg.mkBrush(20, 23, 28, 190))
        self.neurons: list[tuple[str, int]] = []  # (layer, flat index), in add order
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
        for i, (layer, idx) in enumerate(self.neurons):
            curve = self.plot.plot(pen=pen(theme.colour(i)), name=f"{layer}[{idx}]")
            self._curves.append(curve)
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

    def clear_history(self) -> None:
        if self._ring is not None:
            self._ring.clear()
        self._dirty = True

    def set_threshold_scale(self, scale: dict[str, float]) -> None:
        """The live threshold scales changed (layer -> factor)."""
        self._scale = dict(scale)
        self._update_thresholds()

    def _update_thresholds(self) -> None:
        """One dashed line per distinct live threshold of the traced layers."""
        for line in dict.fromkeys(self._thresholds.values()):
            self.plot.removeItem(line)
        self._thresholds = {}
        if self.info is None:
            return
        groups: dict[float, list[str]] = {}
        for layer in dict.fromkeys(layer for layer, _ in self.neurons):
            vth = self.info.thresholds.get(layer, 1.0) * self._scale.get(layer, 1.0)
            groups.setdefault(round(vth, 6), []).append(layer)
        for vth, layers in groups.items():
            names = ", ".join(layers) if len(layers) <= 2 else f"{len(layers)} layers"
            line = pg.InfiniteLine(
                pos=vth,
                angle=0,
                movable=False,
                pen=pen(theme.MUTED, "dash"),
                label=f"Vth {vth:.3g} ({names})",
                labelOpts={
                    "position": 0.99,
                    "anchors": [(1, 1), (1, 1)],
                    "color": theme.MUTED,
                    "fill": theme.BACKGROUND,  # readable over the traces it sits above
                },
            )
            line.setZValue(10)
            self.plot.addItem(line)
            for layer in layers:
                self._thresholds[layer] = line

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
