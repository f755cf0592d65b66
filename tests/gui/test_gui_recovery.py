"""The app after errors and while the stream changes (issue 13): a failed load or open leaves the
previous model and recording playing, an error banner clears after a later success, nothing
stale stays drawn (seek while paused, model switch, new file), options that do not apply to a
new model switch themselves off, and a recording unlike the model's training data is said so."""

from __future__ import annotations

from pathlib import Path

import pytest

from dvsapp.gui.controls import model_text
from dvsapp.gui.main_window import MainWindow
from dvsapp.gui.panels.prediction import ExitMarker, exit_text
from dvsapp.pipeline import Pipeline, PipelineSettings

from .gui_helpers import WAIT_MS, make_window, wait_steps

REPO = Path(__file__).resolve().parents[2]
VGG = REPO / "models" / "vgg_small_synth.safetensors"
RESNET = REPO / "models" / "resnet_small_synth.safetensors"
SYNTH = REPO / "recordings" / "synth_seed9000000.aedat4"
DEMO = REPO / "recordings" / "demo_rotating_bar.aedat4"


def _window(qtbot, **settings) -> MainWindow:
    pipe = Pipeline(PipelineSettings(device="cpu", **settings))
    return make_window(qtbot, pipe, [RESNET, VGG], start=True)


@pytest.fixture
def window(qtbot, thread_errors):
    win = _window(qtbot, recording=SYNTH, checkpoint=RESNET)
    yield win
    win.close()
    assert not win.pipeline.running  # type: ignore[attr-defined]
    assert thread_errors == []


def _steps_on(qtbot, win: MainWindow, n: int = 3) -> None:
    seq = win.seq
    wait_steps(qtbot, win, seq + n)
    assert win.pipeline.stats().state != "error"


def _pause(qtbot, win: MainWindow) -> None:
    win.controls.play_button.setChecked(False)  # as a click (or Space) does
    qtbot.waitUntil(lambda: win.pipeline.stats().state == "paused", timeout=WAIT_MS)
    qtbot.wait(300)  # frames stepped before the pause are drawn


def test_gamma_exit_switches_itself_off_for_a_tdbn_model(qtbot, thread_errors) -> None:
    win = _window(qtbot, recording=SYNTH, checkpoint=VGG, temporal_exit_gamma=0.5)
    try:
        wait_steps(qtbot, win, 2)
        c = win.controls
        assert win.info is not None and win.info.family == "bntt"
        assert c.gamma_on.isChecked() and c.gamma_on.isEnabled()
        win.load_model(RESNET)
        qtbot.waitUntil(lambda: win.info is not None and win.info.family == "tdbn", timeout=WAIT_MS)
        assert not c.gamma_on.isChecked() and not c.gamma_on.isEnabled()
        assert win.settings.temporal_exit_gamma is None
        assert c.model_label.text() == model_text(win.info)
        assert not win.banner.isVisible()
        _steps_on(qtbot, win)
    finally:
        win.close()
    assert thread_errors == []


def _bad_checkpoints(tmp_path: Path) -> list[Path]:
    from safetensors import safe_open
    from safetensors.torch import save_file

    noise = tmp_path / "noise.safetensors"
    noise.write_bytes(bytes(range(256)) * 16)
    mixed = tmp_path / "resnet_meta_vgg_tensors.safetensors"
    with safe_open(str(RESNET), "pt") as f:
        meta = f.metadata()
    with safe_open(str(VGG), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    save_file(tensors, str(mixed), metadata=meta)
    return [noise, mixed]


def test_failed_model_loads_keep_the_model_playing_and_a_success_clears_the_banner(
    window: MainWindow, qtbot, tmp_path: Path
) -> None:
    win = window
    wait_steps(qtbot, win, 2)
    info = win.info
    assert info is not None
    for n, bad in enumerate(_bad_checkpoints(tmp_path), 1):
        win.load_model(bad)
        qtbot.waitUntil(lambda n=n: win.last_stats.model_failures == n, timeout=WAIT_MS)  # type: ignore[union-attr]
        qtbot.waitUntil(lambda: win.controls.model_label.text() != "loading…", timeout=WAIT_MS)
        assert bad.name in win.banner.text() and win.banner.isVisible()
        assert win.controls.model_label.text() == model_text(info)
        assert win.controls.model.currentData() == RESNET
        c = win.controls
        assert all(c.model.itemData(i) != bad for i in range(c.model.count()))
        # Space pauses and plays the model still loaded.
        _pause(qtbot, win)
        win.shortcuts.toggle_play()
        qtbot.waitUntil(lambda: win.pipeline.stats().state == "running", timeout=WAIT_MS)
        _steps_on(qtbot, win)
    # A later good load clears the banner.
    win.load_model(VGG)
    qtbot.waitUntil(lambda: win.info is not None and win.info.family == "bntt", timeout=WAIT_MS)
    assert not win.banner.isVisible()


def test_failed_open_keeps_the_recording_and_a_good_one_clears_the_banner(
    window: MainWindow, qtbot, tmp_path: Path
) -> None:
    win = window
    wait_steps(qtbot, win, 2)
    bad = tmp_path / "noise.aedat4"
    bad.write_bytes(bytes(range(256)) * 8)
    win.open_recording(bad)
    qtbot.waitUntil(lambda: "noise.aedat4" in win.banner.text(), timeout=WAIT_MS)
    # The recording still playing is the one named: not the bad one.
    qtbot.waitUntil(lambda: win.settings.recording == SYNTH, timeout=WAIT_MS)
    assert win.controls.recording_label.text() == SYNTH.name
    assert SYNTH.name in win.windowTitle() and "noise" not in win.windowTitle()
    assert win.pipeline.stats().state != "error"
    _steps_on(qtbot, win)
    _pause(qtbot, win)
    win.shortcuts.toggle_play()  # Space plays it
    _steps_on(qtbot, win)
    # Opened again: it fails again (the entry is not silently the bad one).
    win.open_recording(bad)
    qtbot.waitUntil(lambda: win.last_stats.recording_failures == 2, timeout=WAIT_MS)  # type: ignore[union-attr]
    qtbot.waitUntil(lambda: win.settings.recording == SYNTH, timeout=WAIT_MS)
    # A good file clears the banner.
    win.open_recording(DEMO)
    qtbot.waitUntil(lambda: not win.banner.isVisible(), timeout=WAIT_MS)
    assert win.controls.recording_label.text() == DEMO.name
    _steps_on(qtbot, win)


def test_new_file_blanks_the_old_frame_at_once(window: MainWindow, qtbot) -> None:
    win = window
    wait_steps(qtbot, win, 2)
    _pause(qtbot, win)
    assert win.events.image.image is not None and win.events.image.image[..., 3].any()
    assert len(win.prediction.bars.opts["width"]) > 0
    win.open_recording(DEMO)
    # Before the worker has done anything: nothing of the old recording is drawn.
    assert not win.events.image.image[..., 3].any()
    assert len(win.prediction.bars.opts["width"]) == 0


def test_seek_while_paused_shows_the_new_time(window: MainWindow, qtbot) -> None:
    win = window
    qtbot.waitUntil(
        lambda: win.last_stats is not None and bool(win.last_stats.duration_us), timeout=WAIT_MS
    )
    wait_steps(qtbot, win, 2)
    _pause(qtbot, win)
    st = win.pipeline.stats()
    seq, drawn = win.seq, win.events.drawn
    win.request_seek(0.5)
    qtbot.waitUntil(lambda: win.seq > seq and win.events.drawn > drawn, timeout=WAIT_MS)
    target = st.t_first_us + 0.5 * st.duration_us  # type: ignore[operator]
    qtbot.waitUntil(
        lambda: abs(win.pipeline.stats().stream_time_us - target) < 200_000,  # type: ignore[operator]
        timeout=WAIT_MS,
    )
    assert win.pipeline.stats().state == "paused"
    assert len(win.prediction.bars.opts["width"]) > 0  # the prediction at the new time


def test_model_switch_clears_the_probability_bars(window: MainWindow, qtbot) -> None:
    win = window
    wait_steps(qtbot, win, 2)
    _pause(qtbot, win)
    assert len(win.prediction.bars.opts["width"]) > 0
    old = win.info
    win.load_model(VGG)
    qtbot.waitUntil(lambda: win.info is not old and win.info.family == "bntt", timeout=WAIT_MS)  # type: ignore[union-attr]
    qtbot.wait(200)
    assert len(win.prediction.bars.opts["width"]) == 0


def test_bin_width_shows_the_checkpoint_and_resets_to_it(window: MainWindow, qtbot) -> None:
    win = window
    wait_steps(qtbot, win, 2)
    c, info = win.controls, win.info
    assert info is not None and info.trained_bin_us > 0
    trained = info.trained_bin_us
    assert f"{trained / 1000:g} ms" in c.trained_binning.text()
    assert not c.binning_differs and not c.binning_reset.isEnabled()
    c.bin_us.setValue(trained * 2)
    qtbot.waitUntil(
        lambda: win.info is not None and win.info.bin_us == trained * 2, timeout=WAIT_MS
    )
    assert c.binning_differs and c.binning_reset.isEnabled()
    assert c.trained_binning.text().startswith("≠ trained")
    assert "differs from training" in win.prediction.title_label.text()
    c.binning_reset.click()
    qtbot.waitUntil(lambda: win.info is not None and win.info.bin_us == trained, timeout=WAIT_MS)
    assert not c.binning_differs and c.bin_us.value() == trained
    assert win.prediction.title_label.text() == "Prediction"


def test_recording_unlike_the_training_data_gets_a_note(qtbot, samples_dir, thread_errors):
    ncars = samples_dir / "sample_ncars.dat"
    if not ncars.is_file():
        pytest.skip(f"{ncars} is absent")
    win = _window(qtbot, recording=ncars, checkpoint=RESNET)
    try:
        qtbot.waitUntil(win.mismatch.isVisible, timeout=WAIT_MS)
        text = win.mismatch.text()
        assert "304x240" in text and "is a guess" in text and "synthetic" in text
        assert not win.mismatch.action_button.isVisible()
        assert "guessed" in win.events.title_label.text()
        wait_steps(qtbot, win, 2)
        qtbot.waitUntil(lambda: "(guess)" in win.events.hint_label.text(), timeout=WAIT_MS)
        # The shipped synthetic recording through its own kind of model: no note.
        win.open_recording(SYNTH)
        qtbot.waitUntil(lambda: not win.mismatch.isVisible(), timeout=WAIT_MS)
        assert "guessed" not in win.events.title_label.text()
    finally:
        win.close()
    assert thread_errors == []


def test_exit_markers_say_which_exit_fired(qtbot) -> None:
    assert exit_text("left_hand_wave", "confidence").endswith("conf")
    assert exit_text("left_hand_wave", "temporal").endswith("γ")
    import pyqtgraph as pg

    group = pg.ItemGroup()
    marker = ExitMarker(group, 10, 0, 1, "arm_roll", True, 0)
    marker.relabel(1, "arm_roll", "temporal")
    assert marker.label is not None and "γ" in marker.label.toPlainText()
    win = MainWindow(Pipeline(PipelineSettings()), [])
    qtbot.addWidget(win)
    c = win.controls
    for w in (c.exit_on, c.exit_threshold, c.exit_consecutive, c.exit_metric, c.gamma_on, c.gamma):
        assert w.toolTip()


def test_end_of_a_recording_reads_its_end_time(qtbot, thread_errors) -> None:
    """Loop switched off after a pass: at the end the time is the end, not 0:00.0."""
    win = _window(qtbot, recording=DEMO, checkpoint=RESNET, speed=float("inf"), loop=True)
    try:
        seen: list[int] = []

        def looped() -> bool:
            t = win.pipeline.stats().stream_time_us
            if t is not None:
                seen.append(t)
            return len(seen) > 1 and seen[-1] < max(seen)

        qtbot.waitUntil(looped, timeout=WAIT_MS)
        win.controls.loop.setChecked(False)
        qtbot.waitUntil(lambda: win.pipeline.stats().state == "ended", timeout=WAIT_MS)
        qtbot.wait(400)  # a stats tick
        shown = win.controls.position_label.text()
        assert not shown.startswith("0:00.0") and shown.split(" / ")[0] == shown.split(" / ")[1]
    finally:
        win.close()
    assert thread_errors == []
