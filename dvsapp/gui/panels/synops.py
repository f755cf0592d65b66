"""Synaptic operations per layer this step (AC for spiking inputs, MAC otherwise, on a log
axis against the dense count), their totals per step and per second of stream, the
activation sparsity, and the total's history: where the network's work goes."""

from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

from dvsapp.gui import theme
from dvsapp.gui.panels.base import (
    HISTORY,
    STEP_AXIS,
    X_RANGE,
    X_STEPS,
    Panel,
    canvas,
    pen,
    set_item_text,
    style_plot,
)
from dvsapp.gui.ring import ColumnRing
from dvsapp.pipeline import ModelInfo, PipelineSettings, StepFrame
from dvsapp.snn.analysis.records import StepAnalysis

#: Bar colour per kind of operation.
KIND_COLOURS = {"AC": theme.PALETTE[0], "MAC": theme.PALETTE[1]}
#: The dense count's hollow bar.
DENSE_COLOUR = theme.MUTED
#: The history line of total operations.
TOTAL_COLOUR = theme.FOREGROUND
#: Decades shown below the largest dense count.
DECADES = 7
#: Shortest time between two updates of the bars' numbers and the totals text.
TEXT_PERIOD_S = 0.1
#: Characters of a layer name on the bars' left axis.
NAME_CHARS = 12
OFF_TEXT = "in-depth probes off"

_SI = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def si(value: float) -> str:
    """``value`` in 3 significant digits with an SI suffix: 1234567 -> "1.23M"."""
    if not math.isfinite(value):
        return "–"
    v = abs(value)
    for scale, suffix in _SI:
        if v >= scale * 0.9995:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def decade_ticks(lo: float, hi: float) -> list[tuple[float, str]]:
    """Ticks at the powers of ten in ``[lo, hi]`` (log10 units), labelled with SI suffixes;
    every other one when there are more than five."""
    first, last = math.ceil(lo - 1e-9), math.floor(hi + 1e-9)
    exps = list(range(max(first, 0), last + 1))
    if len(exps) > 5:
        exps = [e for e in exps if (last - e) % 2 == 0]
    return [(float(e), si(10.0**e)) for e in exps]


def short(name: str, n: int = NAME_CHARS) -> str:
    """``name`` cut from the left to ``n`` characters (the tail tells layers apart)."""
    return name if len(name) <= n else "…" + name[-(n - 1) :]


class SynopsPanel(Panel):
    """One bar per synaptic layer (forward order, top down): effective operations this step
    filled in its kind's colour over a hollow bar of the dense count; totals and sparsity in
    the text line; total operations over the steps below."""

    title = "Synaptic ops"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hint_label.setText("log scale  ·  filled: effective, hollow: dense")
        self.stats_label = self.add_stats_line()
        self.canvas = canvas()
        self.canvas.ci.layout.setSpacing(2)
        self.canvas.ci.setContentsMargins(2, 2, 2, 2)
        self.body.addWidget(self.canvas, 1)
        self.bars_plot = self.canvas.addPlot(row=0, col=0)
        style_plot(self.bars_plot)
        self.bars_plot.invertY(True)
        self.bars_plot.showAxis("right")
        for side in ("left", "right"):
            ax = self.bars_plot.getAxis(side)
            ax.setPen(pg.mkPen(theme.MUTED, width=1))
            ax.setTextPen(pg.mkPen(theme.FOREGROUND, width=1))
            ax.setStyle(tickLength=0, autoExpandTextSpace=False)
        self.bars_plot.getAxis("left").setWidth(84)
        self.bars_plot.getAxis("right").setWidth(64)
        self.dense_bars = pg.BarGraphItem(x0=[], y=[], height=0.72, width=[])
        self.bars_plot.addItem(self.dense_bars)
        self.bars = pg.BarGraphItem(x0=[], y=[], height=0.72, width=[])
        self.bars_plot.addItem(self.bars)
        self.message = pg.TextItem("", color=theme.MUTED, anchor=(0.5, 0.5))
        self.message.setZValue(30)
        self.bars_plot.addItem(self.message, ignoreBounds=True)
        self.hist_plot = self.canvas.addPlot(row=1, col=0)
        # small: no axis titles; the right axis names the latest total ("Σ 1.2M")
        style_plot(self.hist_plot)
        self.hist_plot.setToolTip(f"total operations per step (log scale), x: {STEP_AXIS}")
        self.hist_plot.showAxis("right")
        right = self.hist_plot.getAxis("right")
        right.setPen(pg.mkPen(theme.MUTED, width=1))
        right.setTextPen(pg.mkPen(TOTAL_COLOUR, width=1))
        right.setStyle(tickLength=0, autoExpandTextSpace=False)
        right.setWidth(64)
        self.hist_plot.getAxis("left").setWidth(84)
        self.hist_plot.setXRange(*X_RANGE, padding=0)
        self.total_curve = self.hist_plot.plot(pen=pen(TOTAL_COLOUR))
        self.canvas.ci.layout.setRowStretchFactor(0, 3)
        self.canvas.ci.layout.setRowStretchFactor(1, 1)
        self.text_period_s = TEXT_PERIOD_S
        #: the synaptic layers drawn, top to bottom
        self.layers: list[str] = []
        self.lane = 0
        self.analysis: StepAnalysis | None = None
        self.probes_off = False
        self._dt_s = 0.0
        self._ring = ColumnRing(1, HISTORY, np.float32, np.nan)
        self._range = (0.0, float(DECADES))
        self._dirty = False
        self._bars_owed = False
        self._text_at = 0.0
        self._last_seq = -1
        self._layout_rows([])

    # -- layout ----------------------------------------------------------------------------
    def set_model(self, info: ModelInfo, settings: PipelineSettings) -> None:
        super().set_model(info, settings)
        self.lane = info.lane
        self.analysis = None
        self.probes_off = not settings.analysis
        self._ring.clear()
        self._range = (0.0, float(DECADES))
        self._layout_rows(list(info.synaptic_layers))
        self._dirty = True
        self._text_at = 0.0

    def _layout_rows(self, layers: list[str]) -> None:
        self.layers = layers
        n = max(len(layers), 1)
        self.bars_plot.setYRange(0, n, padding=0)
        self.bars_plot.getAxis("left").setTicks(
            [[(i + 0.5, short(nm)) for i, nm in enumerate(layers)]]
        )
        self.bars_plot.getAxis("right").setTicks([[]])
        self.bars_plot.setToolTip("\n".join(layers))
        self._set_range(*self._range)
        self.dense_bars.setOpts(x0=[], y=[], width=[], height=0.72)
        self.bars.setOpts(x0=[], y=[], width=[], height=0.72)

    def _set_range(self, lo: float, hi: float) -> None:
        self._range = (lo, hi)
        self.bars_plot.setXRange(lo, hi, padding=0.02)
        self.hist_plot.setYRange(lo, hi, padding=0.05)
        self.bars_plot.getAxis("bottom").setTicks([decade_ticks(lo, hi)])
        self.hist_plot.getAxis("left").setTicks([decade_ticks(lo, hi)])
        self.message.setPos((lo + hi) / 2, max(len(self.layers), 1) / 2)

    # -- data ------------------------------------------------------------------------------
    def clear_history(self) -> None:
        self._ring.clear()
        self.analysis = None
        self._last_seq = -1
        self._dirty = True
        self._text_at = 0.0

    def push(self, seq: int, frame: StepFrame) -> None:
        if frame.lane != self.lane:
            return
        a = frame.analysis
        self.probes_off = a is None
        self._dirty = True
        if a is None:
            return
        if not self.layers and a.synops:  # no layer list from the model: take the probes'
            self._layout_rows(list(a.synops))
        gap = min(seq - self._last_seq - 1, HISTORY) if self._last_seq >= 0 else 0
        for _ in range(max(gap, 0)):
            self._ring.push(np.nan)
        total = float(sum(layer.ops for layer in a.synops.values()))
        self._ring.push(math.log10(total) if total > 0 else np.nan)
        self._last_seq = seq
        self.analysis = a
        self._dt_s = max(frame.t_end_us - frame.t_start_us, 0) * 1e-6

    def per_layer(self) -> list[tuple[str, float, str, float]]:
        """(layer, effective ops, kind, dense ops) of the latest step, in row order (NaN
        ops for a layer the probes did not report)."""
        a = self.analysis
        out = []
        for name in self.layers:
            s = None if a is None else a.synops.get(name)
            if s is None:
                out.append((name, float("nan"), "", float("nan")))
            else:
                out.append((name, float(s.ops), s.kind, float(s.dense)))
        return out

    def totals_text(self) -> str:
        """The text line: ops per step and per second by kind, sparsity, share of dense."""
        a = self.analysis
        if a is None:
            return OFF_TEXT if self.probes_off else ""
        tot = a.total_ops
        parts = []
        for kind in ("AC", "MAC"):
            v = tot.get(kind, 0.0)
            rate = f" · {si(v / self._dt_s)}/s" if self._dt_s > 0 else ""
            parts.append(f"{kind} {si(v)}/step{rate}")
        dense = sum(s.dense for s in a.synops.values())
        eff = sum(s.ops for s in a.synops.values())
        share = f"  ·  {100 * eff / dense:.3g}% of dense" if dense > 0 else ""
        sp = "–" if not math.isfinite(a.sparsity) else f"{100 * a.sparsity:.1f}%"
        return "    ".join(parts) + f"\nactivation sparsity {sp}{share}"

    def render(self, seq: int) -> None:
        if self._dirty:
            self._dirty = False
            self._bars_owed = True
            self.total_curve.setData(X_STEPS, self._ring.view()[0], connect="finite")
        now = time.monotonic()
        if not self._bars_owed or now - self._text_at < self.text_period_s:
            return
        self._bars_owed = False
        self._text_at = now
        self._render_bars()

    def _render_bars(self) -> None:
        last = float(self._ring.latest()[0])
        self.hist_plot.getAxis("right").setTicks(
            [[(last, f"Σ {si(10.0**last)}")] if np.isfinite(last) else []]
        )
        if self.info is not None and not self.layers:
            set_item_text(self.message, "no synaptic layers")
        elif self.analysis is None:
            set_item_text(self.message, OFF_TEXT if self.probes_off else "waiting for a step")
        else:
            set_item_text(self.message, OFF_TEXT if self.probes_off else "")
        text = self.totals_text()
        if text != self.stats_label.text():
            self.stats_label.setText(text)
        rows = self.per_layer() if not self.probes_off else []
        dense = np.array([d for _, _, _, d in rows], np.float64)
        ops = np.array([o for _, o, _, _ in rows], np.float64)
        finite = np.concatenate([dense[np.isfinite(dense) & (dense > 0)], ops[ops > 0]])
        if finite.size:
            hi = math.ceil(math.log10(float(finite.max())) + 0.05)
            if abs(hi - self._range[1]) > 1e-9:
                self._set_range(max(hi - DECADES, 0.0), float(hi))
        lo = self._range[0]
        y = np.arange(len(rows)) + 0.5
        if not rows:  # (pyqtgraph 0.14's BarGraphItem fails on an empty list of pens)
            self.dense_bars.setOpts(x0=[], y=[], width=[])
            self.bars.setOpts(x0=[], y=[], width=[], brushes=None, pens=None)
            self.bars_plot.getAxis("right").setTicks([[]])
            return

        def widths(v: np.ndarray) -> np.ndarray:
            with np.errstate(divide="ignore", invalid="ignore"):
                w = np.log10(v) - lo
            return np.where(np.isfinite(w) & (v > 0), np.maximum(w, 0.0), 0.0)

        self.dense_bars.setOpts(
            x0=np.full(len(rows), lo),
            y=y,
            width=widths(dense),
            height=0.72,
            brush=pg.mkBrush(None),
            pen=pen(DENSE_COLOUR),
        )
        self.bars.setOpts(
            x0=np.full(len(rows), lo),
            y=y,
            width=widths(ops),
            height=0.56,
            brushes=[pg.mkBrush(KIND_COLOURS.get(k, theme.MUTED)) for _, _, k, _ in rows],
            pens=[pg.mkPen(None)] * len(rows),
        )
        labels = [(i + 0.5, f"{si(o)} {k}" if k else "–") for i, (_, o, k, _) in enumerate(rows)]
        self.bars_plot.getAxis("right").setTicks([labels])

    def bar_extent(self, layer: str) -> float:
        """The drawn length of ``layer``'s effective bar, in decades above the axis start."""
        for name, o, _, _ in self.per_layer():
            if name == layer and o > 0:
                return max(math.log10(o) - self._range[0], 0.0)
        return 0.0

    @property
    def x_range(self) -> tuple[float, float]:
        """The bars' log10 range."""
        return self._range
