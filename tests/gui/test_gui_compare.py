"""Compare mode (a second model's column beside the main one), the per-step export and the
window's video recording, against the stand-in pipeline."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QFileDialog

from dvsapp.gui import theme
from dvsapp.gui.controls import BROWSE, NO_COMPARE
from dvsapp.gui.main_window import MainWindow
from dvsapp.gui.slots import reset_slot_report, slot_report
from dvsapp.pipeline import PipelineSettings

from .fake_pipeline import RATES, FakePipeline
from .gui_helpers import WAIT_MS, colour_pixels, grab, make_window, wait_steps

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "recordings" / "demo_rotating_bar.aedat4"
RESNET = REPO / "models" / "resnet_small_synth.safetensors"
COLLAPSED = REPO / "models" / "resnet_small_synth_nonorm_collapsed.safetensors"
SCREENSHOT = Path("/tmp/compare.png")


@pytest.fixture
def fake(qtbot):
    reset_slot_report()
    pipe = FakePipeline(PipelineSettings(recording=DEMO))
    win = make_window(qtbot, pipe, [RESNET, COLLAPSED], start=True)
    wait_steps(qtbot, win, 16)
    yield win, pipe
    win.close()
    assert not pipe.running
    assert pipe.worker_exceptions == []


def _choose_compare(win: MainWindow, data: object) -> None:
    """Pick the compare chooser's entry holding ``data``, as a click does."""
    combo = win.controls.compare
    i = combo.findData(data)
    assert i >= 0, data
    combo.setCurrentIndex(i)
    combo.activated.emit(i)


def _compare_on(qtbot, win: MainWindow, checkpoint: Path, steps: int = 32) -> None:
    _choose_compare(win, checkpoint)
    qtbot.waitUntil(lambda: win.compare is not None and win.compare.seq >= steps, timeout=WAIT_MS)
    qtbot.wait(60)


def _spike_density(panel) -> float:
    """Spike-coloured pixels per pixel of a raster panel's grab."""
    rgb = grab(panel)
    palette = np.array([theme.hex_rgb(c) for c in theme.PALETTE], np.uint8)
    return colour_pixels(rgb, palette) / (rgb.shape[0] * rgb.shape[1])


def _record_lanes(panel) -> list[int]:
    """Make ``panel`` note the lane of every frame pushed into it."""
    lanes: list[int] = []
    push = panel.push

    def noting(seq, frame):
        lanes.append(frame.lane)
        push(seq, frame)

    panel.push = noting
    return lanes


def test_compare_column_shows_lane_1_only(fake, qtbot) -> None:
    """The compared model gets its own titled column (prediction, rasters, rates) fed only
    lane-1 frames: its rates are the collapsed model's, its rasters darker; the main panels
    see lane 0 only. Saves a screenshot of compare mode at 1600x1000."""
    win, pipe = fake
    c = win.controls
    assert c.compare.itemData(0) == NO_COMPARE and c.compare.currentIndex() == 0
    listed = {c.compare.itemData(i) for i in range(c.compare.count())}
    assert {RESNET, COLLAPSED, BROWSE} <= listed
    assert win.compare is None and not win.main_title.isVisible()
    main_lanes = _record_lanes(win.rates)
    _compare_on(qtbot, win, COLLAPSED, steps=2)
    assert ("compare_model", COLLAPSED) in pipe.calls
    col = win.compare
    assert col is not None and col.isVisible()
    lane1 = _record_lanes(col.rates)
    pred1 = _record_lanes(col.prediction)
    qtbot.waitUntil(lambda: len(lane1) >= 48, timeout=WAIT_MS)
    qtbot.wait(100)
    assert set(lane1) == {1} and set(pred1) == {1}
    assert main_lanes and set(main_lanes) == {0}
    # state: each column's rates are what the fake sent on its lane
    np.testing.assert_array_equal(col.rates._rates, RATES[1])
    np.testing.assert_array_equal(win.rates._rates, RATES[0])
    assert not np.array_equal(col.rates._rates, win.rates._rates)
    assert col.rates.health.silent != win.rates.health.silent  # collapsed: more silent layers
    assert 0 < col.seq <= pipe.sent_frames[1]
    # titles name each column's model
    assert win.main_title.isVisible() and "fake.safetensors" in win.main_title.text()
    assert COLLAPSED.name in col.title.text()
    assert COLLAPSED.name in win.windowTitle()
    assert not col.note.isVisible()  # same binning: no note
    # pixels: the compared raster is drawn, and sparser than the main model's
    main_density, other_density = _spike_density(win.rasters), _spike_density(col.rasters)
    assert other_density > 0.0005, other_density
    assert other_density < 0.5 * main_density, (other_density, main_density)
    # the layout: both columns side by side, each panel with room at 1600x1000
    assert win.width() == 1600
    assert col.geometry().left() > win.main_column.geometry().right()
    for panel in [*col.panels, win.prediction, win.rasters, win.rates, win.events]:
        assert panel.width() >= 200 and panel.height() >= 150, type(panel).__name__
    hint = win.minimumSizeHint()
    assert hint.width() <= 1600 and hint.height() <= 1000, hint
    win.grab().save(str(SCREENSHOT))
    _, off_thread = slot_report()
    assert off_thread == {}, off_thread


def test_compare_off_removes_the_column(fake, qtbot) -> None:
    win, pipe = fake
    _compare_on(qtbot, win, COLLAPSED)
    _choose_compare(win, NO_COMPARE)
    assert ("compare_model", None) in pipe.calls
    assert win.compare is None and not win.main_title.isVisible()
    assert win.settings.compare_checkpoint is None
    assert " vs " not in win.windowTitle()
    seq = win.seq
    qtbot.wait(300)
    assert win.compare is None  # stays off
    assert win.seq > seq  # the main model runs on
    assert win.columns.count() == 1


def test_compare_error_keeps_the_main_model(fake, qtbot, monkeypatch, tmp_path) -> None:
    """A compared model that fails to load (picked through 'other checkpoint…') shows as a
    one-line notice; the main model keeps running and the chooser says 'none' again."""
    win, pipe = fake
    _compare_on(qtbot, win, COLLAPSED, steps=2)
    missing = tmp_path / "missing.safetensors"
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(missing), ""))
    _choose_compare(win, BROWSE)
    assert ("compare_model", missing) in pipe.calls
    qtbot.waitUntil(lambda: win.compare_notice.isVisible(), timeout=WAIT_MS)
    text = win.compare_notice.text()
    assert "missing.safetensors: no such file" in text and "\n" not in text
    assert win.compare is None and not win.main_title.isVisible()
    assert win.settings.compare_checkpoint is None
    assert win.controls.compare.currentData() == NO_COMPARE
    assert not win.banner.isVisible()  # a notice, not an error of the main model
    seq = win.seq
    qtbot.wait(300)
    assert win.seq > seq and win.pipeline.stats().state == "running"
    _compare_on(qtbot, win, COLLAPSED, steps=2)  # a good one afterwards clears the notice
    assert not win.compare_notice.isVisible()


def test_compare_note_when_binning_differs(fake, qtbot, tmp_path) -> None:
    win, _ = fake
    coarse = tmp_path / "coarse_model.safetensors"
    shutil.copy(COLLAPSED, coarse)
    win.compare_with(coarse)
    qtbot.waitUntil(
        lambda: win.compare is not None and win.compare.note.isVisible(), timeout=WAIT_MS
    )
    assert "bins 20 ms" in win.compare.note.text()
    assert win.controls.compare.currentData() == coarse  # a new file is listed
    qtbot.waitUntil(lambda: win.compare.seq >= 8, timeout=WAIT_MS)
    assert win.compare.seq < win.seq  # it steps half as often


def test_export_button_starts_and_stops_with_rows(fake, qtbot, tmp_path) -> None:
    win, pipe = fake
    c = win.controls
    asked: list[str] = []
    target = tmp_path / "steps"  # no suffix: .parquet is added

    def ask(parent, caption, start, filters):
        asked.append(filters)
        return str(target)

    win.outputs.ask_save_path = ask
    c.export_button.click()
    want = tmp_path / "steps.parquet"
    assert ("start_export", want) in pipe.calls
    assert asked and "*.parquet" in asked[0]
    assert c.export_button.isChecked() and c.export_button.text() == "Stop export"
    qtbot.waitUntil(lambda: pipe.export_rows > 20, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: win.outputs.export_rows > 0, timeout=WAIT_MS)  # stats tick
    assert "rows →" in c.export_label.text()
    assert "steps.parquet" in c.export_label.text()
    c.export_button.click()
    assert pipe.calls[-1] == ("stop_export", None)
    assert not c.export_button.isChecked() and c.export_button.text() == "Export…"
    assert "rows written to steps.parquet" in c.export_label.text()
    rows = win.outputs.export_rows
    assert rows > 0 and f"{rows:,}" in c.export_label.text()
    # a cancelled dialog starts nothing
    win.outputs.ask_save_path = lambda *a: ""
    n = len(pipe.calls)
    c.export_button.click()
    assert not c.export_button.isChecked()
    assert not [x for x in pipe.calls[n:] if x[0] == "start_export"]


def test_export_error_resets_the_button(fake, qtbot, tmp_path) -> None:
    win, pipe = fake
    c = win.controls
    bad = tmp_path / "no_such_folder" / "x.parquet"
    win.outputs.ask_save_path = lambda *a: str(bad)
    c.export_button.click()
    assert ("start_export", bad) in pipe.calls
    qtbot.waitUntil(lambda: not c.export_button.isChecked(), timeout=WAIT_MS)
    assert win.banner.isVisible() and "does not exist" in win.banner.text()
    assert "\n" not in win.banner.text()
    assert c.export_button.text() == "Export…" and win.outputs.export_target is None
    seq = win.seq
    qtbot.wait(200)
    assert win.seq > seq  # the model runs on


def test_record_video_writes_the_window(fake, qtbot, tmp_path) -> None:
    """The record button writes an MP4 whose frames show the window."""
    pytest.importorskip("dvsapp.gui.video_recorder")
    av = pytest.importorskip("av")
    win, _ = fake
    c = win.controls
    target = tmp_path / "window.mp4"
    win.outputs.ask_save_path = lambda *a: str(target)
    c.record_button.click()
    assert c.record_button.isChecked() and win.outputs.recorder is not None
    assert "t " in win.outputs.stamp() and "window" in win.outputs.stamp()
    qtbot.wait(1500)
    c.record_button.click()
    assert not c.record_button.isChecked() and win.outputs.recorder is None
    assert target.exists() and target.stat().st_size > 1000
    with av.open(str(target)) as box:
        frames = [f.to_ndarray(format="rgb24") for f in box.decode(video=0)]
    assert len(frames) >= 5, len(frames)
    last = frames[-1].astype(np.float32)
    h, w = last.shape[:2]
    assert abs(w / h - win.width() / win.height()) < 0.05, (w, h)
    shot = grab(win)
    rows = np.linspace(0, shot.shape[0] - 1, h).astype(int)
    cols = np.linspace(0, shot.shape[1] - 1, w).astype(int)
    small = shot[rows][:, cols].astype(np.float32)
    # the same window: close to its grab overall (the live panels have moved on a little)
    assert np.abs(last - small).mean() < 40, np.abs(last - small).mean()
    assert last.std() > 10  # not a blank frame


def test_channel_click_shows_that_channel_in_the_raster(fake, qtbot) -> None:
    pytest.importorskip("dvsapp.gui.panels.channels")
    win, pipe = fake
    panel = win.channels
    panel.layer_changed.emit("layer2.0.lif1")
    assert win.settings.channel_layer == "layer2.0.lif1"
    panel.channel_clicked.emit("layer2.0.lif1", 3)
    assert win.settings.raster_channel == {"layer2.0.lif1": 3}
    configured = [s for name, s in pipe.calls if name == "configure"]
    assert configured[-1].raster_channel == {"layer2.0.lif1": 3}
    assert win.controls.channel_layer.currentText() == "layer2.0.lif1"
    assert win.controls.channel.value() == 3
    qtbot.waitUntil(lambda: win.rasters.layers["layer2.0.lif1"].rows == 256, timeout=WAIT_MS)
    assert "channel 3" in win.rasters._captions["layer2.0.lif1"]


def test_compared_column_channels_tab_rasters_the_clicked_channel(fake, qtbot) -> None:
    """The compared model's Channels tab asks for its own layer's spike maps and draws them;
    a click there rasters that channel of the compared model, not of the main one."""
    win, pipe = fake
    _compare_on(qtbot, win, COLLAPSED)
    col = win.compare
    assert col is not None and col.tabs.tabText(2) == "Channels"
    col.tabs.setCurrentWidget(col.channels)
    layer = col.channels.layer
    assert layer is not None and win.settings.compare_channel_layer == layer
    assert win.settings.channel_layer != layer or win.channels.layer == layer
    qtbot.waitUntil(lambda: col.channels._acc is not None, timeout=WAIT_MS)  # lane-1 maps
    assert col.channels.map_layer == layer and col.channels.stats is not None
    rgb = grab(col.channels)
    assert rgb.reshape(-1, 3).std(axis=0).max() > 10  # a drawn grid, not a blank panel
    main_channels = dict(win.settings.raster_channel)
    col.channels.channel_clicked.emit("layer2.0.lif1", 3)
    assert win.settings.compare_raster_channel == {"layer2.0.lif1": 3}
    assert win.settings.raster_channel == main_channels  # the main model's are untouched
    configured = [s for name, s in pipe.calls if name == "configure"]
    assert configured[-1].compare_raster_channel == {"layer2.0.lif1": 3}
    assert col.channels.picked == 3
    qtbot.waitUntil(lambda: col.rasters.layers["layer2.0.lif1"].rows == 256, timeout=WAIT_MS)
    assert "channel 3" in col.rasters._captions["layer2.0.lif1"]
    assert "channel 3" not in win.rasters._captions.get("layer2.0.lif1", "")
    win.grab().save("/tmp/compare_channels.png")
    # another compared model: its picks start afresh
    _choose_compare(win, RESNET)
    assert win.settings.compare_raster_channel == {}


def test_compared_column_raster_click_traces_that_neurons_vm(fake, qtbot) -> None:
    """A click on a row of the compared model's raster traces that neuron of the compared
    model in its own Vm traces tab; the main model's traces are untouched; clear empties it."""
    win, _ = fake
    _compare_on(qtbot, win, COLLAPSED)
    col = win.compare
    assert col is not None and col.tabs.tabText(0) == "Vm traces"
    main_traced = dict(win.settings.vm_neurons)
    layer = "layer1.0.lif1"
    rows = col.rasters.layers[layer].rows
    col.rasters.neuron_clicked.emit(layer, 5, rows)
    traced = win.settings.compare_vm_neurons
    assert list(traced) == [layer] and len(traced[layer]) == 1
    flat = traced[layer][0]
    assert col.vm.neurons == [(layer, flat)]
    assert win.settings.vm_neurons == main_traced  # the main model's traces are its own
    qtbot.waitUntil(lambda: col.info is not None and layer in col.info.vm_index, timeout=WAIT_MS)
    assert col.info.vm_index[layer].tolist() == [flat]

    def traced_points() -> int:
        _, y = col.vm._curves[0].getData() if col.vm._curves else (None, None)
        return 0 if y is None else int(np.isfinite(y).sum())

    qtbot.waitUntil(lambda: traced_points() >= 8, timeout=WAIT_MS)  # lane-1 Vm arrives
    col.vm.clear_button.click()
    assert win.settings.compare_vm_neurons == {} and col.vm.neurons == []


def test_in_depth_panels_get_their_lanes_analysis(fake, qtbot) -> None:
    """The in-depth tabs draw the main model's probes; the compared column's tabs its own
    (the collapsed model does far fewer synaptic operations)."""
    win, _ = fake
    _compare_on(qtbot, win, COLLAPSED)
    col = win.compare
    assert col is not None
    for tabs, panel in ((win.tabs, win.synops), (col.tabs, col.synops)):
        tabs.setCurrentWidget(panel)
    qtbot.waitUntil(
        lambda: win.synops.analysis is not None and col.synops.analysis is not None,
        timeout=WAIT_MS,
    )
    main_ops = sum(ops for _, ops, _, _ in win.synops.per_layer())
    other_ops = sum(ops for _, ops, _, _ in col.synops.per_layer())
    assert 0 < other_ops < 0.5 * main_ops, (other_ops, main_ops)
    assert "sparsity" in win.synops.totals_text()
    win.tabs.setCurrentWidget(win.channels)
    qtbot.waitUntil(lambda: win.channels.stats is not None, timeout=WAIT_MS)
    assert win.channels.layer == win.settings.channel_layer  # its maps are asked for


def test_video_that_cannot_be_written_says_why(fake, qtbot, tmp_path) -> None:
    pytest.importorskip("dvsapp.gui.video_recorder")
    pytest.importorskip("av")
    win, _ = fake
    c = win.controls
    win.outputs.ask_save_path = lambda *a: str(tmp_path / "missing" / "w.mp4")
    c.record_button.click()
    assert not c.record_button.isChecked() and win.outputs.recorder is None
    assert win.banner.isVisible() and "cannot record video" in win.banner.text()
    seq = win.seq
    qtbot.wait(200)
    assert win.seq > seq


def test_real_pipeline_compare_and_export(qtbot, tmp_path, thread_errors) -> None:
    """With the real pipeline: the compared model's column fills from lane 1 (N-MNIST's
    digits beside the gestures, its own binning noted), an export writes a Parquet file,
    and 'none' ends compare mode while the main model runs on."""
    pq = pytest.importorskip("pyarrow.parquet")
    from dvsapp.pipeline import Pipeline

    nmnist = REPO / "models" / "cnn_sinabs_nmnist.safetensors"
    synth = REPO / "recordings" / "synth_seed9000000.aedat4"
    pipe = Pipeline(PipelineSettings(recording=synth, checkpoint=RESNET, device="cpu"))
    win = make_window(qtbot, pipe, [RESNET, nmnist], start=True)
    try:
        wait_steps(qtbot, win, 3)
        _choose_compare(win, nmnist)
        qtbot.waitUntil(lambda: win.compare is not None and win.compare.seq >= 3, timeout=WAIT_MS)
        col = win.compare
        assert col.info is not None and col.info.lane == 1 and len(col.info.class_names) == 10
        assert nmnist.name in col.title.text() and RESNET.name in win.main_title.text()
        assert len(col.rates.names) == len(col.info.layer_names)
        assert win.info is not None and len(win.info.class_names) == 11  # lane 0 untouched
        qtbot.waitUntil(lambda: col.note.isVisible(), timeout=WAIT_MS)  # 1 ms vs 50 ms bins
        col.tabs.setCurrentWidget(col.channels)  # its own conv layer's spike maps (lane 1)
        assert col.channels.layer in col.info.layer_names
        assert win.settings.compare_channel_layer == col.channels.layer
        qtbot.waitUntil(lambda: col.channels._acc is not None, timeout=WAIT_MS)  # maps came
        first = col.info.layer_names[0]  # a raster click traces the compared model's neuron
        col.rasters.neuron_clicked.emit(first, 0, col.rasters.layers[first].rows)
        assert list(win.settings.compare_vm_neurons) == [first]
        qtbot.waitUntil(lambda: first in col.info.vm_index, timeout=WAIT_MS)
        qtbot.waitUntil(
            lambda: col.vm._ring is not None and np.isfinite(col.vm._ring.view()).sum() >= 3,
            timeout=WAIT_MS,
        )  # its Vm came from lane 1
        target = tmp_path / "run.parquet"
        win.outputs.ask_save_path = lambda *a: str(target)
        win.controls.export_button.click()
        qtbot.waitUntil(lambda: win.outputs.export_rows >= 4, timeout=WAIT_MS)
        win.controls.export_button.click()
        assert not win.controls.export_button.isChecked()
        qtbot.waitUntil(lambda: pipe.stats().export_path is None, timeout=WAIT_MS)  # closed
        assert pq.read_table(target).num_rows >= 4
        _choose_compare(win, NO_COMPARE)
        assert win.compare is None
        seq = win.seq
        wait_steps(qtbot, win, seq + 3)
        assert win.compare is None and win.pipeline.stats().state != "error"
    finally:
        win.close()
    assert not pipe.running
    assert thread_errors == []


def test_compare_mode_fits_a_1280_px_wide_window(fake, qtbot) -> None:
    """The README promises compare mode in a window 1280 px wide: the two columns and the
    controls must not ask for more, even after seconds of changing labels."""
    win, _ = fake
    win.resize(1024, 700)
    _compare_on(qtbot, win, COLLAPSED)
    qtbot.wait(300)
    assert win.minimumSizeHint().width() <= 1280
    assert win.width() <= 1280
