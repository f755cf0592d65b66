"""The evolving class prediction: each class's probability over time, the current ranking,
every window's early-exit step as a labelled marker, and the true label as a band."""

from __future__ import annotations

from collections import deque

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF
from PySide6.QtWidgets import QGraphicsLineItem, QWidget

from dvsapp.gui import theme
from dvsapp.gui.panels.base import (
    HISTORY,
    STEP_AXIS,
    X_RANGE,
    X_STEPS,
    CodesImage,
    CurveBundle,
    Panel,
    canvas,
    pen,
    rgba_lut,
    show_codes,
    style_plot,
)
from dvsapp.gui.ring import ColumnRing
from dvsapp.pipeline import ModelInfo, PipelineSettings, StepFrame
from dvsapp.snn.stepper import WindowResult

#: Heights (in probability) of the rows that marker labels go in, top first: two, so
#: labels never stack over the curves; a marker with no room keeps its line (and tooltip).
LABEL_ROWS = (0.96, 0.87)
#: Pixels per character of a bar label (the tick font), and the bars' share of the panel
#: their names may take at most.
CHAR_PX = 7
NAME_SHARE = 0.22
NO_EXIT_COLOUR = "#4a515b"
#: How a marker label names the exit that fired (WindowResult.exit_reason -> tag).
EXIT_TAGS = {"confidence": "conf", "temporal": "γ"}
Y_TOP = 1.02


def exit_text(name: str, reason: str | None) -> str:
    """A marker's label: the class chosen at exit and which exit fired (conf or γ)."""
    tag = EXIT_TAGS.get(reason or "", reason or "")
    return f"{_short(name)} · {tag}" if tag else _short(name)


def _short(name: str, n: int = 14) -> str:
    return name if len(name) <= n else name[: n - 1] + "…"


def label_width_px(name: str) -> int:
    """A generous estimate of a marker label's width."""
    return 7 * len(_short(name)) + 10 + 7 * 7  # room for the exit's tag (" · conf")


class ExitMarker:
    """One window's decision: a vertical line at its exit step. A fired exit is drawn in the
    chosen class's colour and labelled with it (when a label row has room); a window that
    ran to its end without exiting gets a dim dotted line. The label sits left of its line,
    so the newest one is always whole. Items are children of the panel's marker group,
    placed at the GUI step count ``seq``."""

    def __init__(
        self,
        group: pg.ItemGroup,
        seq: int,
        window: int,
        cls: int,
        name: str,
        fired: bool,
        row: int | None,
    ) -> None:
        self.seq, self.window, self.cls, self.name, self.fired = seq, window, cls, name, fired
        self.reason: str | None = None  # which exit fired, once the window's result says
        colour = theme.colour(cls) if fired else NO_EXIT_COLOUR
        self.line = QGraphicsLineItem(seq, 0.0, seq, Y_TOP, group)
        self.line.setPen(pen(colour, "solid" if fired else "dot"))
        self.label: pg.TextItem | None = None
        self.label_steps = 0.0  # the label's width on the x axis (it sits left of the line)
        if row is not None:
            self.label = pg.TextItem(
                _short(name), color=colour, fill=pg.mkBrush(20, 23, 28, 210), anchor=(1, 0.5)
            )
            self.label.setParentItem(group)
            self.label.setPos(seq, LABEL_ROWS[row])

    def relabel(self, cls: int, name: str, reason: str | None = None) -> None:
        """The window's result: the exit class and which exit fired (conf or γ)."""
        self.cls, self.name, self.reason = cls, name, reason
        self.line.setPen(pen(theme.colour(cls)))
        if self.label is not None:
            self.label.setText(exit_text(name, reason), color=theme.colour(cls))
        self.line.setToolTip(f"{name}: {reason or 'no'} exit")

    def remove(self) -> None:
        """Take the items out of the scene (the group stays)."""
        for item in (self.label, self.line):
            if item is not None:
                scene = item.scene()
                item.setParentItem(None)
                if scene is not None:
                    scene.removeItem(item)
        self.label = None


class PredictionPanel(Panel):
    """Probabilities (curves), ranking (bars), exits (markers), truth (band).

    The x axis is fixed (steps ago): markers live in one item group placed at absolute
    step counts, and each redraw moves only the group, not every marker.
    """

    title = "Prediction"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.canvas = canvas()
        self.canvas.ci.layout.setSpacing(2)
        self.body.addWidget(self.canvas)
        self.probs_plot = self.canvas.addPlot(row=0, col=0)
        style_plot(self.probs_plot, left="p(class)")
        self.probs_plot.setYRange(0, Y_TOP, padding=0)
        self.probs_plot.setXRange(*X_RANGE, padding=0)
        self.probs_plot.getAxis("bottom").setStyle(showValues=False)
        self.probs_plot.getAxis("bottom").setHeight(4)
        self.group = pg.ItemGroup()
        self.probs_plot.addItem(self.group)
        self.band_plot = self.canvas.addPlot(row=1, col=0)
        style_plot(self.band_plot, bottom=STEP_AXIS)
        self.band_plot.setXLink(self.probs_plot)
        self.band_plot.setFixedHeight(44)
        self.band_plot.getAxis("left").setTicks([[(0.5, "true")]])
        self.band_plot.getAxis("left").setWidth(self.probs_plot.getAxis("left").width())
        self.band_plot.setYRange(0, 1, padding=0)
        self.band = CodesImage()
        self.band_plot.addItem(self.band)
        self.bars_plot = self.canvas.addPlot(row=0, col=1, rowspan=2)
        style_plot(self.bars_plot, bottom="now")
        self.bars_plot.invertY(True)
        self.bars_plot.setXRange(0, 1, padding=0.02)
        self.bars_plot.getAxis("bottom").setTicks([[(0, "0"), (0.5, ".5"), (1, "1")]])
        self.canvas.ci.layout.setColumnStretchFactor(0, 4)
        self.canvas.ci.layout.setColumnStretchFactor(1, 1)
        self.bars = pg.BarGraphItem(x0=[], y=[], height=0.7, width=[])
        self.bars_plot.addItem(self.bars)
        #: every class's probability over the history, one colour each
        self.curves = CurveBundle(QRectF(X_RANGE[0], 0, HISTORY, 1), [])
        self.probs_plot.addItem(self.curves)
        self.markers: deque[ExitMarker] = deque()
        self.class_names: list[str] = []
        self._ring: ColumnRing | None = None
        self._band: ColumnRing = ColumnRing(1, HISTORY, np.uint8)
        self._has_labels = False
        self._marked_windows: dict[int, ExitMarker] = {}
        self._row_last = [-(10**9)] * len(LABEL_ROWS)
        self._probs = np.zeros(0, np.float32)
        self._true: int | None = None
        self._true_name: str | None = None
        self._last_seq = -1
        self._dirty = False
        self.band_plot.setVisible(False)
        self.binning_note = ""  # how the binning differs from training ("" when it does not)
        self._name_room = -1  # characters of class name the bars have room for

    @property
    def exit_markers(self) -> list[ExitMarker]:
        """The markers drawn now (oldest first)."""
        return list(self.markers)

    def marker_x(self, marker: ExitMarker) -> float:
        """Where ``marker`` is on the (steps ago) x axis now."""
        return marker.seq + self.group.pos().x()

    def set_model(self, info: ModelInfo, settings: PipelineSettings) -> None:
        super().set_model(info, settings)
        self.class_names = list(info.class_names)
        k = len(self.class_names)
        self.curves.pens = [pen(theme.colour(i)) for i in range(k)]
        self.curves.clear()
        self._ring = ColumnRing(max(k, 1), HISTORY, np.float32, np.nan)
        self._band.clear()
        self._clear_markers()
        colours = [theme.BACKGROUND] + [theme.colour(i) for i in range(255)]
        self._band_lut = rgba_lut(np.array([theme.hex_rgb(c) for c in colours], np.uint8))
        self._name_room = -1
        self._fit_bar_names()
        self.bars_plot.setYRange(-0.5, k - 0.5, padding=0)
        self.hint_label.setText(f"{k} classes  ·  window of {info.window_steps} steps")
        self._last_seq = -1
        self._clear_now()  # nothing of the previous model's stays drawn

    def _fit_bar_names(self) -> None:
        """Class names beside the bars: whole where the panel has room (up to NAME_SHARE of
        its width), else shortened to fit, the axis sized to them; redone on resizes."""
        room = int(self.canvas.width() * NAME_SHARE) // CHAR_PX
        if room == self._name_room or not self.class_names:
            return
        self._name_room = room
        longest = max(len(n) for n in self.class_names)
        chars = max(8, min(longest, room))
        names = [(i, _short(n, chars)) for i, n in enumerate(self.class_names)]
        self.bars_plot.getAxis("left").setTicks([names])
        self.bars_plot.getAxis("left").setWidth(CHAR_PX * chars + 10)
        self.bars_plot.setToolTip("\n".join(self.class_names))

    def _clear_now(self) -> None:
        """Empty the bars and curves at once (no frame of the stream drawn now)."""
        self._probs = np.zeros(0, np.float32)
        self.bars.setOpts(x0=[], y=[], width=[], height=0.7, brushes=[])
        self.curves.clear()
        self._dirty = False

    def set_binning_note(self, info: ModelInfo) -> None:
        """Mark the panel when the bins or the window differ from the checkpoint's own."""
        tb, tw = info.trained_bin_us, info.trained_window_steps
        parts = []
        if tb and info.bin_us != tb:
            parts.append(f"{info.bin_us / 1000:g} ms bins, trained on {tb / 1000:g} ms")
        if tw and info.window_steps != tw:
            parts.append(f"{info.window_steps} steps, trained on {tw}")
        self.binning_note = "; ".join(parts)
        self.title_label.setText(
            f"{self.title} <span style='color:#ffb74d'>(binning differs from training: "
            f"{self.binning_note})</span>"
            if parts
            else self.title
        )

    def clear_history(self) -> None:
        if self._ring is not None:
            self._ring.clear()
        self._band.clear()
        self._clear_markers()
        self._clear_now()

    def _clear_markers(self) -> None:
        for m in self.markers:
            m.remove()
        self.markers.clear()
        self._marked_windows.clear()
        self._row_last = [-(10**9)] * len(LABEL_ROWS)

    def _name(self, cls: int) -> str:
        return self.class_names[cls] if 0 <= cls < len(self.class_names) else str(cls)

    def push(self, seq: int, frame: StepFrame) -> None:
        if self._ring is None or frame.probs.size != self._ring.rows:
            return
        self._ring.push(frame.probs)
        self._probs = frame.probs
        self._true = frame.true_label
        self._true_name = frame.true_name
        self._band.push(0 if frame.true_label is None else min(frame.true_label + 1, 255))
        self._has_labels = self._has_labels or frame.true_label is not None
        if frame.exited and frame.window not in self._marked_windows:
            self._add_marker(seq, frame.window, frame.pred, self._name(frame.pred), True)
        if frame.window_result is not None:
            self._close_window(seq, frame.window_result)
        self._last_seq = seq
        self._dirty = True

    def _close_window(self, seq: int, res: WindowResult) -> None:
        mark = self._marked_windows.get(res.window)
        if res.exit_reason is not None:
            if mark is None:  # the exit step itself was not seen: place it from the result
                at = seq - (res.steps - res.exit_step)
                self._add_marker(at, res.window, res.exit_pred, res.exit_label, True)
                mark = self._marked_windows[res.window]
            mark.relabel(res.exit_pred, res.exit_label, res.exit_reason)
        elif mark is None:
            self._add_marker(seq, res.window, res.pred, res.label, False)

    def _label_row(self, seq: int, name: str) -> int | None:
        """The first label row where this label clears the one before it (None: no room)."""
        need = label_width_px(name) / self._px_per_step()
        for row, last in enumerate(self._row_last):
            if seq - last >= need:
                self._row_last[row] = seq
                return row
        return None

    def _px_per_step(self) -> float:
        return max(self.probs_plot.vb.width(), 100.0) / HISTORY

    def _add_marker(self, seq: int, window: int, cls: int, name: str, fired: bool) -> None:
        row = self._label_row(seq, name) if fired else None
        marker = ExitMarker(self.group, seq, window, cls, name, fired, row)
        marker.label_steps = label_width_px(name) / self._px_per_step()
        self._marked_windows[window] = marker
        self.markers.append(marker)
        while len(self._marked_windows) > 64:
            self._marked_windows.pop(next(iter(self._marked_windows)))

    def render(self, seq: int) -> None:
        if not self._dirty or self._ring is None:
            return
        self._fit_bar_names()
        self._dirty = False
        last = self._last_seq
        view = self._ring.view()
        self.curves.set_data(X_STEPS, view)
        while self.markers and self.markers[0].seq - last <= -HISTORY:
            self.markers.popleft().remove()
        self.group.setPos(-last, 0)
        for m in self.markers:  # a label that would run past the left edge goes
            if m.label is not None and m.seq - last - m.label_steps < X_RANGE[0]:
                m.label.setVisible(False)
        k = len(self._probs)
        order = np.argsort(self._probs)[::-1]
        brushes = [pg.mkBrush(theme.colour(i)) for i in range(k)]
        self.bars.setOpts(
            x0=np.zeros(k), y=np.arange(k), width=self._probs, height=0.7, brushes=brushes
        )
        top = "  ".join(
            f"{_short(self._name(int(i)))} {100 * self._probs[i]:.0f}%" for i in order[:3]
        )
        hint = f"top: {top}"
        if self._has_labels:
            self.band_plot.setVisible(True)
            rect = QRectF(X_RANGE[0], 0, HISTORY, 1)
            show_codes(self.band, self._band.view(), self._band_lut, rect)
            true = self._true_name or ("none" if self._true is None else self._name(self._true))
            colour = theme.MUTED if self._true is None else theme.colour(self._true)
            hint += f"   ·   true: <span style='color:{colour}'>{true}</span>"
        self.set_hint(hint)
