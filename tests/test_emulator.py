"""DVS emulator: the pixel model on synthetic frames, and VideoSource over a written video."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest

from dvsapp.events.emulator import DvsPixelModel, PixelModelConfig, VideoSource, to_luma
from dvsapp.events.sources import SourceState
from dvsapp.events.types import EVENT_DTYPE

#: No mismatch, no refractory period, no leak, no noise: the deterministic core.
CLEAN = PixelModelConfig(
    threshold_sigma=0.0, refractory_us=0, leak_rate_hz=0.0, shot_noise_rate_hz=0.0, log_eps=1e-9
)


def run(model: DvsPixelModel, frames: list[np.ndarray], dt_us: int) -> np.ndarray:
    """Reset on the first frame at t=0, emit the rest every ``dt_us``; all events joined."""
    model.reset(frames[0], 0)
    parts = [model.emit(f, i * dt_us) for i, f in enumerate(frames[1:], start=1)]
    return np.concatenate(parts) if parts else np.zeros(0, EVENT_DTYPE)


def bar_frame(x0: int, width: int = 64, height: int = 32, bar: int = 10) -> np.ndarray:
    f = np.full((height, width), 0.1, dtype=np.float32)
    f[:, x0 : x0 + bar] = 0.9
    return f


def test_moving_edge_gives_on_at_leading_and_off_at_trailing_edge() -> None:
    model = DvsPixelModel(64, 32, CLEAN)
    model.reset(bar_frame(10), 0)
    for k in range(1, 8):
        ev = model.emit(bar_frame(10 + 2 * k), k * 10_000)
        on, off = ev[ev["p"]], ev[~ev["p"]]
        lead = {20 + 2 * (k - 1), 21 + 2 * (k - 1)}  # pixels the bar just covered
        trail = {10 + 2 * (k - 1), 11 + 2 * (k - 1)}  # pixels it just left
        assert set(on["x"].tolist()) == lead
        assert set(off["x"].tolist()) == trail
        n_per_pixel = math.floor(math.log(0.9 / 0.1) / 0.2)
        assert len(on) == len(off) == 2 * 32 * n_per_pixel
        assert np.all(np.diff(ev["t"]) >= 0)


def test_bgr_uint8_frames_are_converted_to_luma() -> None:
    bgr = np.zeros((4, 5, 3), dtype=np.uint8)
    bgr[..., 1] = 255
    assert np.allclose(to_luma(bgr), 0.587, atol=1e-6)
    model = DvsPixelModel(5, 4, CLEAN)
    model.reset(bgr, 0)
    brighter = bgr.copy()
    brighter[..., 2] = 255
    assert np.all(model.emit(brighter, 1000)["p"])


def step_events(contrast: float, config: PixelModelConfig, size: int = 64) -> np.ndarray:
    base = np.full((size, size), 0.2, dtype=np.float32)
    return run(DvsPixelModel(size, size, config), [base, base * np.exp(contrast)], 10_000)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_event_count_grows_with_contrast_over_threshold(sign: float) -> None:
    cfg = PixelModelConfig(
        threshold_sigma=0.01, refractory_us=0, leak_rate_hz=0, shot_noise_rate_hz=0, log_eps=1e-9
    )
    n1 = len(step_events(sign * 1.0, cfg))
    n2 = len(step_events(sign * 2.0, cfg))
    assert n1 > 0 and 1.8 < n2 / n1 < 2.2
    ev = step_events(sign * 1.0, cfg)
    assert np.all(ev["p"] == (sign > 0))
    assert len(step_events(sign * 0.15, CLEAN)) == 0  # below threshold, no noise: nothing


def test_static_scene_gives_shot_noise_at_its_rate() -> None:
    rate, secs, size = 5.0, 10.0, 64
    cfg = PixelModelConfig(refractory_us=0, leak_rate_hz=0.0, shot_noise_rate_hz=rate, seed=3)
    frame = np.full((size, size), 0.5, dtype=np.float32)
    ev = run(DvsPixelModel(size, size, cfg), [frame] * 101, int(secs * 1e6 / 100))
    expected = rate * secs * size * size
    assert abs(len(ev) - expected) < 4 * math.sqrt(expected)
    assert abs(ev["p"].mean() - 0.5) < 0.01
    assert np.bincount(ev["x"], minlength=size).std() / (expected / size) < 0.05  # uniform


def test_static_scene_gives_on_leak_events_at_the_leak_rate() -> None:
    rate, secs, size = 2.0, 10.0, 64
    cfg = PixelModelConfig(refractory_us=0, leak_rate_hz=rate, shot_noise_rate_hz=0.0, seed=4)
    frame = np.full((size, size), 0.5, dtype=np.float32)
    ev = run(DvsPixelModel(size, size, cfg), [frame] * 201, int(secs * 1e6 / 200))
    expected = rate * secs * size * size
    assert abs(len(ev) - expected) < 0.02 * expected
    assert np.all(ev["p"])
    per_pixel = np.bincount(ev["y"].astype(np.int64) * size + ev["x"], minlength=size * size)
    assert per_pixel.min() >= rate * secs - 1 and per_pixel.max() <= rate * secs + 1


def test_refractory_period_is_enforced() -> None:
    size, refr = 16, 500
    cfg = PixelModelConfig(refractory_us=refr, shot_noise_rate_hz=200.0, leak_rate_hz=1.0)
    free = PixelModelConfig(refractory_us=0, shot_noise_rate_hz=200.0, leak_rate_hz=1.0)
    rng = np.random.default_rng(0)
    frames = [rng.uniform(0.05, 1.0, (size, size)).astype(np.float32) for _ in range(50)]
    ev = run(DvsPixelModel(size, size, cfg), frames, 1000)  # ~10 crossings/ms per pixel
    ev_free = run(DvsPixelModel(size, size, free), frames, 1000)
    assert 0 < len(ev) < len(ev_free) / 2
    pix = ev["y"].astype(np.int64) * size + ev["x"]
    order = np.lexsort((ev["t"], pix))
    same = pix[order][1:] == pix[order][:-1]
    gaps = np.diff(ev["t"][order])[same]
    assert gaps.min() >= refr


def test_timestamps_are_interpolated_between_frames() -> None:
    model = DvsPixelModel(1, 1, CLEAN)
    model.reset(np.full((1, 1), 0.2, np.float32), 1_000)
    ramp = np.full((1, 1), 0.2 * math.exp(3.5 * 0.2), np.float32)  # 3.5 thresholds
    ev = model.emit(ramp, 2_000)
    assert len(ev) == 3 and np.all(ev["p"])
    assert ev["t"].tolist() == [1_000 + math.ceil(1_000 * k / 3.5) for k in (1, 2, 3)]
    assert np.ptp(np.diff(ev["t"])) <= 1  # evenly spaced
    # Random scenes: every event lies in (previous frame, this frame].
    cfg = PixelModelConfig(shot_noise_rate_hz=50.0, leak_rate_hz=5.0)
    model = DvsPixelModel(32, 32, cfg)
    rng = np.random.default_rng(1)
    model.reset(rng.random((32, 32), dtype=np.float32), 0)
    for i in range(1, 6):
        ev = model.emit(rng.random((32, 32), dtype=np.float32), i * 33_333)
        assert len(ev) and ev["t"].min() > (i - 1) * 33_333 and ev["t"].max() <= i * 33_333
        assert np.all(np.diff(ev["t"]) >= 0)


def test_mismatch_has_configured_sigma_and_is_fixed_by_seed() -> None:
    cfg = PixelModelConfig(pos_threshold=0.3, neg_threshold=0.25, threshold_sigma=0.05, seed=7)
    a = DvsPixelModel(128, 128, cfg)
    assert abs(a.pos_thresholds.mean() - 0.3) < 0.005 and abs(a.pos_thresholds.std() - 0.05) < 0.003
    assert abs(a.neg_thresholds.mean() - 0.25) < 0.005
    assert abs(a.neg_thresholds.std() - 0.05) < 0.003
    b = DvsPixelModel(128, 128, cfg)
    c = DvsPixelModel(128, 128, PixelModelConfig(threshold_sigma=0.05, seed=8))
    assert np.array_equal(a.pos_thresholds, b.pos_thresholds)
    assert not np.array_equal(a.pos_thresholds, c.pos_thresholds)
    rng = np.random.default_rng(2)
    frames = [rng.random((128, 128), dtype=np.float32) for _ in range(4)]
    noisy = PixelModelConfig(threshold_sigma=0.05, shot_noise_rate_hz=10.0, leak_rate_hz=1.0)
    e1 = run(DvsPixelModel(128, 128, noisy), frames, 10_000)
    e2 = run(DvsPixelModel(128, 128, noisy), frames, 10_000)
    assert len(e1) > 0 and np.array_equal(e1, e2)


# -- VideoSource --------------------------------------------------------------------------
def write_video(path: Path, frames: int = 20, fps: float = 50.0) -> Path:
    cv2 = pytest.importorskip("cv2")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    assert writer.isOpened()
    for k in range(frames):
        f = np.full((48, 64, 3), 30, dtype=np.uint8)
        f[:, 5 + 2 * k : 15 + 2 * k] = 220
        writer.write(f)
    writer.release()
    return path


def drain(src: VideoSource, timeout_s: float = 5.0) -> np.ndarray:
    parts, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        parts.append(src.poll())
        if src.status().state is SourceState.ENDED:
            break
        time.sleep(0.002)
    parts.append(src.poll())
    return np.concatenate(parts)


@pytest.mark.parametrize("speed", [math.inf, 1.0])
def test_video_source_over_a_file(tmp_path: Path, speed: float) -> None:
    path = write_video(tmp_path / "bar.avi", frames=15)
    src = VideoSource(path, speed=speed)
    assert src.sensor_size == (64, 48, 2)
    begun = time.monotonic()
    src.start()
    ev = drain(src)
    elapsed = time.monotonic() - begun
    st = src.status()
    src.stop()
    assert st.state is SourceState.ENDED, st.message
    assert len(ev) > 0 and st.events_delivered == len(ev) and st.events_dropped == 0
    assert np.all(np.diff(ev["t"]) >= 0)
    assert ev["t"].min() > 0 and ev["t"].max() <= 14 * 20_000
    assert st.extra["frames_in"] == 15 and st.stream_time_us == ev["t"][-1]
    on_x, off_x = ev["x"][ev["p"]], ev["x"][~ev["p"]]
    assert np.mean(on_x >= 14) > 0.9  # ON mostly where the leading edge passed (JPEG ringing)
    assert on_x.mean() > off_x.mean() + 5  # the leading edge is right of the trailing one
    if speed == 1.0:
        assert elapsed > 0.2  # paced: 14 frame intervals of 20 ms


def test_video_source_reports_stalled(tmp_path: Path) -> None:
    path = write_video(tmp_path / "slow.avi", frames=3)
    src = VideoSource(path, speed=0.001, stall_timeout_s=0.2)  # 2nd frame due 20 s later
    src.start()
    time.sleep(0.4)
    src.poll()
    st = src.status()
    src.stop()
    assert st.state is SourceState.STALLED and "no frame" in st.message


def test_missing_file_and_absent_webcam_give_one_line_messages(tmp_path: Path) -> None:
    pytest.importorskip("cv2")
    missing = tmp_path / "nope.mp4"
    src = VideoSource(missing)
    src.start()
    st = src.status()
    assert st.state is SourceState.ERROR and str(missing) in st.message
    assert "\n" not in st.message and len(src.poll()) == 0
    src.stop()

    cam = VideoSource("webcam:7")
    cam.start()
    st = cam.status()
    cam.stop()
    if st.state is SourceState.RUNNING:
        pytest.skip("a camera answers at index 7")
    assert st.state is SourceState.DISCONNECTED
    assert "webcam:7" in st.message and "\n" not in st.message
