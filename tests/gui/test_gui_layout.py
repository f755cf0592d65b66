"""The window fits a laptop screen and keeps still; the small things users look for (seek
by clicking the track, ms times, traced rows marked, Help, a quick Ctrl+Q)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QSplitter

from dvsapp.gui import theme
from dvsapp.gui.controls import Controls
from dvsapp.gui.widgets import ElidedLabel, plain_text, truncate_rich
from dvsapp.pipeline import PipelineSettings

from . import fake_pipeline
from .fake_pipeline import FakePipeline
from .gui_helpers import WAIT_MS, grab, make_window, wait_steps

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "recordings" / "demo_rotating_bar.aedat4"
#: Class names as long as DVS128 Gesture's, and longer.
LONG_CLASSES = [f"right_arm_counter_clockwise_variant_{i}" for i in range(11)]


@pytest.fixture
def long_names(monkeypatch):
    monkeypatch.setattr(fake_pipeline, "CLASSES", LONG_CLASSES)


def _splitter_sizes(win) -> list[list[int]]:
    return [s.sizes() for s in win.findChildren(QSplitter)]


def test_window_keeps_1024x700_while_playing(qtbot, long_names) -> None:
    """At 1024x700 nothing asks for more room than it has, and seconds of changing labels
    (counts, class names, health flags) never widen the window or move a panel border."""
    pipe = FakePipeline(PipelineSettings(recording=DEMO))
    win = make_window(qtbot, pipe)
    win.resize(1024, 700)
    qtbot.wait(50)
    win.start()
    wait_steps(qtbot, win, 20)
    qtbot.wait(300)
    sizes = _splitter_sizes(win)
    widths = set()
    for _ in range(12):  # ~3 s of steps, the stats tick's labels change too
        qtbot.wait(250)
        widths.add((win.width(), win.height()))
        assert _splitter_sizes(win) == sizes, "a panel border moved"
    assert widths == {(1024, 700)}, widths
    hint = win.minimumSizeHint()
    assert hint.width() <= 1024 and hint.height() <= 700, hint
    for w in [*win.panels, win.status, win.controls]:
        assert w.minimumSizeHint().width() <= max(w.width(), 1), type(w).__name__
    # Long texts are elided, whole in the tooltip.
    hint_label = win.prediction.hint_label
    assert isinstance(hint_label, ElidedLabel)
    assert hint_label.elided and "…" in plain_text(hint_label.shown_text())
    assert "top:" in hint_label.toolTip()
    fm = hint_label.fontMetrics()
    assert fm.horizontalAdvance(plain_text(hint_label.shown_text())) <= hint_label.width()
    win.close()


def test_events_prediction_border_stays_at_1280x720(qtbot, long_names) -> None:
    pipe = FakePipeline(PipelineSettings(recording=DEMO))
    win = make_window(qtbot, pipe)
    win.resize(1280, 720)
    qtbot.wait(50)
    win.start()
    wait_steps(qtbot, win, 20)
    qtbot.wait(300)
    top = win.events.parentWidget()
    assert isinstance(top, QSplitter)
    border = win.events.geometry().right()
    seen = set()
    for _ in range(10):
        qtbot.wait(200)
        seen.add(win.events.geometry().right())
        seen.add(win.prediction.geometry().left() - top.handleWidth() - 1)
    assert seen == {border}, (border, seen)
    assert win.width() == 1280
    win.close()


def test_elided_label_keeps_colours() -> None:
    html = "top: <span style='color:#ff0000'>alpha_beta_gamma</span> 55%  &amp; more"
    assert plain_text(html) == "top: alpha_beta_gamma 55%  & more"
    cut = truncate_rich(html, 8)
    assert plain_text(cut) == "top: alp…"
    assert cut.count("<span") == cut.count("</span>") == 1


def test_seek_track_click_jumps_there(qtbot) -> None:
    """A click on the track (not the handle) seeks to where it landed."""
    c = Controls([], False)
    qtbot.addWidget(c)
    c.resize(320, 700)
    c.show()
    qtbot.waitExposed(c)
    c.set_position(0, 8_000_000)
    slider = c.seek
    assert slider.isEnabled() and slider.value() == 0
    with qtbot.waitSignal(c.seek_requested, timeout=2000) as sig:
        pos = QPoint(round(slider.width() * 0.75), slider.height() // 2)
        qtbot.mousePress(slider, Qt.MouseButton.LeftButton, pos=pos)
        qtbot.mouseRelease(slider, Qt.MouseButton.LeftButton, pos=pos)
    assert 0.65 < sig.args[0] < 0.85, sig.args


def test_short_recordings_show_milliseconds(qtbot) -> None:
    c = Controls([], False)
    qtbot.addWidget(c)
    c.set_position(1_234_000, 2_500_000)
    assert c.position_label.text() == "0:01.234 / 0:02.500"
    c.set_position(8_100_000, 25_600_000)
    assert c.position_label.text() == "0:08.1 / 0:25.6"


def test_traced_rows_marked_and_vm_named_by_raster_row(qtbot) -> None:
    pipe = FakePipeline(PipelineSettings(recording=DEMO))
    win = make_window(qtbot, pipe)
    win.start()
    wait_steps(qtbot, win, 8)
    layer = "layer2.0.lif1"
    rows = win.rasters.layers[layer].rows
    win.trace_neuron(layer, 5, rows)
    win.trace_neuron("lif_hidden", 17, win.rasters.layers["lif_hidden"].rows)
    qtbot.wait(100)
    i = win.vm.neurons.index((layer, int(win.info.raster_index[layer][5])))
    assert win.vm.names[i] == f"{layer} row 5"
    colour = theme.colour(i)
    assert (5, colour) in win.rasters.traced_rows(layer)
    legend = [item[1].text for item in win.vm.legend.items]
    assert f"{layer} row 5" in legend and "lif_hidden row 17" in legend
    # The mark is drawn: the trace's colour at the raster's left edge, on row 5.
    lr = win.rasters.layers[layer]
    vb = lr.plot.getViewBox()
    scene = vb.mapViewToScene(QPointF(-pg_x_left() + 3, 5.5))
    pt = win.rasters.canvas.mapTo(win.rasters, win.rasters.canvas.mapFromScene(scene))
    rgb = grab(win.rasters)
    patch = rgb[max(pt.y() - 5, 0) : pt.y() + 6, max(pt.x() - 6, 0) : pt.x() + 7]
    assert np.all(patch == np.array(theme.hex_rgb(colour), np.uint8), axis=2).sum() >= 8
    win.close()


def pg_x_left() -> float:
    from dvsapp.gui.panels.base import X_RANGE

    return -X_RANGE[0]


def test_vth_label_is_off_the_traces(qtbot) -> None:
    """The threshold is labelled on the right axis; nothing covers the traces near it."""
    pipe = FakePipeline(PipelineSettings(recording=DEMO))
    win = make_window(qtbot, pipe)
    win.start()
    wait_steps(qtbot, win, 8)
    win.trace_neuron("lif_hidden", 3, win.rasters.layers["lif_hidden"].rows)
    wait_steps(qtbot, win, win.seq + 200)
    vb = win.vm.plot.vb
    labels = [it for it in vb.allChildren() if isinstance(it, pg.InfLineLabel | pg.TextItem)]
    assert labels == [], "a label over the traces"
    ticks = win.vm.plot.getAxis("right")._tickLevels  # pyqtgraph keeps them here
    assert ticks and any(text.startswith("Vth 0.2") for _, text in ticks[0])
    # The traces show right up to the threshold line at its right end, where the old
    # label's filled box sat.
    rgb = grab(win.vm)
    line_y = vb.mapViewToScene(QPointF(0, 0.2)).y()
    right = vb.sceneBoundingRect().right()
    top_left = win.vm.canvas.mapTo(
        win.vm, win.vm.canvas.mapFromScene(QPointF(right - 150, line_y - 14))
    )
    bottom_right = win.vm.canvas.mapTo(
        win.vm, win.vm.canvas.mapFromScene(QPointF(right - 2, line_y - 1))
    )
    box = rgb[top_left.y() : bottom_right.y(), top_left.x() : bottom_right.x()]
    trace = np.array(theme.hex_rgb(theme.colour(0)), np.uint8)
    assert np.all(box == trace, axis=2).sum() >= 10
    win.close()


def test_f1_opens_help(qtbot) -> None:
    pipe = FakePipeline(PipelineSettings(recording=DEMO))
    win = make_window(qtbot, pipe)
    win.activateWindow()
    qtbot.waitUntil(win.isActiveWindow, timeout=WAIT_MS)
    win.events.setFocus()
    qtbot.keyClick(win, Qt.Key.Key_F1)
    help_window = win.shortcuts.help_window
    assert help_window is not None and help_window.isVisible()
    text = help_window.browser.toPlainText()
    words = ("Ctrl+Q", "Space", "F1", "SILENT", "SATURATED", "conf", "γ", "Vth", "row")
    for word in words:
        assert word in text, word
    win.close()


_QUIT_SCRIPT = """
import atexit, sys, time
from PySide6.QtCore import QTimer, Qt
from PySide6.QtTest import QTest
import dvsapp.gui.app as app

class Window(app.MainWindow):
    def start(self):
        super().start()
        self._quit_timer = QTimer(self)
        self._quit_timer.timeout.connect(self.press_ctrl_q)
        self._quit_timer.start(200)

    def press_ctrl_q(self):
        if self.seq < 5:
            return
        self._quit_timer.stop()
        self.activateWindow()
        print(f"QUIT {time.time():.4f}", flush=True)
        QTest.keyClick(self, Qt.Key.Key_Q, Qt.KeyboardModifier.ControlModifier)

app.MainWindow = Window
atexit.register(lambda: print("TEARDOWN", flush=True))  # Python's slow shutdown (torch: ~1 s)
sys.exit(app.run_app(app.Path(sys.argv[1]), None, device="cpu"))
"""


def test_ctrl_q_quits_within_half_a_second(tmp_path) -> None:
    """The real pipeline and torch loaded: Ctrl+Q ends the process without Python's own
    teardown (about 1.1 s with torch loaded, the delay users saw); 74 ms here. Speed is for
    benchmarks, so the time bound is loose (a loaded CI machine); the teardown check is not."""
    script = tmp_path / "quit.py"
    script.write_text(_QUIT_SCRIPT)
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(DEMO)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    quit_at = None
    assert proc.stdout is not None
    deadline = time.time() + WAIT_MS / 1000
    for line in proc.stdout:
        if line.startswith("QUIT"):
            quit_at = float(line.split()[1])
            break
        assert time.time() < deadline
    assert quit_at is not None, proc.stderr.read() if proc.stderr else ""
    proc.wait(timeout=30)
    ended = time.time()
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    assert "TEARDOWN" not in proc.stdout.read()  # the interpreter's shutdown was skipped
    assert ended - quit_at < 5.0, f"quit took {ended - quit_at:.2f} s"


def test_window_opens_within_the_screen() -> None:
    """A laptop's screen: the window opens at its free area, not at 1600x1000."""
    from PySide6.QtCore import QRect

    from dvsapp.gui.app import WINDOW_SIZE, initial_size

    class Screen:
        def availableGeometry(self) -> QRect:
            return QRect(0, 0, 1280, 720)

    class App:
        def __init__(self, platform: str) -> None:
            self.platform = platform

        def primaryScreen(self) -> Screen:
            return Screen()

        def platformName(self) -> str:
            return self.platform

    assert initial_size(App("xcb")) == (1280, 720)  # type: ignore[arg-type]
    assert initial_size(App("offscreen")) == WINDOW_SIZE  # type: ignore[arg-type]


def test_long_panel_titles_do_not_widen_the_window(qtbot) -> None:
    """A title that grows (binning differs from training, a guessed sensor size) is cut,
    not given room at the window's expense; the panel's name itself stays whole."""
    import dataclasses

    pipe = FakePipeline(PipelineSettings(recording=DEMO))
    win = make_window(qtbot, pipe)
    win.resize(1024, 700)
    win.start()
    wait_steps(qtbot, win, 8)
    # After the busiest neurons are traced (a reconfigure: the model info comes again and the
    # window resets the title), so the note set below stays.
    qtbot.waitUntil(lambda: bool(win.vm.neurons), timeout=WAIT_MS)
    qtbot.waitUntil(lambda: bool(win.info.vm_index), timeout=WAIT_MS)
    qtbot.wait(200)
    info = dataclasses.replace(
        win.info, bin_us=20_000, trained_bin_us=50_000, window_steps=16, trained_window_steps=10
    )
    win.prediction.set_binning_note(info)
    win.events.title_label.setText("Events (sensor size guessed: 304x240 from the ATIS default)")
    qtbot.wait(500)
    assert win.width() == 1024
    assert win.minimumSizeHint().width() <= 1024
    for panel in (win.prediction, win.events):
        shown = plain_text(panel.title_label.shown_text())
        assert shown.startswith(panel.title), shown
        assert "differs from training" in win.prediction.title_label.text()
    win.close()
