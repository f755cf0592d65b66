"""`dvsapp gui ... --screenshot OUT --quit-after S` in a subprocess, and plain `dvsapp`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

from dvsapp import cli
from dvsapp.binning import BinningConfig
from dvsapp.events.types import DVS_GESTURE_CLASSES
from dvsapp.snn.checkpoint import save_checkpoint
from dvsapp.snn.registry import build_model, default_config

from .gui_helpers import distinct_colours, image_array

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "recordings" / "demo_rotating_bar.aedat4"


def _dvsapp(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run(
        [sys.executable, "-m", "dvsapp", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
    )


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
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


def test_screenshot_of_the_whole_window(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    args = ["gui", str(DEMO), "--model", str(checkpoint), "--device", "cpu"]
    r = _dvsapp(*args, "--screenshot", str(out), "--quit-after", "2")
    assert r.returncode == 0, r.stderr
    image = QImage(str(out))
    assert (image.width(), image.height()) == (1600, 1000)
    assert distinct_colours(image_array(image)) > 200  # panels, not an empty window


def test_a_bad_recording_exits_1_with_the_reason(tmp_path: Path) -> None:
    bad = tmp_path / "noise.aedat4"
    bad.write_bytes(bytes(range(256)) * 8)
    out = tmp_path / "out.png"
    r = _dvsapp("gui", str(bad), "--screenshot", str(out), "--quit-after", "1")
    assert r.returncode == 1
    assert "noise.aedat4" in r.stderr.strip().splitlines()[-1]
    assert out.is_file()  # the window showing the error


def test_screenshot_into_a_missing_folder_is_refused(tmp_path: Path, capsys) -> None:
    code = cli.main(["gui", "--screenshot", str(tmp_path / "no" / "x.png")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not exist" in err[0]


def test_plain_dvsapp_opens_the_gui_on_the_shipped_recording(monkeypatch) -> None:
    import dvsapp.gui.app as app

    seen: dict[str, object] = {}

    def fake_run_app(recording, checkpoint=None, **kw):
        seen.update(recording=recording, checkpoint=checkpoint, **kw)
        return 0

    monkeypatch.setattr(app, "run_app", fake_run_app)
    assert cli.main([]) == 0
    assert seen["recording"] == cli.DEFAULT_RECORDING and seen["checkpoint"] == cli.DEFAULT_MODEL
    assert cli.DEFAULT_RECORDING.is_file() and cli.DEFAULT_MODEL.is_file()
    assert cli.main(["gui", "--model", "demo"]) == 0
    assert seen["checkpoint"] is None
    assert cli.main(["gui", str(DEMO), "--model", "m.safetensors", "--speed", "max"]) == 0
    assert seen["checkpoint"] == Path("m.safetensors") and seen["speed"] == float("inf")
