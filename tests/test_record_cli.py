"""`dvsapp record` and `dvsapp play --source`: video and replay sources into AEDAT4."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest

from dvsapp.cli import main
from dvsapp.events.sources import SourceState, list_devices
from dvsapp.events.types import make_events
from dvsapp.events.writers import write_npz

pytestmark = pytest.mark.timeout(120)


def read_aedat4(path: Path) -> tuple[np.ndarray, tuple[int, int]]:
    import dv_processing as dv

    reader = dv.io.MonoCameraRecording(str(path))
    parts = []
    while reader.isRunning():
        store = reader.getNextEventBatch()
        if store is not None and len(store):
            a = store.numpy()
            parts.append(make_events(a["x"], a["y"], a["timestamp"], a["polarity"] != 0))
    res = reader.getEventResolution()
    return np.concatenate(parts), (int(res[0]), int(res[1]))


def write_video(path: Path, frames: int = 12, fps: float = 50.0) -> Path:
    cv2 = pytest.importorskip("cv2")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    assert writer.isOpened()
    for k in range(frames):
        f = np.full((48, 64, 3), 30, dtype=np.uint8)
        f[:, 5 + 3 * k : 15 + 3 * k] = 220
        writer.write(f)
    writer.release()
    return path


def emulate_directly(path: Path) -> np.ndarray:
    from dvsapp.events.emulator import VideoSource

    src = VideoSource(path, speed=math.inf)
    src.start()
    parts, deadline = [], time.monotonic() + 10
    while time.monotonic() < deadline:
        parts.append(src.poll())
        if src.status().state is SourceState.ENDED:
            break
        time.sleep(0.002)
    parts.append(src.poll())
    src.stop()
    return np.concatenate(parts)


def test_record_a_video_matches_the_emulator(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video = write_video(tmp_path / "small.avi")
    out = tmp_path / "out.aedat4"
    assert main(["record", "--source", f"video:{video}", str(out), "--duration", "1"]) == 0
    err = capsys.readouterr().err
    assert "wrote" in err and str(out) in err
    got, size = read_aedat4(out)
    expected = emulate_directly(video)
    assert size == (64, 48)
    assert len(expected) > 0
    assert np.array_equal(got, expected)
    assert not list(tmp_path.glob(".*part*"))


def test_record_replays_a_file_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 5000
    t = np.sort(rng.integers(0, 200_000, n))
    events = make_events(rng.integers(0, 32, n), rng.integers(0, 24, n), t, rng.random(n) < 0.5)
    src = tmp_path / "in.npz"
    write_npz(src, [events], (32, 24, 2))
    out = tmp_path / "rt.aedat4"
    assert main(["record", "--source", str(src), str(out), "--speed", "max"]) == 0
    got, size = read_aedat4(out)
    assert size == (32, 24)
    assert np.array_equal(got, events)


@pytest.mark.skipif(bool(list_devices()), reason="an event camera is attached")
def test_record_camera_without_device_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cam.aedat4"
    assert main(["record", "--source", "camera", str(out), "--duration", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("dvsapp: error: no event camera found")
    assert not out.exists() and not list(tmp_path.iterdir())


def test_record_rejects_bad_spec_and_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["record", "--source", "tcp://nohost", str(tmp_path / "o.aedat4")]) == 2
    assert "expected camera" in capsys.readouterr().err
    assert main(["record", "--source", "camera", str(tmp_path / "o.txt")]) == 2
    assert ".aedat4" in capsys.readouterr().err


def test_play_source_video_and_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    video = write_video(tmp_path / "p.avi")
    assert main(["play", "--source", f"video:{video}", "--speed", "max", "--bin-us", "5000"]) == 0
    out = capsys.readouterr().out
    assert "playing emulator:" in out and "done:" in out
    rec = tmp_path / "p.npz"
    ev = make_events(np.array([1, 2]), np.array([1, 2]), np.array([10, 20]), np.array([1, 0]))
    write_npz(rec, [ev], (4, 4, 2))
    assert main(["play", "--source", str(rec), "--speed", "max"]) == 0
    assert "done: 2 events" in capsys.readouterr().out
    assert main(["play", str(rec), "--speed", "max"]) == 0
