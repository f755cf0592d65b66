"""The in-depth probe panels (Vm histogram, channels, synaptic operations) on hand-made
frames: what they draw, in pixels, and what they say."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt

from dvsapp.gui import theme
from dvsapp.gui.panels import channels as ch_mod
from dvsapp.gui.panels import vm_hist
from dvsapp.gui.panels.channels import ChannelPanel, tile_grid
from dvsapp.gui.panels.synops import KIND_COLOURS, OFF_TEXT, SynopsPanel, si
from dvsapp.gui.panels.vm_hist import VmHistogramPanel, count_levels
from dvsapp.pipeline import ModelInfo, PipelineSettings, StepFrame
from dvsapp.snn.analysis.records import (
    VM_BINS,
    ChannelStats,
    StepAnalysis,
    SynapticLayer,
    VmStats,
)

from .gui_helpers import grab

LAYERS = {
    "conv1.lif": (8, 12, 12),
    "conv2.lif": (16, 6, 6),
    "fc1.lif": (32,),
    "out.lif": (3,),
}
SYN = ["conv1", "conv2", "fc1", "out"]
SIZE = (400, 300)


def make_info(layers: dict[str, tuple[int, ...]] | None = None, **kw) -> ModelInfo:
    layers = LAYERS if layers is None else layers
    base = dict(
        name="m",
        arch="a",
        family="tdbn",
        class_names=["a", "b", "c"],
        layer_names=list(layers),
        layer_shapes=dict(layers),
        thresholds={n: 1.0 for n in layers},
        window_steps=8,
        bin_us=10_000,
        input_size=(12, 12),
        sensor_size=(12, 12),
        device="cpu",
        trained=False,
        synaptic_layers=list(SYN),
    )
    base.update(kw)
    return ModelInfo(**base)


def make_frame(
    n: int,
    analysis: StepAnalysis | None,
    spike_map: np.ndarray | None = None,
    steps: int = 8,
) -> StepFrame:
    window, step = divmod(n, steps)
    return StepFrame(
        index=n,
        window=window,
        step=step + 1,
        t_start_us=n * 10_000,
        t_end_us=(n + 1) * 10_000,
        events_on=np.zeros((12, 12), np.uint16),
        events_off=np.zeros((12, 12), np.uint16),
        raster={},
        vm={},
        rates=np.zeros(len(LAYERS), np.float32),
        probs=np.full(3, 1 / 3, np.float32),
        pred=0,
        exited=False,
        window_result=None,
        health=None,
        latency_ms=1.0,
        true_label=None,
        analysis=analysis,
        spike_map=spike_map,
    )


def vm_stats(counts: np.ndarray, threshold_now: float = 1.0, near: float = 0.123) -> VmStats:
    return VmStats(
        counts=counts.astype(np.int64),
        neurons=int(counts.sum()),
        threshold_now=threshold_now,
        near=near,
        mean=0.25,
        std=0.5,
        min=-4.0,
        max=4.0,
    )


def shown(qtbot, panel, size: tuple[int, int] = SIZE):
    panel.setStyleSheet(theme.STYLESHEET)
    qtbot.addWidget(panel)
    panel.resize(*size)
    panel.show()
    qtbot.waitExposed(panel)
    return panel


def to_panel(panel, vb, x: float, y: float) -> QPoint:
    """Panel pixel of view point (x, y) in ``vb``."""
    scene = vb.mapViewToScene(QPointF(x, y))
    return panel.canvas.mapTo(panel, panel.canvas.mapFromScene(scene))


def colour_mask(rgb: np.ndarray, colour: str | tuple[int, int, int]) -> np.ndarray:
    want = theme.hex_rgb(colour) if isinstance(colour, str) else colour
    return np.all(rgb == np.array(want, np.uint8), axis=2)


# -- Vm histogram -------------------------------------------------------------------------
def test_vm_histogram_bars_follow_log_counts_and_the_marker_follows_the_threshold(
    qtbot,
) -> None:
    panel = shown(qtbot, VmHistogramPanel())
    panel.text_period_s = 0.0
    panel.set_model(make_info(), PipelineSettings())
    assert panel.layer == "fc1.lif"  # the deepest layer that is not the output
    assert panel.layer_box.currentText() == "fc1.lif"
    counts = np.zeros(VM_BINS + 2)
    counts[10], counts[40], counts[0], counts[-1] = 1000, 10, 100, 100
    panel.push(0, make_frame(0, StepAnalysis(vm={"fc1.lif": vm_stats(counts)})))
    assert panel.curve.yData is None or panel.curve.yData.size == 0  # render draws
    other = make_frame(0, StepAnalysis(vm={"fc1.lif": vm_stats(counts * 0 + 1)}))
    other.lane = 1
    panel.push(0, other)  # the compared model's step: not this panel's
    panel.render(0)
    qtbot.wait(20)
    assert panel.stats is not None and panel.stats.counts[10] == 1000
    rgb = grab(panel)
    vb = panel.hist.vb

    def bar_px(i: int, colour: str) -> int:
        x = to_panel(panel, vb, panel.bin_centre(i), 0).x()
        return int(colour_mask(rgb[:, x : x + 1], colour).sum())

    tall, short = bar_px(10, vm_hist.BAR_COLOUR), bar_px(40, vm_hist.BAR_COLOUR)
    assert tall > short > 0
    # log axis: 1000 is three decades, 10 one, above the base (BASE below 1)
    base = -vm_hist.BASE
    assert tall / short == pytest.approx((3 + base) / (1 + base), rel=0.15)
    assert bar_px(25, vm_hist.BAR_COLOUR) == 0  # an empty bin draws nothing
    # the under/overflow bins: grey bars at the ends, marked on the axis
    assert bar_px(0, vm_hist.END_COLOUR) > short and bar_px(VM_BINS + 1, vm_hist.END_COLOUR) > 0
    labels = [t for _, t in panel.hist.getAxis("bottom")._tickLevels[0]]
    assert "<-3" in labels and ">3" in labels
    assert "near θ: 12.3%" in panel.stats_label.text()
    assert "0.25 ± 0.5" in panel.stats_label.text()

    def marker_x() -> int:
        img = grab(panel)
        y = to_panel(panel, vb, 0, 1.5).y()
        xs = np.flatnonzero(colour_mask(img[y : y + 1], vm_hist.THRESHOLD_COLOUR)[0])
        assert xs.size
        return int(xs.mean())

    x1 = marker_x()
    assert abs(x1 - to_panel(panel, vb, 1.0, 0).x()) <= 1
    # the threshold scale doubles: the marker moves by one threshold, the bins stay
    panel.push(1, make_frame(1, StepAnalysis(vm={"fc1.lif": vm_stats(counts, 2.0)})))
    panel.render(1)
    qtbot.wait(20)
    x2 = marker_x()
    assert x2 - x1 == pytest.approx(
        to_panel(panel, vb, 2.0, 0).x() - to_panel(panel, vb, 1.0, 0).x(), abs=1
    )
    assert x2 > x1 + 20
    assert "θ now: 2" in panel.stats_label.text()
    # the history: the newest column is lit at the 1000-count bin, dark at an empty one
    latest = panel._ring.latest()
    assert latest[10] > 240 and latest[25] == 0 and 0 < latest[40] < latest[10]
    thr = panel._thresholds.view()[0]
    assert thr[-2:].tolist() == [1.0, 2.0]
    heat = panel.heat.vb
    rgb = grab(panel)
    lut = theme.heat_lut()

    def heat_colours(i: int) -> list[list[int]]:  # a bin is ~1.5 px high: its row +-1 px
        p = to_panel(panel, heat, -1, panel.bin_centre(i))
        return rgb[p.y() - 1 : p.y() + 2, p.x()].tolist()

    assert lut[latest[10]].tolist() in heat_colours(10)
    assert heat_colours(25) == [lut[0].tolist()] * 3
    panel.grab().save("/tmp/panel_vm_hist.png")


def test_vm_histogram_probes_off_layer_choice_and_model_switch(qtbot) -> None:
    panel = shown(qtbot, VmHistogramPanel())
    panel.text_period_s = 0.0
    panel.set_model(make_info(), PipelineSettings())
    panel.push(0, make_frame(0, None))
    panel.render(0)
    assert panel.stats_label.text() == OFF_TEXT
    assert panel.message.textItem.toPlainText() == OFF_TEXT
    assert not colour_mask(grab(panel), vm_hist.BAR_COLOUR).any()
    panel.grab().save("/tmp/panel_vm_hist_off.png")
    # another layer, with another threshold: the bins follow it
    info = make_info(thresholds={n: 0.5 for n in LAYERS})
    panel.set_model(info, PipelineSettings())
    panel.layer_box.setCurrentText("conv1.lif")
    panel.layer_chosen()
    assert panel.layer == "conv1.lif"
    assert panel.edges[-1] == pytest.approx(1.5)
    counts = np.zeros(VM_BINS + 2)
    counts[30] = 1152
    panel.push(1, make_frame(1, StepAnalysis(vm={"conv1.lif": vm_stats(counts, 0.5)})))
    panel.render(1)
    assert colour_mask(grab(panel), vm_hist.BAR_COLOUR).sum() > 50
    assert panel._ring.count == 1
    # a model with other layers: the combo follows, the history goes
    panel.set_model(make_info({"a.lif": (4, 2, 2), "b.lif": (5,)}), PipelineSettings())
    assert [panel.layer_box.itemText(i) for i in range(panel.layer_box.count())] == [
        "a.lif",
        "b.lif",
    ]
    assert panel.layer == "b.lif" and panel._ring.count == 0 and panel.stats is None
    panel.push(2, make_frame(2, StepAnalysis(vm={"conv1.lif": vm_stats(counts)})))
    panel.render(2)  # a layer it does not show: nothing drawn, nothing raised
    assert panel.stats is None
    panel.clear_history()
    panel.render(3)
    assert count_levels(np.array([0, 1, 10, 100]), 100).tolist() == [0, 1, 128, 255]


# -- channels -----------------------------------------------------------------------------
DEAD = (2, 5, 11)
SATURATED = (7,)
C, H, W = LAYERS["conv2.lif"]


def channel_frames(steps: int = 4) -> list[StepFrame]:
    rng = np.random.default_rng(0)
    frames = []
    for n in range(steps):
        m = (rng.random((C, H, W)) < 0.2).astype(np.uint8)
        m[list(DEAD)] = 0
        m[list(SATURATED)] = 1
        rates = m.reshape(C, -1).mean(axis=1).astype(np.float32)
        stats = ChannelStats(
            rates=rates, window_rates=rates, silent=len(DEAD), saturated=len(SATURATED)
        )
        a = StepAnalysis(channels={"conv2.lif": stats})
        frames.append(make_frame(n, a, spike_map=m))
    return frames


def channel_panel(qtbot) -> ChannelPanel:
    panel = shown(qtbot, ChannelPanel())
    panel.grid_period_s = 0.0
    panel.set_model(make_info(), PipelineSettings(channel_layer="conv2.lif"))
    for i, f in enumerate(channel_frames()):
        panel.push(i, f)
    panel.render(3)
    qtbot.wait(20)
    return panel


def test_channel_panel_counts_and_marks_the_silent_channels(qtbot) -> None:
    panel = channel_panel(qtbot)
    assert panel.wanted_layer() == "conv2.lif"
    assert [panel.layer_box.itemText(i) for i in range(panel.layer_box.count())] == [
        "conv1.lif",
        "conv2.lif",
    ]
    text = panel.stats_label.text()
    assert f"silent channels: {len(DEAD)}/{C}" in text and "saturated: 1" in text
    rgb = grab(panel)
    heat = panel.heat.vb
    lut = ch_mod.panel_lut()
    for c in range(C):  # the newest step's column: black for a dead channel only
        p = to_panel(panel, heat, -1, c + 0.5)
        dark = rgb[p.y(), p.x()].tolist() == lut[0].tolist()
        assert dark == (c in DEAD), c
    # the status column beside the heatmap: silent blue, saturated red
    for c, colour in ((2, theme.SILENT_COLOUR), (7, theme.SATURATED_COLOUR)):
        p = to_panel(panel, heat, ch_mod.STRIP / 2, c + 0.5)
        assert rgb[p.y(), p.x()].tolist() == list(theme.hex_rgb(colour))
    # the grid: dead tiles ringed in the silent colour, black inside; live ones lit
    for c in range(C):
        r = panel.tile_rect(c)
        ring = to_panel(panel, panel.grid_vb, r.x() + 0.5, r.center().y())
        inner = to_panel(panel, panel.grid_vb, r.center().x(), r.center().y())
        want = theme.SILENT_COLOUR if c in DEAD else None
        want = theme.SATURATED_COLOUR if c in SATURATED else want
        ring_rgb = rgb[ring.y(), ring.x()].tolist()
        if want is not None:
            assert ring_rgb == list(theme.hex_rgb(want)), c
        else:
            assert ring_rgb == list(theme.hex_rgb(theme.GRID)), c
        a = to_panel(panel, panel.grid_vb, r.x() + 1.5, r.y() + 1.5)
        b = to_panel(panel, panel.grid_vb, r.right() - 1.5, r.bottom() - 1.5)
        inside = rgb[a.y() : b.y() + 1, a.x() : b.x() + 1].reshape(-1, 3)
        assert inside.size and rgb[inner.y(), inner.x()].tolist() != ring_rgb
        black = bool((inside == lut[0]).all())
        assert black == (c in DEAD), c
    panel.grab().save("/tmp/panel_channels.png")


def test_channel_clicks_emit_the_channel_and_the_maps_reset_each_window(qtbot) -> None:
    panel = channel_panel(qtbot)
    view = panel.canvas.viewport()
    r = panel.tile_rect(5)
    pos = panel.canvas.mapFromScene(panel.grid_vb.mapViewToScene(r.center()))
    with qtbot.waitSignal(panel.channel_clicked, timeout=2000) as sig:
        qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=pos)
    assert sig.args == ["conv2.lif", 5]
    assert panel.picked == 5 and panel.rings()[5] == ch_mod.RING_PICKED
    pos = panel.canvas.mapFromScene(panel.heat.vb.mapViewToScene(QPointF(-50, 9.5)))
    with qtbot.waitSignal(panel.channel_clicked, timeout=2000) as sig:
        qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=pos)
    assert sig.args == ["conv2.lif", 9]
    panel.render(4)
    qtbot.wait(20)
    r = panel.tile_rect(9)
    ring = to_panel(panel, panel.grid_vb, r.x() + 0.5, r.center().y())
    assert grab(panel)[ring.y(), ring.x()].tolist() == list(theme.hex_rgb(ch_mod.PICKED_COLOUR))
    panel.grab().save("/tmp/panel_channels_picked.png")
    # in the grid's box but outside the tiles: nothing
    corner = panel.grid_vb.viewRect().topLeft() + QPointF(0.05, 0.05)
    assert min(corner.x(), corner.y()) < 0
    assert panel.channel_at(panel.grid_vb.mapViewToScene(corner)) is None
    # accumulated over the window: 4 steps so far; step 1 of the next window starts over
    assert panel._acc_steps == 4
    m = np.zeros((C, H, W), np.uint8)
    m[0, 0, 0] = 1
    panel.push(8, make_frame(8, None, spike_map=m))
    assert panel._acc_steps == 1 and int(panel._acc.sum()) == 1
    # a map of another layer's shape is ignored; so is one the window says is another's
    panel.push(9, make_frame(9, None, spike_map=np.ones((8, 12, 12), np.uint8)))
    assert panel._acc_steps == 1
    panel.set_spike_map_layer("conv1.lif")
    panel.push(10, make_frame(10, None, spike_map=m))
    assert panel._acc_steps == 1


def test_channel_layer_choice_no_conv_layers_and_probes_off(qtbot) -> None:
    panel = channel_panel(qtbot)
    seen: list[str] = []
    panel.layer_changed.connect(seen.append)
    panel.layer_box.setCurrentText("conv1.lif")
    panel.layer_chosen()
    assert seen == ["conv1.lif"] and panel.wanted_layer() == "conv1.lif"
    assert panel._ring.rows == 8 and panel.stats is None
    # probes off: says so, draws without error
    panel.push(20, make_frame(20, None))
    panel.render(20)
    assert panel.stats_label.text() == OFF_TEXT
    assert panel.message.textItem.toPlainText() == OFF_TEXT
    panel.grab().save("/tmp/panel_channels_off.png")
    # a model without conv layers
    panel.set_model(make_info({"fc1.lif": (32,), "out.lif": (3,)}), PipelineSettings())
    assert panel.wanted_layer() is None and not panel.layer_box.isEnabled()
    panel.push(21, make_frame(21, StepAnalysis()))
    panel.render(21)
    assert panel.stats_label.text() == "no conv layers"
    assert panel.message.textItem.toPlainText() == "no conv layers"
    assert seen == ["conv1.lif"]  # set_model does not emit
    panel.grab().save("/tmp/panel_channels_none.png")
    panel.clear_history()
    panel.render(22)
    # tiles: rings around every map, empty slots after the last channel
    img = tile_grid(np.zeros((3, 1, 2), np.uint8), np.array([251, 252, 253], np.uint8), 2)
    assert img.shape == (6, 8)
    assert img[1, 1] == 0 and img[0, 0] == 251 and img[3, 0] == 253 and img[4, 5] == 255


# -- synaptic operations ------------------------------------------------------------------
OPS = {"conv1": (1e6, "AC"), "conv2": (1e3, "MAC"), "fc1": (1e5, "AC"), "out": (30.0, "AC")}


def synops_analysis(scale: float = 1.0) -> StepAnalysis:
    syn = {n: SynapticLayer(ops=v * scale, kind=k, dense=1e7) for n, (v, k) in OPS.items()}
    return StepAnalysis(synops=syn, sparsity=0.925)


def test_synops_bars_follow_the_operations_and_the_totals_are_written(qtbot) -> None:
    panel = shown(qtbot, SynopsPanel())
    panel.text_period_s = 0.0
    panel.set_model(make_info(), PipelineSettings())
    for i in range(5):
        panel.push(i, make_frame(i, synops_analysis(1 + i / 10)))
    panel.render(4)
    qtbot.wait(20)
    rgb = grab(panel)
    vb = panel.bars_plot.vb
    lengths = {}
    for row, name in enumerate(panel.layers):
        y = to_panel(panel, vb, 0, row + 0.5).y()
        kind = OPS[name][1]
        lengths[name] = int(colour_mask(rgb[y : y + 1], KIND_COLOURS[kind]).sum())
        other = "MAC" if kind == "AC" else "AC"
        assert not colour_mask(rgb[y : y + 1], KIND_COLOURS[other]).any()
    order = sorted(OPS, key=lambda n: OPS[n][0])
    assert [lengths[n] for n in order] == sorted(lengths.values())
    assert lengths["out"] > 0 and lengths["conv1"] > 2 * lengths["conv2"]
    # one decade is the same number of pixels everywhere (log axis)
    px_per_decade = (lengths["conv1"] - lengths["fc1"]) / 1.0
    assert lengths["fc1"] - lengths["conv2"] == pytest.approx(2 * px_per_decade, abs=3)
    text = panel.stats_label.text()
    # the last step: 1.4 M AC + 140 AC + ... per 10 ms step
    ac = (1e6 + 1e5 + 30) * 1.4
    assert f"AC {si(ac)}/step · {si(ac * 100)}/s" in text
    assert f"MAC {si(1.4e3)}/step" in text
    assert "activation sparsity 92.5%" in text
    right = [t for _, t in panel.bars_plot.getAxis("right")._tickLevels[0]]
    assert right[0] == f"{si(1.4e6)} AC" and right[1] == f"{si(1.4e3)} MAC"
    hist = panel._ring.view()[0]
    assert np.isfinite(hist[-5:]).all() and np.isnan(hist[:-5]).all()
    assert colour_mask(rgb, panel.total_curve.opts["pen"].color().name()).sum() > 10
    panel.grab().save("/tmp/panel_synops.png")
    assert si(1234567) == "1.23M" and si(999) == "999" and si(1e9) == "1G"


def test_synops_probes_off_model_switch_and_clear(qtbot) -> None:
    panel = shown(qtbot, SynopsPanel())
    panel.text_period_s = 0.0
    panel.set_model(make_info(), PipelineSettings())
    panel.push(0, make_frame(0, None))
    panel.render(0)
    assert panel.stats_label.text() == OFF_TEXT
    assert panel.message.textItem.toPlainText() == OFF_TEXT
    rgb = grab(panel)
    assert not colour_mask(rgb, KIND_COLOURS["AC"]).any()
    panel.grab().save("/tmp/panel_synops_off.png")
    panel.set_model(make_info(synaptic_layers=["a", "b"]), PipelineSettings())
    assert panel.layers == ["a", "b"]
    a = StepAnalysis(synops={"a": SynapticLayer(50.0, "MAC", 100.0)}, sparsity=float("nan"))
    panel.push(1, make_frame(1, a))
    panel.render(1)
    assert panel.per_layer()[1][1] != panel.per_layer()[1][1]  # b: not reported (NaN)
    assert "sparsity –" in panel.stats_label.text()
    panel.clear_history()
    panel.render(2)
    assert panel.analysis is None and np.isnan(panel._ring.view()).all()
    # no layer list from the model: the probes' own order
    panel.set_model(make_info(synaptic_layers=[]), PipelineSettings())
    panel.push(3, make_frame(3, synops_analysis()))
    panel.render(3)
    assert panel.layers == list(OPS)


@pytest.mark.parametrize("size", [(400, 300), (300, 200)])
def test_screenshots_at_small_sizes(qtbot, size: tuple[int, int]) -> None:
    """Every panel drawn with data at the size it gets in the window and smaller."""
    vm = shown(qtbot, VmHistogramPanel(), size)
    ch = shown(qtbot, ChannelPanel(), size)
    sy = shown(qtbot, SynopsPanel(), size)
    info = make_info()
    rng = np.random.default_rng(1)
    for p in (vm, ch, sy):
        p.set_model(info, PipelineSettings(channel_layer="conv2.lif"))
    vm.text_period_s = sy.text_period_s = ch.grid_period_s = 0.0
    frames = channel_frames(8)
    for i, f in enumerate(frames):
        v = rng.normal(0.2, 1.1, 32 * 50)
        counts = np.histogram(v, bins=vm.edges)[0]
        full = np.concatenate([[(v < vm.edges[0]).sum()], counts, [(v >= vm.edges[-1]).sum()]])
        f.analysis.vm["fc1.lif"] = vm_stats(full, 1.0 + 0.05 * i, near=0.08)
        f.analysis.synops.update(synops_analysis().synops)
        f.analysis.sparsity = 0.9
        for p in (vm, ch, sy):
            p.push(i, f)
    for p in (vm, ch, sy):
        p.render(7)
    qtbot.wait(20)
    w, h = size
    for name, p in (("vm_hist", vm), ("channels", ch), ("synops", sy)):
        assert p.width() <= w + 1 and p.height() <= h + 1, name
        assert not p.stats_label.elided or w < 400, name
        p.grab().save(f"/tmp/panel_{name}_{w}x{h}.png")


def test_a_flagged_layer_s_rate_label_fits_a_narrow_rates_panel(qtbot) -> None:
    """In compare mode the rates panel is narrow: a silent layer's label must lie wholly
    inside the bars' plot (it read "NT 0.00%", cut on the left, before)."""

    from dvsapp.gui.panels.rates import RatesPanel

    info = make_info()
    panel = shown(qtbot, RatesPanel(), (240, 260))
    panel.set_model(info, PipelineSettings())
    rates = np.zeros(len(LAYERS), np.float32)
    rates[0] = 0.12
    for n in range(12):  # the fallback watchdog flags the silent layers after 5 steps
        frame = make_frame(n, None)
        frame.rates = rates
        panel.push(n, frame)
        panel._bars_at = 0.0
        panel.render(n)
    qtbot.wait(50)
    assert panel.health.status(info.layer_names[-1]) == "silent"
    view = panel.bars_plot.getViewBox().sceneBoundingRect()
    texts = [t for t in panel._texts if t.textItem.toPlainText()]
    assert {t.textItem.toPlainText() for t in texts} >= {"SILENT", "12.00%"}
    for t in texts:
        box = t.mapRectToScene(t.boundingRect())
        assert view.left() - 1 <= box.left() and box.right() <= view.right() + 1, (
            t.textItem.toPlainText()
        )
