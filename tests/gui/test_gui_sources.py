"""Live sources from the GUI's source chooser and from `dvsapp gui --source SPEC`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QFileDialog, QInputDialog

from dvsapp.binning import BinningConfig
from dvsapp.events.types import DVS_GESTURE_CLASSES
from dvsapp.gui.controls import NETWORK, NO_CAMERA, RECORDING, VIDEO, WEBCAM
from dvsapp.gui.slots import reset_slot_report, slot_report
from dvsapp.pipeline import Pipeline, PipelineSettings
from dvsapp.snn.checkpoint import save_checkpoint
from dvsapp.snn.registry import build_model, default_config

from .fake_pipeline import FakePipeline
from .gui_helpers import WAIT_MS, foreground_pixels, grab, make_window

cv2 = pytest.importorskip("cv2", reason="the camera extra (OpenCV) is not installed")

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = build_model(default_config("resnet_small", width=8, time_steps=8))
    binning = BinningConfig(sensor_size=(128, 128), time_window_us=20_000, input_size=(64, 64))
    return save_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "small.safetensors",
        model,
        class_names=list(DVS_GESTURE_CLASSES),
        binning=binning,
        sensor_size=(128, 128, 2),
        trained_on="nothing (test)",
        metrics={},
    )


@pytest.fixture(scope="module")
def small_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 s, 30 fps, 128x128 MJPG video of a bright bar sweeping across."""
    path = tmp_path_factory.mktemp("video") / "small.avi"
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (128, 128))
    assert out.isOpened()
    for i in range(90):
        frame = np.full((128, 128, 3), 20, np.uint8)
        x = (i * 4) % 112
        frame[:, x : x + 16] = 235
        out.write(frame)
    out.release()
    assert path.stat().st_size > 0
    return path


def _choose(win, data: str) -> None:
    """Pick the source-combo entry ``data`` as a user would."""
    combo = win.controls.source
    i = combo.findData(data)
    assert i >= 0, data
    combo.setCurrentIndex(i)
    combo.activated.emit(i)


def _no_cameras(monkeypatch: pytest.MonkeyPatch) -> None:
    import dvsapp.events.sources.cameras as cameras

    def none_found(notes: list[str] | None = None) -> list:
        if notes is not None:
            notes.append("test: no USB devices")
        return []

    monkeypatch.setattr(cameras, "list_devices", none_found)


def test_chooser_lists_every_kind(qtbot) -> None:
    pipe = FakePipeline(PipelineSettings())
    win = make_window(qtbot, pipe)
    items = [win.controls.source.itemText(i) for i in range(win.controls.source.count())]
    assert items[0] == "Recording file"
    assert any(t.startswith("Event camera") for t in items)
    for data in (NETWORK, WEBCAM, VIDEO):
        assert win.controls.source.findData(data) >= 0
    win.close()


def test_no_camera_shows_why_and_the_window_keeps_running(qtbot, monkeypatch) -> None:
    _no_cameras(monkeypatch)
    reset_slot_report()
    pipe = FakePipeline(PipelineSettings())
    win = make_window(qtbot, pipe)
    win.start()
    qtbot.waitUntil(lambda: win.seq > 2, timeout=WAIT_MS)
    i = win.controls.source.findData(NO_CAMERA)
    assert "no camera found" in win.controls.source.itemText(i)
    _choose(win, NO_CAMERA)
    message = win.status.currentMessage()
    assert "no camera found" in message and "test: no USB devices" in message
    assert "\n" not in message
    assert not [c for c in pipe.calls if c[0] == "open_source"]
    assert win.controls.source.currentData() == RECORDING  # back to what streams
    seq, ticks = win.seq, win.ticks
    qtbot.waitUntil(lambda: win.seq > seq + 5 and win.ticks > ticks + 5, timeout=WAIT_MS)
    assert slot_report()[1] == {}  # every slot on the GUI thread
    win.close()


def test_bad_network_spec_is_an_error_in_the_status_bar(qtbot, monkeypatch) -> None:
    pipe = FakePipeline(PipelineSettings())
    win = make_window(qtbot, pipe)
    win.start()
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("tcp://nohost", True))
    _choose(win, NETWORK)
    assert "bad source" in win.status.currentMessage()
    assert not [c for c in pipe.calls if c[0] == "open_source"]
    seq = win.seq
    qtbot.waitUntil(lambda: win.seq > seq + 3, timeout=WAIT_MS)
    win.close()


def test_video_file_source_steps_the_real_pipeline(
    qtbot, monkeypatch, small_checkpoint: Path, small_video: Path
) -> None:
    pipe = Pipeline(PipelineSettings(checkpoint=small_checkpoint, device="cpu"))
    win = make_window(qtbot, pipe)
    win.start()
    qtbot.waitUntil(lambda: win.info is not None, timeout=WAIT_MS)
    qtbot.wait(100)
    before = foreground_pixels(grab(win.events))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(small_video), ""))
    _choose(win, VIDEO)
    assert win.live_spec == f"video:{small_video}"
    assert win.controls.source.currentData() == VIDEO
    assert not win.controls.seek.isEnabled()
    assert not win.controls.loop.isEnabled()
    qtbot.waitUntil(lambda: win.seq >= 5, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: foreground_pixels(grab(win.events)) > before + 50, timeout=WAIT_MS)
    assert pipe.stats().state != "error", pipe.stats().message
    win.close()
    assert not pipe.running


def test_cli_gui_on_a_video_source(small_checkpoint: Path, small_video: Path, tmp_path) -> None:
    out = tmp_path / "out.png"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    args = ["gui", "--source", f"video:{small_video}", "--model", str(small_checkpoint)]
    timed = ["--device", "cpu", "--screenshot", str(out), "--quit-after", "2"]
    r = subprocess.run(
        [sys.executable, "-m", "dvsapp", *args, *timed],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=REPO,
    )
    assert r.returncode == 0, r.stderr
    assert QImage(str(out)).width() > 0


def test_cli_source_and_path_are_exclusive() -> None:
    from dvsapp import cli

    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["gui", "x.aedat4", "--source", "webcam:0"])
