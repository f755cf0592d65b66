"""The window around the real pipeline: the shipped recording through a small checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dvsapp.binning import BinningConfig
from dvsapp.events.span import last_timestamp
from dvsapp.events.types import DVS_GESTURE_CLASSES
from dvsapp.gui.slots import reset_slot_report, slot_report
from dvsapp.pipeline import Pipeline, PipelineSettings
from dvsapp.snn.checkpoint import save_checkpoint
from dvsapp.snn.registry import build_model, default_config

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
T = 8


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained resnet_small (width 8, T = 8, 20 ms bins) for a 128x128 sensor."""
    torch.manual_seed(0)
    model = build_model(default_config("resnet_small", width=8, time_steps=T))
    binning = BinningConfig(sensor_size=(128, 128), time_window_us=20_000, input_size=(64, 64))
    path = tmp_path_factory.mktemp("ckpt") / "small.safetensors"
    return save_checkpoint(
        path,
        model,
        class_names=list(DVS_GESTURE_CLASSES),
        binning=binning,
        sensor_size=(128, 128, 2),
        trained_on="nothing (test)",
        metrics={},
    )


@pytest.fixture
def live(qtbot, small_checkpoint: Path, thread_errors):
    reset_slot_report()
    # The top class's probability is >= 1/11: every window of the untrained model exits at
    # its first step, so every window gets a labelled exit marker.
    settings = PipelineSettings(
        recording=DEMO,
        checkpoint=small_checkpoint,
        device="cpu",
        exit_threshold=0.05,
        exit_consecutive=1,
    )
    pipe = Pipeline(settings)
    win = make_window(qtbot, pipe)
    yield win, pipe
    win.close()
    assert not pipe.running


def test_live_panels_markers_threads_and_clean_close(live, qtbot, thread_errors) -> None:
    win, pipe = live
    before = {p.objectName(): foreground_pixels(grab(p)) for p in win.panels}
    data_before = data_pixels(win)
    win.start()
    wait_steps(qtbot, win, 4 * T)
    qtbot.waitUntil(lambda: bool(win.vm.neurons), timeout=WAIT_MS)  # traced by default
    wait_steps(qtbot, win, win.seq + T)
    after = {p.objectName(): foreground_pixels(grab(p)) for p in win.panels}
    for name, n in before.items():
        if name != "VmPanel":  # its grid changes with the range: count the traces below
            assert after[name] > n + 200, (name, n, after[name])
    assert trace_pixels(win) > 100
    fired = [m for m in win.prediction.exit_markers if m.fired]
    assert len(fired) >= 3, "each window should exit early at this threshold"
    data_after = data_pixels(win)
    for name, n in data_after.items():  # each panel draws its data, not only axes
        assert n > data_before[name] + 100, (name, data_before[name], n)
    seen = marker_pixels(win)
    assert seen and all(n >= 40 for n in seen), seen
    calls, off_thread = slot_report()
    assert calls.get("MailboxBridge.note_frames_waiting", 0) > 0
    assert calls.get("MainWindow.redraw_tick", 0) > 0
    assert off_thread == {}, f"slots ran outside the GUI thread: {off_thread}"
    thread = pipe._thread
    assert thread is not None and thread.is_alive()
    win.close()  # during playback
    assert not thread.is_alive()
    assert thread_errors == []
    assert pipe.stats().state != "error", pipe.stats().message


def test_seek_slider_works_before_the_first_pass_ends(live, qtbot) -> None:
    """The recording's length comes from a background scan: the slider is enabled and shows
    the total within the first seconds of an 8 s recording, and dragging it moves playback."""
    win, pipe = live
    c = win.controls
    win.start()
    qtbot.waitUntil(lambda: pipe.stats().duration_us is not None, timeout=WAIT_MS)
    stats = pipe.stats()
    assert stats.t_first_us is not None
    assert stats.duration_us == last_timestamp(DEMO) - stats.t_first_us  # about 8 s
    assert (stats.stream_time_us or 0) < stats.duration_us / 2  # long before the end
    qtbot.waitUntil(lambda: "/ 0:08.0" in c.position_label.text(), timeout=WAIT_MS)
    assert c.seek.isEnabled()
    c.seek.setValue(800)
    c.seek_released()
    qtbot.waitUntil(
        lambda: (pipe.stats().stream_time_us or 0) >= 0.8 * stats.duration_us, timeout=WAIT_MS
    )
    assert pipe.stats().state != "error", pipe.stats().message


def test_threshold_knob_provokes_collapse(live, qtbot) -> None:
    win, pipe = live
    win.start()
    wait_steps(qtbot, win, 2 * T)
    silent_before = len(win.rates.health.silent)
    c = win.controls
    c.threshold_layer.setCurrentIndex(0)  # all layers
    c.threshold_layer_chosen()
    c.threshold_spin.setValue(10.0)
    assert set(pipe.settings.threshold_scale.values()) == {10.0}
    qtbot.waitUntil(lambda: len(win.rates.health.silent) >= silent_before + 2, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: "silent" in win.status.health.text(), timeout=WAIT_MS)
    c.threshold_reset.click()
    assert set(pipe.settings.threshold_scale.values()) == {1.0}
    qtbot.waitUntil(lambda: len(win.rates.health.silent) <= silent_before, timeout=WAIT_MS)


def test_bad_recording_is_shown_and_the_gui_keeps_running(live, qtbot, tmp_path) -> None:
    win, pipe = live
    win.start()
    wait_steps(qtbot, win, 2)
    bad = tmp_path / "noise.aedat4"
    bad.write_bytes(bytes(range(256)) * 8)
    win.open_recording(bad)
    qtbot.waitUntil(lambda: win.banner.isVisible(), timeout=WAIT_MS)
    assert "noise.aedat4" in win.banner.text()
    ticks = win.ticks
    qtbot.wait(100)
    assert win.ticks > ticks
    win.open_recording(DEMO)  # and it recovers
    seq = win.seq
    wait_steps(qtbot, win, seq + 2)
    assert pipe.stats().state != "error"


def test_close_while_loading_joins_the_worker(qtbot, small_checkpoint: Path, thread_errors) -> None:
    pipe = Pipeline(PipelineSettings(recording=DEMO, checkpoint=small_checkpoint, device="cpu"))
    win = make_window(qtbot, pipe)
    win.start()
    thread = pipe._thread
    win.close()  # before the model has loaded, most likely
    assert thread is not None and not thread.is_alive()
    assert thread_errors == []
