"""The window against a stand-in pipeline (same methods, hand-made StepFrames): panels,
controls, threading and shutdown, fast and without a model."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from dvsapp.gui.slots import reset_slot_report, slot_report
from dvsapp.pipeline import PipelineSettings

from .fake_pipeline import CLASSES, LAYERS, FakePipeline
from .gui_helpers import (
    WAIT_MS,
    data_pixels,
    foreground_pixels,
    grab,
    make_window,
    marker_pixels,
    trace_pixels,
    wait_steps,
)

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "recordings" / "demo_rotating_bar.aedat4"


@pytest.fixture
def fake(qtbot):
    reset_slot_report()
    pipe = FakePipeline(PipelineSettings(recording=DEMO))
    win = make_window(qtbot, pipe)
    yield win, pipe
    win.close()
    assert not pipe.running


def test_panels_render_markers_and_threads(fake, qtbot) -> None:
    win, pipe = fake
    before = {p.objectName(): foreground_pixels(grab(p)) for p in win.panels}
    data_before = data_pixels(win)
    win.start()
    wait_steps(qtbot, win, 4 * 16)
    after = {p.objectName(): foreground_pixels(grab(p)) for p in win.panels}
    for name, n in before.items():
        if name == "VmPanel":  # no neuron traced yet: nothing to draw
            continue
        assert after[name] > n + 500, (name, n, after[name])
    data_after = data_pixels(win)
    for name, n in data_after.items():  # each panel draws its data, not only axes
        assert n > data_before[name] + 100, (name, data_before[name], n)
    seen = marker_pixels(win)
    assert len(seen) >= 3, "expected an exit marker per window"
    assert all(n >= 40 for n in seen), seen
    calls, off_thread = slot_report()
    assert calls.get("MailboxBridge.note_frames_waiting", 0) > 0
    assert calls.get("MainWindow.redraw_tick", 0) > 0
    assert off_thread == {}, f"slots ran outside the GUI thread: {off_thread}"
    win.close()
    assert pipe.thread is not None and not pipe.thread.is_alive()
    assert pipe.worker_exceptions == []


def test_status_bar_and_health_flags(fake, qtbot) -> None:
    win, _ = fake
    win.start()
    wait_steps(qtbot, win, 16)
    qtbot.waitUntil(lambda: "silent" in win.status.health.text(), timeout=WAIT_MS)
    text = win.status.health.text()
    assert "layer3.0.lif1" in text and "saturated" in text and "lif_hidden" in text
    assert "k ev/s" in win.status.events.text()
    assert "dropped 0" in win.status.dropped.text()


def test_error_is_shown_and_gui_keeps_running(qtbot) -> None:
    pipe = FakePipeline(PipelineSettings(recording=DEMO), error_after=20)
    win = make_window(qtbot, pipe)
    win.start()
    qtbot.waitUntil(lambda: win.banner.isVisible(), timeout=WAIT_MS)
    assert "truncated packet" in win.banner.text()
    ticks = win.ticks
    qtbot.wait(100)
    assert win.ticks > ticks  # the event loop goes on
    win.banner.dismiss_banner()
    assert not win.banner.isVisible()
    win.close()
    assert not pipe.running


def test_click_on_raster_row_traces_that_neuron(fake, qtbot) -> None:
    win, pipe = fake
    win.start()
    wait_steps(qtbot, win, 3 * 16)
    auto = list(win.vm.neurons)  # traced by default: the busiest neurons
    assert auto and auto[0][0] == "lif1"
    layer = "layer2.0.lif1"
    lr = win.rasters.layers[layer]
    row = 10
    x = lr.plot.vb.viewRange()[0][1] - 20
    scene = lr.plot.vb.mapViewToScene(QPointF(x, row + 0.5))
    pos = win.rasters.canvas.mapFromScene(scene)
    qtbot.mouseClick(win.rasters.canvas.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    flat = int(win.info.raster_index[layer][row])
    assert win.vm.neurons == [*auto, (layer, flat)]
    configured = [s for name, s in pipe.calls if name == "configure"]
    assert configured and configured[-1].vm_neurons[layer] == (flat,)
    # the clicked neuron's trace is drawn
    qtbot.waitUntil(lambda: trace_pixels(win, len(auto)) > 100, timeout=WAIT_MS)
    assert layer in win.vm._thresholds  # its threshold line is drawn
    assert win.vm._thresholds[layer].value() == pytest.approx(0.2)


def test_threshold_knob_and_transport(fake, qtbot) -> None:
    win, pipe = fake
    win.start()
    wait_steps(qtbot, win, 16)
    c = win.controls
    c.threshold_layer.setCurrentText("lif1")
    c.threshold_spin.setValue(2.5)
    assert ("set_threshold_scale", ("lif1", 2.5)) in pipe.calls
    assert win.settings.threshold_scale["lif1"] == 2.5
    c.threshold_layer.setCurrentIndex(0)  # all layers
    c.threshold_layer_chosen()
    c.threshold_slider.setValue(-100)
    scaled = {a[0] for n, a in pipe.calls if n == "set_threshold_scale" and a[1] == 0.1}
    assert scaled == set(LAYERS)
    c.play_button.click()  # pause
    assert ("pause", None) in pipe.calls
    assert c.step_button.isEnabled()
    c.step_button.click()
    assert ("step_once", None) in pipe.calls
    c.play_button.click()
    assert pipe.calls[-1] == ("play", None)
    qtbot.waitUntil(lambda: win._last_stats is not None, timeout=WAIT_MS)
    c.seek.setValue(500)
    c.seek_released()
    assert ("seek", 4_000_000) in pipe.calls
    c.exit_threshold.setValue(0.75)
    assert win.settings.exit_threshold == 0.75
    c.exit_on.setChecked(False)
    assert win.settings.exit_threshold is None
    c.bin_us.setValue(5000)
    assert win.settings.bin_us == 5000
    c.speed.setCurrentIndex(c.speed.count() - 1)
    c.speed_chosen(c.speed.count() - 1)
    assert win.settings.speed == float("inf")


def test_keyboard_shortcuts(fake, qtbot, monkeypatch, tmp_path) -> None:
    """Space, Right / '.', Home, '[' / ']', Ctrl+O and F1 drive the same actions as the
    controls, whichever widget has focus; a focused spin box keeps the keys it edits with."""
    from PySide6.QtWidgets import QFileDialog

    from dvsapp.gui.shortcuts import help_line

    win, pipe = fake
    c = win.controls
    win.start()
    win.activateWindow()
    qtbot.waitUntil(lambda: win._last_stats is not None, timeout=WAIT_MS)
    win.events.setFocus()
    qtbot.keyClick(win, Qt.Key.Key_Space)
    assert pipe.calls[-1] == ("pause", None) and c.play_button.text() == "Play"
    for key in (Qt.Key.Key_Right, Qt.Key.Key_Period):
        n = pipe.calls.count(("step_once", None))
        qtbot.keyClick(win, key)
        assert pipe.calls.count(("step_once", None)) == n + 1
    qtbot.keyClick(win, Qt.Key.Key_Space)
    assert pipe.calls[-1] == ("play", None)
    qtbot.keyClick(win, Qt.Key.Key_Right)  # playing: the step button is off, so no step
    assert pipe.calls[-1] == ("play", None)
    qtbot.keyClick(win, Qt.Key.Key_Home)
    assert pipe.calls[-1] == ("seek", 0)
    speed = win.settings.speed
    qtbot.keyClick(win, Qt.Key.Key_BracketRight)
    assert win.settings.speed == 2 * speed and c.speed.currentText() == "2x"
    qtbot.keyClick(win, Qt.Key.Key_BracketLeft)
    qtbot.keyClick(win, Qt.Key.Key_BracketLeft)
    assert win.settings.speed == speed / 2
    picked = tmp_path / "picked.aedat4"
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(picked), ""))
    qtbot.keyClick(win, Qt.Key.Key_O, Qt.KeyboardModifier.ControlModifier)
    assert any(n == "open_recording" and Path(str(a)) == picked for n, a in pipe.calls)
    win.status.clearMessage()
    qtbot.wait(20)
    left = slice(0, win.status.width() // 3)  # the message area: fields keep to the right
    blank = foreground_pixels(grab(win.status)[:, left])
    qtbot.keyClick(win, Qt.Key.Key_F1)
    assert win.status.currentMessage() == help_line() and "Space play/pause" in help_line()
    qtbot.wait(20)
    assert foreground_pixels(grab(win.status)[:, left]) > blank + 300  # and it is drawn
    c.bin_us.setFocus()  # an editor keeps its keys: Space does not pause
    calls = len(pipe.calls)
    qtbot.keyClick(c.bin_us, Qt.Key.Key_Space)
    assert ("pause", None) not in pipe.calls[calls:]
    _, off_thread = slot_report()
    assert off_thread == {}


def test_layer_picker_and_channel_choice(fake, qtbot) -> None:
    win, _ = fake
    win.start()
    wait_steps(qtbot, win, 16)
    win.rasters.show_layers(["lif1", "lif_hidden"])
    assert list(win.rasters.layers) == ["lif1", "lif_hidden"]
    c = win.controls
    c.channel_layer.setCurrentText("layer2.0.lif1")
    c.channel_layer_chosen()
    c.channel.setValue(3)
    assert win.settings.raster_channel == {"layer2.0.lif1": 3}
    win.rasters.show_layers(list(LAYERS))
    qtbot.waitUntil(lambda: win.rasters.layers["layer2.0.lif1"].rows == 256, timeout=WAIT_MS)


def test_drop_a_recording_opens_it(fake, qtbot, tmp_path) -> None:
    win, pipe = fake
    win.start()
    target = tmp_path / "other.aedat4"
    target.write_bytes(b"")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(target))])
    event = QDropEvent(
        QPointF(QPoint(400, 400)),
        Qt.DropAction.CopyAction,
        mime,
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
    )
    win.dropEvent(event)
    assert ("open_recording", target) in pipe.calls
    assert win.controls.recording_label.text() == "other.aedat4"


def test_prediction_names_and_true_label(fake, qtbot) -> None:
    win, _ = fake
    win.start()
    wait_steps(qtbot, win, 2 * 16)
    assert win.prediction.band_plot.isVisible()
    assert "true:" in win.prediction.hint_label.text()
    ticks = win.prediction.bars_plot.getAxis("left")._tickLevels[0]
    assert [t[1] for t in ticks] == CLASSES


def test_the_window_loads_the_probe_kernels_in_the_background(qtbot, monkeypatch) -> None:
    """The in-depth probes' compiled kernels are loaded soon after the window starts (a
    thread, not the worker at the first in-depth view). The stand-in pipeline never probes,
    so only the window's own preload can load them."""
    pytest.importorskip("numba")
    from dvsapp.gui import main_window
    from dvsapp.snn.analysis import vm

    monkeypatch.setattr(vm, "_KERNELS", False)  # as in a fresh process
    monkeypatch.setattr(main_window, "PRELOAD_KERNELS_MS", 100)
    pipe = FakePipeline(PipelineSettings(recording=DEMO))
    win = make_window(qtbot, pipe, start=True)
    qtbot.waitUntil(lambda: vm._KERNELS is not False, timeout=10_000)
    assert vm._KERNELS is not None
    assert vm._KERNELS.__name__ == "dvsapp.snn.analysis.cpu_kernels"
    win.close()
