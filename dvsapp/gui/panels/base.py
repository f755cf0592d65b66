"""What every panel shares: a header (title, hint, controls) over a pyqtgraph canvas."""

from __future__ import annotations

import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QImage, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QGraphicsItem,
    QGraphicsScene,
    QHBoxLayout,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from dvsapp.gui import theme
from dvsapp.gui.widgets import ElidedLabel
from dvsapp.pipeline import ModelInfo, PipelineSettings, StepFrame

#: Model steps kept in every scrolling panel.
HISTORY = 300
#: Shortest time between two updates of a panel's header text.
HINT_PERIOD_S = 0.25

pg.setConfigOptions(
    imageAxisOrder="row-major",
    antialias=False,
    background=theme.BACKGROUND,
    foreground=theme.FOREGROUND,
    useOpenGL=False,
)


_STYLES = {
    "solid": Qt.PenStyle.SolidLine,
    "dash": Qt.PenStyle.DashLine,
    "dot": Qt.PenStyle.DotLine,
}


def pen(colour: str | tuple[int, ...], style: str = "solid") -> QPen:
    """A width-1 pen (wider pens cost ~5x in pyqtgraph)."""
    return pg.mkPen(colour, width=1, style=_STYLES[style])


def canvas() -> pg.GraphicsLayoutWidget:
    """A panel's pyqtgraph canvas. Its scene keeps no item index: the items change their
    bounds every frame, which makes Qt's default BSP index work on each redraw, and a
    panel has too few items for an index to save anything."""
    widget = pg.GraphicsLayoutWidget()
    widget.scene().setItemIndexMethod(QGraphicsScene.ItemIndexMethod.NoIndex)
    return widget


def set_item_text(item: pg.TextItem, text: str) -> None:
    """``item.setText(text)`` unless it shows that already (setting it anew relays the text
    out and repaints it at every redraw)."""
    if item.textItem.toPlainText() != text:
        item.setText(text)


class FixedBoundsCurve(pg.PlotCurveItem):
    """A curve whose data always lie in ``bounds`` (data coordinates; e.g. probabilities over
    the step history): its bounding rectangle is that, not pyqtgraph's nan-min/max of the
    data redone at every ``setData`` (a fifth of a curve's cost here)."""

    def __init__(self, bounds: QRectF, **kwargs: object) -> None:
        step_mode = kwargs.pop("stepMode", None)
        super().__init__(**kwargs)
        # (pyqtgraph 0.14 rejects its own empty start data in step mode: set it after)
        self.opts["stepMode"] = step_mode
        self._fixed = QRectF()
        self.set_bounds(bounds)

    def set_bounds(self, bounds: QRectF) -> None:
        """Where the data lie from now on."""
        pad_x, pad_y = 0.02 * bounds.width(), 0.02 * bounds.height()  # the pen's stroke
        self.prepareGeometryChange()
        self._fixed = bounds.adjusted(-pad_x, -pad_y, pad_x, pad_y)

    def boundingRect(self) -> QRectF:
        return QRectF(self._fixed)

    def dataBounds(
        self, ax: int, frac: float = 1.0, orthoRange: object = None
    ) -> tuple[float, float]:
        r = self._fixed
        return (r.left(), r.right()) if ax == 0 else (r.top(), r.bottom())


class CurveBundle(pg.GraphicsObject):
    """Several curves over one x (e.g. every class's probability over the step history)
    drawn by one item in one paint: eleven PlotCurveItems cost eleven items' bookkeeping at
    every redraw. ``bounds``: where the data always lie (data coordinates); NaN breaks a
    curve."""

    def __init__(self, bounds: QRectF, pens: list[QPen]) -> None:
        super().__init__()
        pad_x, pad_y = 0.02 * bounds.width(), 0.02 * bounds.height()
        self._bounds = bounds.adjusted(-pad_x, -pad_y, pad_x, pad_y)
        self.pens = list(pens)
        self.paths: list[QPainterPath] = []

    def set_data(self, x: np.ndarray, ys: np.ndarray) -> None:
        """``ys [curves, len(x)]``, one row per pen."""
        self.paths = [pg.arrayToQPath(x, y, connect="finite") for y in ys]
        self.update()

    def clear(self) -> None:
        self.paths = []
        self.update()

    def boundingRect(self) -> QRectF:
        return QRectF(self._bounds)

    def paint(self, painter: QPainter, *args: object) -> None:
        for path, p in zip(self.paths, self.pens, strict=False):
            painter.setPen(p)
            painter.drawPath(path)


def style_plot(plot: pg.PlotItem, left: str = "", bottom: str = "") -> None:
    """Dark, readable axes; no mouse panning (the panels scroll on their own)."""
    for name in ("left", "bottom"):
        ax = plot.getAxis(name)
        ax.setPen(pg.mkPen(theme.MUTED, width=1))
        ax.setTextPen(pg.mkPen(theme.FOREGROUND, width=1))
        ax.enableAutoSIPrefix(False)
        # Drawn once into a pixmap and blitted after (its text costs more than its plot's
        # data): Qt repaints it only when its ticks change.
        ax.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)
    if left:
        plot.setLabel("left", left)
    if bottom:
        plot.setLabel("bottom", bottom)
    plot.setMenuEnabled(False)
    plot.setMouseEnabled(x=False, y=False)
    plot.hideButtons()


class Panel(QWidget):
    """A titled panel. Subclasses fill :attr:`body` and implement the three hooks."""

    title = "panel"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName(type(self).__name__)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(2, 2, 2, 2)
        outer.setSpacing(0)
        self.header = QHBoxLayout()
        self.header.setContentsMargins(0, 0, 0, 0)
        # A note may follow the name (e.g. binning differs from training): cut, not widened.
        self.title_label = ElidedLabel(self.title, min_chars=len(self.title))
        self.title_label.setObjectName("panelTitle")
        # Elides rather than widening the panel as the numbers in it change.
        self.hint_label = ElidedLabel("")
        self.hint_label.setObjectName("panelHint")
        self.header.addWidget(self.title_label)
        self.header.addWidget(self.hint_label, 1)
        outer.addLayout(self.header)
        self.body = QVBoxLayout()
        self.body.setContentsMargins(0, 0, 0, 0)
        outer.addLayout(self.body, 1)
        self.info: ModelInfo | None = None
        self._hint_pending: str | None = None
        self._hint_at = 0.0

    def add_layer_box(self, tooltip: str) -> QComboBox:
        """A layer chooser at the right of the header (the in-depth panels show one layer)."""
        box = QComboBox()
        box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        box.setMinimumContentsLength(10)
        box.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        box.setToolTip(tooltip)
        self.header.addWidget(box)
        return box

    def add_stats_line(self) -> ElidedLabel:
        """A one-line figures label at the top of the body (elided, whole in its tooltip)."""
        label = ElidedLabel("")
        label.setObjectName("panelStats")
        label.setIndent(4)
        self.body.addWidget(label)
        return label

    def set_hint(self, text: str) -> None:
        """Update the header's hint at most :data:`HINT_PERIOD_S` apart (a label's relayout
        is not free); :meth:`flush_hint` shows the last one."""
        self._hint_pending = text
        now = time.monotonic()
        if now - self._hint_at >= HINT_PERIOD_S:
            self.flush_hint(now)

    def flush_hint(self, now: float | None = None) -> None:
        """Show a hint held back by :meth:`set_hint`."""
        if self._hint_pending is not None:
            if self._hint_pending != self.hint_label.text():
                self.hint_label.setText(self._hint_pending)
            self._hint_pending = None
            self._hint_at = time.monotonic() if now is None else now

    def set_model(self, info: ModelInfo, settings: PipelineSettings) -> None:
        """A model was (re)loaded: lay out for it and forget the history."""
        self.info = info

    def update_info(self, info: ModelInfo) -> None:
        """Same model, new details (e.g. which neurons the rasters and Vm carry)."""
        self.info = info

    def clear_history(self) -> None:
        """The stream restarted (seek, new recording or binning): forget the history."""

    def push(self, seq: int, frame: StepFrame) -> None:
        """Take one step (``seq``: the GUI's monotonic step count). Must be cheap."""

    def render(self, seq: int) -> None:
        """Redraw with everything pushed up to step ``seq``."""


#: Every scrolling panel's fixed x range, in steps relative to the newest (0 = now). A fixed
#: range keeps the axes still, so a redraw repaints the data, not every axis.
X_RANGE = (-HISTORY + 0.5, 0.5)
#: The x of each history column, oldest first.
X_STEPS = np.arange(-HISTORY + 1, 1, dtype=np.float64)
STEP_AXIS = "steps ago"


def rgba_lut(rgb: np.ndarray) -> np.ndarray:
    """uint8 [n, 3] colours -> uint32 [n] opaque words ``0xFFRRGGBB`` (QImage's ARGB32 on
    any byte order), for :func:`show_codes`."""
    rgb = np.asarray(rgb, np.uint32).reshape(-1, 3)
    return (0xFF000000 | (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]).astype(np.uint32)


class CodesImage(pg.ImageItem):
    """The image item of :func:`show_codes`: its ``[h, w, 4]`` uint8 image holds ARGB32
    words (opaque, or all zero: nothing), which reach the painter as a premultiplied ARGB32
    QImage over the same memory. That is the raster engine's own format: drawn without a
    conversion, where pyqtgraph's RGBA8888 image was converted at every paint."""

    def __init__(self) -> None:
        super().__init__(axisOrder="row-major")

    def render(self) -> None:
        img = self.image
        if img is None or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 4:
            super().render()
            return
        img = np.ascontiguousarray(img)
        self.qimage = pg.functions.ndarray_to_qimage(img, QImage.Format.Format_ARGB32_Premultiplied)
        self._renderRequired = False
        self._unrenderable = False


def show_codes(
    item: pg.ImageItem, codes: np.ndarray, lut: np.ndarray, rect: QRectF | None = None
) -> None:
    """Draw uint8 ``codes`` through the RGBA ``lut`` (from :func:`rgba_lut`).

    The colours are looked up here (one ``np.take`` of 32-bit words) rather than by the
    ImageItem: a 32-bit image in the painter's own format reaches it ready
    (:class:`CodesImage`), while an 8-bit indexed one is converted on every paint. No
    levels: nothing is rescaled. ``rect``: where the image goes in data coordinates
    (ImageItem derives the placement from the image's size, so it is set after the image).
    """
    assert isinstance(item, CodesImage), "show_codes draws into a CodesImage"
    words = np.take(lut, codes)
    item.setImage(words.view(np.uint8).reshape(*codes.shape, 4), autoLevels=False, levels=None)
    if rect is not None:
        item.setRect(rect)


def finite_or(value: np.ndarray, fill: float) -> np.ndarray:
    """``value`` with NaN/inf replaced by ``fill``."""
    return np.where(np.isfinite(value), value, fill)
