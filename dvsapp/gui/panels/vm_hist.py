"""One spiking layer's membrane potentials: the histogram over all its neurons at the latest
step (log counts, the live threshold marked, the share near it), and the histogram's
history as a Vm x step heatmap with the threshold drawn across. A layer whose potentials
drift far below threshold is a layer about to go silent."""

from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Slot
from PySide6.QtWidgets import QWidget

from dvsapp.gui import theme
from dvsapp.gui.panels.base import (
    HISTORY,
    STEP_AXIS,
    X_RANGE,
    X_STEPS,
    CodesImage,
    FixedBoundsCurve,
    Panel,
    canvas,
    pen,
    rgba_lut,
    set_item_text,
    show_codes,
    style_plot,
)
from dvsapp.gui.panels.synops import OFF_TEXT, si
from dvsapp.gui.ring import ColumnRing
from dvsapp.gui.slots import note_slot
from dvsapp.pipeline import ModelInfo, PipelineSettings, StepFrame
from dvsapp.snn.analysis.records import NEAR_FRACTION, VM_BINS, VmStats, vm_edges

#: The inner bins' bars, the under/overflow bins' bars, the threshold marker.
BAR_COLOUR = theme.PALETTE[1]
END_COLOUR = theme.MUTED
THRESHOLD_COLOUR = theme.PALETTE[9]
#: Where the log-count bars start (log10 units): a bin holding one neuron still shows.
BASE = -0.35
#: Gap between an end bin and the inner bins, in bin widths.
END_GAP = 0.6
#: Shortest time between two updates of the text line.
TEXT_PERIOD_S = 0.1


def default_layer(info: ModelInfo) -> str | None:
    """The deepest spiking layer that is not the output (a last layer of one neuron per
    class); the only layer when there is one."""
    names = list(info.layer_names)
    if not names:
        return None
    last = names[-1]
    shape = info.layer_shapes.get(last, ())
    k = len(info.class_names)
    if len(names) > 1 and len(shape) == 1 and k and int(shape[0]) == k:
        return names[-2]
    return last


def count_levels(counts: np.ndarray, neurons: int) -> np.ndarray:
    """Bin counts -> uint8 heat levels: 0 for an empty bin, then log10(count) over
    log10(neurons) mapped to 1..255."""
    c = np.asarray(counts, np.float64)
    top = math.log10(max(neurons, 2))
    with np.errstate(divide="ignore"):
        v = np.log10(np.maximum(c, 1.0)) / top
    return np.where(c > 0, np.clip(np.round(1 + 254 * v), 1, 255), 0).astype(np.uint8)


class VmHistogramPanel(Panel):
    """The Vm histogram of the layer chosen in the header's combo box, over its history."""

    title = "Vm histogram"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hint_label.setText("log count")
        self.hint_label.setToolTip(
            "Membrane potentials of every neuron of the layer at the latest step, on a log "
            "count axis; the grey bars at the ends count those below and above the binned "
            "range (±3 base thresholds). Cyan: the live threshold. Below: the same over the "
            "steps."
        )
        self.layer_box = self.add_layer_box("the spiking layer whose membrane potentials are shown")
        self.layer_box.activated.connect(self.layer_chosen)
        self.stats_label = self.add_stats_line()
        self.canvas = canvas()
        self.canvas.ci.layout.setSpacing(2)
        self.canvas.ci.setContentsMargins(2, 2, 2, 2)
        self.body.addWidget(self.canvas, 1)
        # -- the histogram now
        self.hist = self.canvas.addPlot(row=0, col=0)
        style_plot(self.hist)
        # the end bins' labels sit at the plot's edges: let them overflow a little
        self.hist.getAxis("bottom").setStyle(hideOverlappingLabels=False)
        self.hist.setContentsMargins(0, 0, 10, 0)
        self.hist.getAxis("left").setWidth(38)
        # (fixed bounds: the bins' span times the count axis, set by _layout_axes)
        self.curve = FixedBoundsCurve(
            QRectF(0, 0, 1, 1),
            stepMode="center",
            fillLevel=BASE,
            brush=pg.mkBrush(BAR_COLOUR),
            pen=None,
        )
        self.hist.addItem(self.curve)
        self.ends = pg.BarGraphItem(x=[], height=[], width=1.0, y0=BASE)
        self.hist.addItem(self.ends)
        self.marker = pg.InfiniteLine(
            angle=90,
            movable=False,
            pen=pen(THRESHOLD_COLOUR),
            label="θ",
            labelOpts={
                "position": 0.9,
                "color": THRESHOLD_COLOUR,
                "anchors": [(-0.1, 0.5), (-0.1, 0.5)],
            },
        )
        self.marker.setZValue(20)
        self.hist.addItem(self.marker, ignoreBounds=True)
        self.message = pg.TextItem("", color=theme.MUTED, anchor=(0.5, 0.5))
        self.message.setZValue(30)
        self.hist.addItem(self.message, ignoreBounds=True)
        # -- its history
        self.heat = self.canvas.addPlot(row=1, col=0)
        style_plot(self.heat, bottom=STEP_AXIS)
        self.heat.getAxis("left").setWidth(38)
        self.heat.setXRange(*X_RANGE, padding=0)
        self.image = CodesImage()
        self.heat.addItem(self.image)
        self.heat_threshold = FixedBoundsCurve(QRectF(0, 0, 1, 1), pen=pen(THRESHOLD_COLOUR))
        self.heat.addItem(self.heat_threshold)
        self.heat_threshold.setZValue(10)
        self.heat_edges = [
            pg.InfiniteLine(angle=0, movable=False, pen=pen(theme.MUTED, "dot")) for _ in range(2)
        ]
        for line in self.heat_edges:
            line.setZValue(5)
            self.heat.addItem(line, ignoreBounds=True)
        self.canvas.ci.layout.setRowStretchFactor(0, 1)
        self.canvas.ci.layout.setRowStretchFactor(1, 1)
        self._lut = rgba_lut(theme.heat_lut())
        self.text_period_s = TEXT_PERIOD_S
        self.lane = 0
        self.layer: str | None = None
        #: the chosen layer's latest step (None: none yet, or probes off)
        self.stats: VmStats | None = None
        self.probes_off = False
        self.edges = vm_edges(1.0)
        self._ring = ColumnRing(VM_BINS + 2, HISTORY, np.uint8)
        self._thresholds = ColumnRing(1, HISTORY, np.float32, np.nan)
        self._neurons = 0
        self._top = 0.0
        self._last_seq = -1
        self._dirty = False
        self._text_owed = False
        self._text_at = 0.0

    # -- layout ----------------------------------------------------------------------------
    def set_model(self, info: ModelInfo, settings: PipelineSettings) -> None:
        super().set_model(info, settings)
        self.lane = info.lane
        self.probes_off = not settings.analysis
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        self.layer_box.addItems(list(info.layer_names))
        self.layer_box.blockSignals(False)
        self.layer_box.setEnabled(bool(info.layer_names))
        self.select_layer(default_layer(info))

    def select_layer(self, layer: str | None) -> None:
        """Show ``layer`` (a spiking layer of the model); its history starts empty."""
        if self.info is not None and layer not in self.info.layer_names:
            layer = None
        self.layer = layer
        if layer is not None and self.layer_box.currentText() != layer:
            self.layer_box.setCurrentText(layer)
        threshold = 1.0 if self.info is None else self.info.thresholds.get(layer or "", 1.0)
        self.edges = vm_edges(threshold)
        self._neurons = 0
        self._layout_axes()
        self.clear_history()

    @Slot(int)
    def layer_chosen(self, _index: int = 0) -> None:
        """The combo box picked a layer."""
        note_slot("VmHistogramPanel.layer_chosen")
        self.select_layer(self.layer_box.currentText() or None)

    @property
    def bin_width(self) -> float:
        """Width of one inner bin (Vm)."""
        return float(self.edges[1] - self.edges[0])

    def end_centres(self) -> tuple[float, float]:
        """x of the under- and overflow bins' bars."""
        w = self.bin_width
        return (
            float(self.edges[0] - (END_GAP + 0.5) * w),
            float(self.edges[-1] + (END_GAP + 0.5) * w),
        )

    def bin_centre(self, i: int) -> float:
        """x (Vm) where bin ``i`` of ``VmStats.counts`` is drawn (0: underflow)."""
        if i == 0:
            return self.end_centres()[0]
        if i == VM_BINS + 1:
            return self.end_centres()[1]
        return float((self.edges[i - 1] + self.edges[i]) / 2)

    def _layout_axes(self) -> None:
        e, w = self.edges, self.bin_width
        lo, hi = e[0] - (END_GAP + 1.2) * w, e[-1] + (END_GAP + 1.2) * w
        self.hist.setXRange(lo, hi, padding=0)
        under, over = self.end_centres()
        theta = (e[-1] - e[0]) / 6  # the base threshold's magnitude: edges span -3..3 of it
        # the end bins carry the range's bounds ("<-3": everything below -3 thresholds)
        values = [(k * theta, f"{k * theta:.3g}") for k in range(-2, 3)]
        ends = [(under, f"<{-3 * theta:.3g}"), (over, f">{3 * theta:.3g}")]
        self.hist.getAxis("bottom").setTicks([[*values, *ends]])
        # the heatmap's rows: under, the inner bins, over, each one bin high
        self.heat.setYRange(e[0] - w, e[-1] + w, padding=0)
        self.heat.getAxis("left").setTicks([[(k * theta, f"{k * theta:.3g}") for k in (-2, 0, 2)]])
        self.heat_threshold.set_bounds(  # it is clipped to the heatmap's rows
            QRectF(X_RANGE[0], float(e[0] - w), HISTORY, float(e[-1] - e[0] + 2 * w))
        )
        self.heat_edges[0].setPos(float(e[0]))
        self.heat_edges[1].setPos(float(e[-1]))
        self._top = 0.0
        self._set_count_range(10)

    def _set_count_range(self, neurons: int) -> None:
        """The count axis from 1 to ``neurons``, rounded up to a quarter decade (so a count
        that changes a little does not move the axis)."""
        top = math.ceil(4 * max(math.log10(max(neurons, 10)), 1.0)) / 4
        if top == self._top:
            return
        self._top = top
        self.hist.setYRange(BASE, top + 0.15, padding=0)
        e = self.edges
        self.curve.set_bounds(QRectF(float(e[0]), BASE, float(e[-1] - e[0]), top + 0.15 - BASE))
        exps = list(range(0, math.floor(top + 1e-9) + 1))
        if len(exps) > 4:
            exps = [x for x in exps if (exps[-1] - x) % 2 == 0]
        self.hist.getAxis("left").setTicks([[(float(x), si(10.0**x)) for x in exps]])
        self.message.setPos(float(np.mean(self.hist.viewRange()[0])), (BASE + top) / 2)

    # -- data ------------------------------------------------------------------------------
    def clear_history(self) -> None:
        self._ring.clear()
        self._thresholds.clear()
        self.stats = None
        self._last_seq = -1
        self._dirty = True
        self._text_at = 0.0

    def push(self, seq: int, frame: StepFrame) -> None:
        if frame.lane != self.lane:
            return
        a = frame.analysis
        self.probes_off = a is None
        self._dirty = True
        stats = None if a is None or self.layer is None else a.vm.get(self.layer)
        if stats is None or stats.counts.size != VM_BINS + 2:
            return
        gap = min(seq - self._last_seq - 1, HISTORY) if self._last_seq >= 0 else 0
        for _ in range(max(gap, 0)):
            self._ring.push(0)
            self._thresholds.push(np.nan)
        self._ring.push(count_levels(stats.counts, stats.neurons))
        self._thresholds.push(stats.threshold_now)
        self.stats = stats
        self._last_seq = seq

    def stats_text(self) -> str:
        """The text line: share near the threshold, mean ± std, the live threshold."""
        if self.probes_off:
            return OFF_TEXT
        s = self.stats
        if s is None:
            return "" if self.layer is None else f"{self.layer}: no Vm yet"
        return (
            f"near θ: {100 * s.near:.1f}%  ·  mean±std: {s.mean:.3g} ± {s.std:.3g}"
            f"  ·  θ now: {s.threshold_now:.3g}"
        )

    def render(self, seq: int) -> None:
        if self._dirty:
            self._dirty = False
            self._text_owed = True
            self._draw()
        now = time.monotonic()
        if not self._text_owed or now - self._text_at < self.text_period_s:
            return
        self._text_owed = False
        self._text_at = now
        text = self.stats_text()
        if text != self.stats_label.text():
            self.stats_label.setText(text)
        s = self.stats
        if s is not None:
            self.stats_label.setToolTip(
                f"{self.layer}: {s.neurons:,} neurons; near θ: within "
                f"{100 * NEAR_FRACTION:.0f}% of θ now\nmin {s.min:.3g}, max {s.max:.3g}"
            )

    def _draw(self) -> None:
        e, w = self.edges, self.bin_width
        rect = QRectF(X_RANGE[0], float(e[0] - w), HISTORY, float(e[-1] - e[0] + 2 * w))
        show_codes(self.image, self._ring.view(), self._lut, rect)
        thr = self._thresholds.view()[0]
        self.heat_threshold.setData(X_STEPS, np.clip(thr, e[0] - w, e[-1] + w), connect="finite")
        s = None if self.probes_off else self.stats
        if s is None:
            self.curve.clear()
            self.ends.setOpts(x=[], height=[], width=w, y0=BASE)
            self.marker.setVisible(False)
            set_item_text(self.message, OFF_TEXT if self.probes_off else "")
        else:
            if s.neurons != self._neurons:
                self._neurons = s.neurons
                self._set_count_range(s.neurons)
            with np.errstate(divide="ignore"):
                logc = np.where(s.counts > 0, np.log10(np.maximum(s.counts, 1)), BASE)
            self.curve.setData(e, logc[1:-1])
            self.ends.setOpts(
                x=list(self.end_centres()),
                height=[float(logc[0] - BASE), float(logc[-1] - BASE)],
                width=w,
                y0=BASE,
                brush=pg.mkBrush(END_COLOUR),
                pen=pg.mkPen(None),
            )
            lo, hi = self.hist.viewRange()[0]
            self.marker.setPos(float(np.clip(s.threshold_now, lo, hi)))
            self.marker.setVisible(True)
            set_item_text(self.message, "")
