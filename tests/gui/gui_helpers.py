"""Pixels of a widget's grab() as numpy, and counts the tests assert on."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QWidget

from dvsapp.gui import theme
from dvsapp.gui.main_window import MainWindow

#: The longest any GUI test waits for the pipeline (a loaded 2-core machine is slow).
WAIT_MS = 60_000


def image_array(image: QImage) -> np.ndarray:
    """uint8 [H, W, 3] RGB copy of a QImage."""
    img = image.convertToFormat(QImage.Format.Format_RGB888)
    h, w, bpl = img.height(), img.width(), img.bytesPerLine()
    return (
        np.frombuffer(img.constBits(), np.uint8, h * bpl)
        .reshape(h, bpl)[:, : w * 3]
        .reshape(h, w, 3)
        .copy()
    )


def grab(widget: QWidget) -> np.ndarray:
    """The widget as it is drawn now."""
    return image_array(widget.grab().toImage())


def background(rgb: np.ndarray) -> np.ndarray:
    """The most common colour."""
    flat = rgb.reshape(-1, 3).astype(np.int32)
    keys = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    vals, counts = np.unique(keys, return_counts=True)
    k = int(vals[counts.argmax()])
    return np.array([k >> 16, (k >> 8) & 255, k & 255], np.uint8)


def foreground_pixels(rgb: np.ndarray, bg: np.ndarray | None = None) -> int:
    """Pixels that differ from the background (the most common colour, or ``bg``)."""
    ref = background(rgb) if bg is None else bg
    return int(np.any(rgb != ref, axis=2).sum())


def distinct_colours(rgb: np.ndarray) -> int:
    """How many different colours the image holds."""
    flat = rgb.reshape(-1, 3).astype(np.int32)
    return int(np.unique((flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]).size)


def make_window(qtbot, pipe, models=None, start: bool = False) -> MainWindow:
    """A shown 1600x1000 main window around ``pipe`` (``models`` in its chooser when
    given), started when ``start``."""
    win = MainWindow(pipe) if models is None else MainWindow(pipe, models)
    qtbot.addWidget(win)
    win.resize(1600, 1000)
    win.show()
    qtbot.waitExposed(win)
    if start:
        win.start()
    return win


def wait_steps(qtbot, win: MainWindow, steps: int) -> None:
    """Until the model is laid out and ``steps`` frames were drawn, then one more redraw."""
    qtbot.waitUntil(lambda: win.info is not None and win.seq >= steps, timeout=WAIT_MS)
    qtbot.wait(60)


def marker_pixels(win: MainWindow) -> list[int]:
    """For each exit marker in view: rows of the prediction panel's grab where the marker's
    colour shows in its column (a drawn vertical line covers most of the plot's height)."""
    from dvsapp.gui.panels.prediction import NO_EXIT_COLOUR

    panel = win.prediction
    rgb = grab(panel)
    out = []
    lo, hi = panel.probs_plot.vb.viewRange()[0]
    for m in panel.exit_markers:
        x = panel.marker_x(m)
        if not lo < x < hi:
            continue
        scene = panel.probs_plot.vb.mapViewToScene(QPointF(x, 0.5))
        pt = panel.canvas.mapTo(panel, panel.canvas.mapFromScene(scene))
        want = theme.hex_rgb(theme.colour(m.cls) if m.fired else NO_EXIT_COLOUR)
        cols = rgb[:, max(pt.x() - 1, 0) : pt.x() + 2]
        out.append(int(np.all(cols == np.array(want, np.uint8), axis=2).any(axis=1).sum()))
    return out


def trace_pixels(win: MainWindow, index: int | None = None) -> int:
    """Pixels of the Vm panel drawn in a trace's colour (trace ``index``, or any)."""
    rgb = grab(win.vm)
    picks = range(len(win.vm.neurons)) if index is None else [index]
    hits = np.zeros(rgb.shape[:2], bool)
    for i in picks:
        hits |= np.all(rgb == np.array(theme.hex_rgb(theme.colour(i)), np.uint8), axis=2)
    return int(hits.sum())


def _keys(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.int64)
    return (a[..., 0] << 16) | (a[..., 1] << 8) | a[..., 2]


def colour_pixels(rgb: np.ndarray, colours: np.ndarray) -> int:
    """Pixels whose colour is one of ``colours`` (uint8 [n, 3])."""
    return int(np.isin(_keys(rgb), _keys(np.asarray(colours, np.uint8))).sum())


def data_pixels(win: MainWindow) -> dict[str, int]:
    """Per panel, pixels drawn in the colours only its data uses (spikes, rates, curves...)."""
    palette = np.array([theme.hex_rgb(c) for c in theme.PALETTE], np.uint8)
    events = theme.event_lut()[1:]  # not level (0, 0): the background
    heat = theme.heat_lut()[1:]
    return {
        "EventView": colour_pixels(grab(win.events), events),
        "RasterPanel": colour_pixels(grab(win.rasters), palette),
        "RatesPanel": colour_pixels(grab(win.rates), heat),
        "PredictionPanel": colour_pixels(grab(win.prediction), palette),
        "VmPanel": trace_pixels(win),
    }
