"""Every layer's firing rate over time (a layers x step heatmap) and now (bars), with the
silent and saturated layers flagged in colour: the first stop when debugging collapse."""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QWidget

from dvsapp.gui import theme
from dvsapp.gui.panels.base import (
    HISTORY,
    STEP_AXIS,
    X_RANGE,
    CodesImage,
    Panel,
    canvas,
    pen,
    rgba_lut,
    show_codes,
    style_plot,
)
from dvsapp.gui.ring import ColumnRing
from dvsapp.pipeline import ModelInfo, PipelineSettings, StepFrame
from dvsapp.snn.health import FiringRateHealth, HealthReport

#: Shortest time between two updates of the "now" bars and their numbers.
BARS_PERIOD_S = 0.1
#: Rates are drawn on a log scale from this floor to 1 (0 is black).
RATE_FLOOR = 1e-4
_DECADES = -np.log10(RATE_FLOOR)


def rate_level(rates: np.ndarray) -> np.ndarray:
    """Firing rates in [0, 1] -> uint8 levels 0..255, logarithmic above :data:`RATE_FLOOR`."""
    r = np.nan_to_num(np.asarray(rates, np.float64), nan=0.0)
    v = (np.log10(np.maximum(r, RATE_FLOOR)) + _DECADES) / _DECADES
    out = np.clip(np.round(1 + v * 254), 1, 255)
    return np.where(r > 0, out, 0).astype(np.uint8)


def rate_position(rates: np.ndarray) -> np.ndarray:
    """Rates -> bar lengths in [0, 1] on the same log scale (0 for silence)."""
    r = np.nan_to_num(np.asarray(rates, np.float64), nan=0.0)
    v = (np.log10(np.maximum(r, RATE_FLOOR)) + _DECADES) / _DECADES
    return np.where(r > 0, np.clip(v, 0.02, 1.0), 0.0)


def _short(name: str, n: int = 15) -> str:
    return name if len(name) <= n else "…" + name[-(n - 1) :]


class RatesPanel(Panel):
    """Heatmap of the history plus the current rate of each layer, coloured by health."""

    title = "Firing rates"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hint_label.setText("log scale 1e-4 .. 1")
        self.canvas = canvas()
        self.body.addWidget(self.canvas)
        self.heat = self.canvas.addPlot(row=0, col=0)
        style_plot(self.heat, bottom=STEP_AXIS)
        self.heat.invertY(True)
        self.heat.setXRange(*X_RANGE, padding=0)
        self.image = CodesImage()
        self._lut = rgba_lut(theme.heat_lut())
        self.heat.addItem(self.image)
        self.bars_plot = self.canvas.addPlot(row=0, col=1)
        style_plot(self.bars_plot, bottom="now")
        self.bars_plot.invertY(True)
        self.bars_plot.setYLink(self.heat)
        self.bars_plot.getAxis("left").setStyle(showValues=False)
        self.bars_plot.getAxis("left").setWidth(4)
        self.bars_plot.setXRange(0, 1.0, padding=0.06)
        mid = float(rate_position(np.array([0.01]))[0])
        self.bars_plot.getAxis("bottom").setTicks([[(mid, "1%"), (1.0, "100%")]])
        self.canvas.ci.layout.setColumnStretchFactor(0, 3)
        self.canvas.ci.layout.setColumnStretchFactor(1, 1)
        self.bars = pg.BarGraphItem(x0=[], y=[], height=0.7, width=[])
        self.bars_plot.addItem(self.bars)
        self._texts: list[pg.TextItem] = []
        self.names: list[str] = []
        self._ring: ColumnRing | None = None
        self._rates = np.zeros(0, np.float32)
        self._health = HealthReport()
        self._fallback = FiringRateHealth()
        self._last_seq = -1
        self._dirty = False
        self._bars_at = 0.0

    @property
    def health(self) -> HealthReport:
        """The latest health report (the pipeline's, or ours where it sends none)."""
        return self._health

    def set_model(self, info: ModelInfo, settings: PipelineSettings) -> None:
        super().set_model(info, settings)
        self.names = list(info.layer_names)
        n = len(self.names)
        self._ring = ColumnRing(max(n, 1), HISTORY, np.uint8)
        self._rates = np.zeros(n, np.float32)
        self._fallback.bind(self.names)
        self._health = HealthReport()
        self._last_seq = -1
        self.heat.getAxis("left").setTicks(
            [[(i + 0.5, _short(nm)) for i, nm in enumerate(self.names)]]
        )
        self.heat.setYRange(0, max(n, 1), padding=0)
        for t in self._texts:
            self.bars_plot.removeItem(t)
        self._texts = []
        for i in range(n):
            t = pg.TextItem("", anchor=(1, 0.5), color=theme.FOREGROUND)
            t.setPos(1.0, i + 0.5)
            self.bars_plot.addItem(t)
            self._texts.append(t)
        self.image.clear()

    def clear_history(self) -> None:
        if self._ring is not None:
            self._ring.clear()
        self._fallback.reset()
        self._dirty = True

    def push(self, seq: int, frame: StepFrame) -> None:
        if self._ring is None or frame.rates.size != len(self.names):
            return
        self._ring.push(rate_level(frame.rates))
        self._rates = frame.rates
        self._health = (
            frame.health if frame.health is not None else self._fallback.update(frame.rates)
        )
        self._last_seq = seq
        self._dirty = True

    def render(self, seq: int) -> None:
        if not self._dirty or self._ring is None:
            return
        self._dirty = False
        rect = QRectF(X_RANGE[0], 0, HISTORY, len(self.names))
        show_codes(self.image, self._ring.view(), self._lut, rect)
        now = time.monotonic()
        if now - self._bars_at < BARS_PERIOD_S:
            return
        self._bars_at = now
        status = [self._health.status(n) for n in self.names]
        brushes = [pg.mkBrush(theme.status_colour(s)) for s in status]
        self.bars.setOpts(
            x0=np.zeros(len(self.names)),
            y=np.arange(len(self.names)) + 0.5,
            width=rate_position(self._rates),
            height=0.7,
            brushes=brushes,
            pens=[pen(theme.BACKGROUND)] * len(self.names),
        )
        for t, r, s in zip(self._texts, self._rates, status, strict=False):
            # A flagged layer shows its status word alone (the rate is in the heatmap and the
            # bar): "SILENT 0.00%" did not fit the bars' column in a narrow panel.
            text = f"{100 * float(r):.2f}%" if s == "ok" else s.upper()
            if t.textItem.toPlainText() != text:
                t.setText(text)
                t.setColor(theme.status_colour(s) if s != "ok" else theme.FOREGROUND)
