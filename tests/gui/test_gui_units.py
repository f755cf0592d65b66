"""The GUI's pure pieces: ring buffer, colour mapping, row -> neuron, the mailbox bridge."""

from __future__ import annotations

import threading

import numpy as np

from dvsapp.gui import theme
from dvsapp.gui.bridge import MailboxBridge
from dvsapp.gui.neurons import raster_row_to_flat
from dvsapp.gui.panels.event_view import event_image
from dvsapp.gui.panels.rates import rate_level
from dvsapp.gui.ring import ColumnRing
from dvsapp.gui.slots import reset_slot_report, slot_report
from dvsapp.pipeline import Mailbox, ModelInfo, PipelineSettings

from .fake_pipeline import FakePipeline


def test_ring_keeps_the_newest_columns_in_order() -> None:
    ring = ColumnRing(2, 4, np.int32)
    for v in range(1, 7):
        ring.push(np.array([v, -v]))
        assert ring.latest().tolist() == [v, -v]
    assert ring.view().tolist() == [[3, 4, 5, 6], [-3, -4, -5, -6]]
    ring.load_row(0, np.array([9, 8, 7, 6]))
    ring.push(np.array([1, 1]))
    assert ring.view()[0].tolist() == [8, 7, 6, 1]
    ring.clear()
    assert not ring.view().any() and ring.count == 0


def test_event_codes_separate_polarities() -> None:
    on = np.zeros((4, 5), np.uint16)
    off = np.zeros((4, 5), np.uint16)
    on[0, 0], off[1, 1], on[2, 2], off[2, 2] = 1, 1, 50, 50
    codes = event_image(on, off)
    n = theme.EVENT_LEVELS
    assert codes[3, 3] == 0  # nothing: the background
    assert codes[0, 0] == 1 * n and codes[1, 1] == 1  # one event each: level 1
    assert codes[2, 2] // n == codes[2, 2] % n > 1  # both polarities, brighter
    assert theme.event_lut().shape == (n * n, 3)


def test_rate_levels_are_logarithmic_and_zero_is_black() -> None:
    lv = rate_level(np.array([0.0, 1e-5, 1e-4, 1e-2, 1.0, np.nan]))
    assert lv[0] == 0 and lv[-1] == 0  # silence (and NaN) draw as black
    assert lv[1] == lv[2] == 1  # at or below the floor: the first level
    assert lv[3] == 128 and lv[4] == 255


def _info(**kw) -> ModelInfo:
    base = dict(
        name="m",
        arch="a",
        family="tdbn",
        class_names=["x"],
        layer_names=["conv", "fc"],
        layer_shapes={"conv": (4, 3, 5), "fc": (10,)},
        thresholds={"conv": 1.0, "fc": 1.0},
        window_steps=4,
        bin_us=1000,
        input_size=(5, 3),
        sensor_size=(5, 3),
        device="cpu",
        trained=False,
    )
    base.update(kw)
    return ModelInfo(**base)


def test_raster_rows_map_to_flat_neurons() -> None:
    s = PipelineSettings()
    info = _info(raster_index={"conv": np.array([7, 3, 50])})
    assert raster_row_to_flat(info, s, "conv", 1, 3) == 3
    assert raster_row_to_flat(info, s, "conv", 3, 3) is None
    assert raster_row_to_flat(info, s, "fc", 4, 10) == 4  # every neuron shown
    s2 = PipelineSettings(raster_channel={"conv": 2})
    assert raster_row_to_flat(_info(), s2, "conv", 5, 15) == 2 * 15 + 5
    assert raster_row_to_flat(_info(), s, "conv", 5, 7) is None  # stale raster


def test_bridge_wakes_once_per_drain_and_on_the_gui_thread(qtbot) -> None:
    reset_slot_report()
    box = Mailbox(maxlen=1000)
    bridge = MailboxBridge()
    bridge.attach(box)
    bridge.take(force=True)
    pipe = FakePipeline(PipelineSettings(), mailbox=box)
    pipe._publish_info()
    frames = [pipe._frame(i) for i in range(50)]

    def produce() -> None:
        for f in frames:
            box.put(f)

    worker = threading.Thread(target=produce)
    worker.start()
    worker.join()
    qtbot.waitUntil(lambda: bridge.dirty, timeout=5000)
    assert bridge.wakeups == 1  # 50 puts, one pending wake-up
    got = bridge.take()
    assert [f.index for f in got] == list(range(50))
    assert bridge.take() == []  # not dirty
    box.put(frames[0])
    qtbot.waitUntil(lambda: bridge.wakeups == 2, timeout=5000)
    calls, off = slot_report()
    assert calls["MailboxBridge.note_frames_waiting"] == 2 and off == {}
    bridge.detach()


def test_fixed_bounds_curve_draws_its_data_within_its_bounds(qtbot) -> None:
    """The prediction panel's curves keep a fixed bounding rectangle (no nan-min/max per
    frame): it must hold every point the curve draws, or Qt would leave stale pixels."""
    import pyqtgraph as pg
    from PySide6.QtCore import QRectF

    from dvsapp.gui.panels.base import X_RANGE, X_STEPS, FixedBoundsCurve, canvas

    widget = canvas()
    qtbot.addWidget(widget)
    plot = widget.addPlot()
    curve = FixedBoundsCurve(QRectF(X_RANGE[0], 0, len(X_STEPS), 1), pen=pg.mkPen("w"))
    plot.addItem(curve)
    y = np.linspace(0.0, 1.0, X_STEPS.size)
    y[::7] = np.nan
    curve.setData(X_STEPS, y, connect="finite")
    rect = curve.boundingRect()
    assert rect.contains(curve.getPath().boundingRect())
    assert curve.dataBounds(0) == (rect.left(), rect.right())
    assert curve.dataBounds(1) == (rect.top(), rect.bottom())
    widget.resize(300, 200)
    widget.show()
    qtbot.waitExposed(widget)
    image = widget.grab().toImage()
    lit = sum(  # the white curve's pixels on the dark background
        image.pixelColor(x, yy).lightness() > 200
        for x in range(0, image.width(), 3)
        for yy in range(image.height())
    )
    assert lit > 20


def test_raster_marks_are_hidden_until_a_row_is_traced(qtbot) -> None:
    """An empty marker item is not painted at every redraw: hidden until a row is traced,
    hidden again when none is."""
    import pyqtgraph as pg

    from dvsapp.gui.panels.rasters import LayerRaster

    widget = pg.GraphicsLayoutWidget()
    qtbot.addWidget(widget)
    raster = LayerRaster("lif1", "#55aaff", widget.addPlot(), pg.LabelItem(""))
    assert not raster.marks.isVisible()
    raster.mark([(3, "#ff0000")])
    assert raster.marks.isVisible() and raster.marks.data.size == 1
    raster.mark([])
    assert not raster.marks.isVisible()


def test_codes_image_draws_the_lut_colours_and_nothing_for_zero_words(qtbot) -> None:
    """show_codes' images reach Qt as ARGB32 over the LUT's words: each code must come out
    in its colour (red stays red: no byte-order swap), and an all-zero image draws nothing
    (the background shows)."""
    from PySide6.QtCore import QRectF

    from dvsapp.gui.panels.base import CodesImage, canvas, rgba_lut, show_codes

    widget = canvas()
    qtbot.addWidget(widget)
    view = widget.addViewBox()
    view.setRange(QRectF(0, 0, 2, 2), padding=0)
    item = CodesImage()
    view.addItem(item)
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [250, 200, 10]], np.uint8)
    show_codes(item, np.array([[0, 1], [2, 3]], np.uint8), rgba_lut(colours), QRectF(0, 0, 2, 2))
    widget.resize(200, 200)
    widget.show()
    qtbot.waitExposed(widget)
    image = widget.grab().toImage()
    w, h = image.width(), image.height()

    def at(fx: float, fy: float) -> tuple[int, int, int]:
        c = image.pixelColor(int(fx * w), int(fy * h))
        return c.red(), c.green(), c.blue()

    # row 0 of the image is y = 0, at the bottom of a ViewBox (y points up)
    assert at(0.25, 0.75) == (255, 0, 0)
    assert at(0.75, 0.75) == (0, 255, 0)
    assert at(0.25, 0.25) == (0, 0, 255)
    assert at(0.75, 0.25) == (250, 200, 10)
    background = widget.backgroundBrush().color()
    item.setImage(np.zeros((2, 2, 4), np.uint8))
    image = widget.grab().toImage()
    c = image.pixelColor(w // 2, h // 2)
    assert (c.red(), c.green(), c.blue()) == (
        background.red(), background.green(), background.blue(),
    )  # fmt: skip


def test_curve_bundle_draws_each_curve_in_its_pen_and_breaks_at_nan(qtbot) -> None:
    """The prediction panel's one item for all class curves: each row in its own colour,
    a NaN leaving a gap, and nothing after clear()."""
    import pyqtgraph as pg
    from PySide6.QtCore import QRectF

    from dvsapp.gui.panels.base import CurveBundle, canvas

    widget = canvas()
    qtbot.addWidget(widget)
    view = widget.addViewBox()
    view.setRange(QRectF(0, 0, 10, 1), padding=0)
    bundle = CurveBundle(QRectF(0, 0, 10, 1), [pg.mkPen("#ff0000"), pg.mkPen("#00ff00")])
    view.addItem(bundle)
    x = np.arange(11, dtype=np.float64)
    ys = np.array([np.full(11, 0.25), np.full(11, 0.75)])
    ys[1, 4:7] = np.nan
    bundle.set_data(x, ys)
    widget.resize(220, 200)
    widget.show()
    qtbot.waitExposed(widget)

    def colours_in_column(fx: float) -> set[tuple[int, int, int]]:
        image = widget.grab().toImage()
        col = int(fx * image.width())
        out = set()
        for yy in range(image.height()):
            c = image.pixelColor(col, yy)
            out.add((c.red(), c.green(), c.blue()))
        return out

    assert {(255, 0, 0), (0, 255, 0)} <= colours_in_column(0.15)
    mid = colours_in_column(0.52)  # x = 5.2: the green curve's gap
    assert (255, 0, 0) in mid and (0, 255, 0) not in mid
    bundle.clear()
    assert not {(255, 0, 0), (0, 255, 0)} & colours_in_column(0.15)
