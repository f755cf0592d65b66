"""Helping the user pick the right network: each model's training data and input in the
chooser, the rule for "a real DVS128 recording", and the suggestion to switch to the model
trained on real DVS128 Gesture (shown, dismissable, one click; never a silent switch)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import Qt

from dvsapp.events.detect import open_reader
from dvsapp.events.types import make_events
from dvsapp.events.writers import write_aedat4, write_aedat31
from dvsapp.gui import theme
from dvsapp.gui.app import shipped_models
from dvsapp.gui.controls import model_text
from dvsapp.gui.main_window import MainWindow
from dvsapp.gui.model_combo import ModelCombo
from dvsapp.pipeline import Pipeline, PipelineSettings, PipelineStats
from dvsapp.pipeline.advice import (
    CIFAR10_DVS,
    DVS128_GESTURE,
    GESTURE_MODEL,
    NMNIST,
    OTHER,
    REAL_DVS128,
    SYNTHETIC,
    SYNTHETIC_RECORDING,
    UNKNOWN,
    UNTRAINED,
    ModelSummary,
    input_text,
    origin_of_reader,
    recording_origin,
    suggest_model,
    summarise_checkpoint,
    training_data,
)
from dvsapp.pipeline.records import RecordingOrigin

from .fake_pipeline import FakePipeline
from .gui_helpers import WAIT_MS, colour_pixels, grab, wait_steps

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
SYNTH_REC = REPO / "recordings" / "synth_seed9000000.aedat"
SYNTH_REC4 = REPO / "recordings" / "synth_seed9000000.aedat4"
DEMO_REC = REPO / "recordings" / "demo_rotating_bar.aedat4"
DEFAULT_MODEL = MODELS / "resnet_small_synth.safetensors"
GESTURE = MODELS / f"{GESTURE_MODEL}.safetensors"
#: What each shipped model was trained on, as the app must say it.
SHIPPED_TRAINING = {
    "resnet_small_synth": SYNTHETIC,
    "vgg_small_synth": SYNTHETIC,
    "resnet_small_synth_nonorm_collapsed": SYNTHETIC,
    "cnn_sinabs_nmnist": NMNIST,
    "snntorch_dvs_gesture": DVS128_GESTURE,
}
#: cAER's #Start-Time, as the real DVS128 Gesture files carry it.
REAL_START = "2017-03-30 09:41:35 (TZ+0200)"


# -- training data and input (no Qt) ---------------------------------------------------------
@pytest.mark.parametrize(
    ("trained_on", "expected"),
    [
        ("synth", SYNTHETIC),
        ("synth:/data/synth_rec", SYNTHETIC),
        ("synthetic DVS128 Gesture-like clips", SYNTHETIC),
        ("DVS128 Gesture (real; trained by NeuroBench)", DVS128_GESTURE),
        ("dvsgesture:~/data/DvsGesture", DVS128_GESTURE),
        ("tonic-dvsgesture:/data", DVS128_GESTURE),
        ("DVS-Gesture", DVS128_GESTURE),
        ("N-MNIST (real; trained in sinabs by the NIR paper's authors)", NMNIST),
        ("nmnist", NMNIST),
        ("cifar10dvs:~/data/CIFAR10-DVS", CIFAR10_DVS),
        ("nothing (untrained)", UNTRAINED),
        ("unknown (imported from nir: synth_net.nir)", UNKNOWN),
        ("", UNKNOWN),
        (None, UNKNOWN),
        ("ImageNet", UNKNOWN),
    ],
)
def test_training_data_from_trained_on(trained_on: str | None, expected: str) -> None:
    assert training_data(trained_on) == expected


def test_input_text() -> None:
    gesture = {
        "sensor_size": [128, 128],
        "time_window_us": 40000,
        "input_size": [32, 32],
        "polarity": "split",
        "denoise_us": 10000,
    }
    assert input_text(gesture) == "2x32x32, 40 ms bins, denoised"
    assert input_text(gesture, detail=True) == (
        "2x32x32, 40 ms bins, denoised (10 ms), from a 128x128 sensor"
    )
    counted = {"sensor_size": [34, 34], "event_count": 3000, "polarity": "sum"}
    assert input_text(counted) == "1x34x34, 3000 events per bin"
    assert input_text({"input_size": [64, 48], "time_window_us": 2500}) == "2x48x64, 2.5 ms bins"
    assert input_text({}) == "unknown input"


def test_every_shipped_model_states_its_training_data() -> None:
    listed = {p.stem: p for p in shipped_models()}
    assert set(SHIPPED_TRAINING) <= set(listed), sorted(listed)
    for stem, expected in SHIPPED_TRAINING.items():
        s = summarise_checkpoint(listed[stem])
        assert (s.training, s.error) == (expected, ""), stem
        assert f"trained on: {expected}" in s.tooltip
    g = summarise_checkpoint(GESTURE)
    assert g.input == "2x32x32, 40 ms bins, denoised" and g.time_steps == 150
    assert "T=150" in g.tooltip and "DVS128 Gesture (real; trained by NeuroBench)" in g.tooltip
    assert summarise_checkpoint(DEFAULT_MODEL).input == "2x64x64, 50 ms bins"


def test_unreadable_checkpoint_is_listed_as_unknown(tmp_path: Path) -> None:
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a checkpoint")
    s = summarise_checkpoint(bad)
    assert s.training == UNKNOWN and s.error and "cannot read" in s.tooltip


# -- which recordings are real DVS128 ones ----------------------------------------------------
def _events(n: int = 200) -> np.ndarray:
    rng = np.random.default_rng(0)
    return make_events(
        rng.integers(0, 128, n), rng.integers(0, 128, n), np.arange(n) * 100, rng.random(n) < 0.5
    )


def test_shipped_recordings_are_synthetic() -> None:
    for path in (SYNTH_REC, SYNTH_REC4, DEMO_REC):
        origin = origin_of_reader(open_reader(path))
        assert origin.kind == SYNTHETIC_RECORDING, (path, origin)


def test_a_renamed_synthetic_recording_is_still_ours(tmp_path: Path) -> None:
    """Renamed: the AEDAT 3.1 start time (the epoch) and the AEDAT4 source still say so."""
    for src, name in ((SYNTH_REC, "user01_fluorescent.aedat"), (SYNTH_REC4, "gesture.aedat4")):
        copy = tmp_path / name
        shutil.copyfile(src, copy)
        assert origin_of_reader(open_reader(copy)).kind == SYNTHETIC_RECORDING, name


def test_real_dvs128_files(tmp_path: Path) -> None:
    # An AEDAT 3.1 file as cAER writes DVS128 Gesture: DVS128 source, a real start time.
    real31 = write_aedat31(
        tmp_path / "user01_natural.aedat", _events(), (128, 128), start_time=REAL_START
    )
    origin = origin_of_reader(open_reader(real31))
    assert (origin.kind, origin.path) == (REAL_DVS128, real31)
    # The same with our synth's start time is ours, whatever its name.
    ours = write_aedat31(
        tmp_path / "user02_led.aedat",
        _events(),
        (128, 128),
        start_time="1970-01-01 00:00:00 (TZ+0000)",
    )
    assert origin_of_reader(open_reader(ours)).kind == SYNTHETIC_RECORDING
    # AEDAT4: a DVS128 camera (DV) or a camera recorded by `dvsapp record` are real;
    # our writer's default name ("dvsapp": synth, convert) is not.
    for camera, kind in (
        ("DVS128_00000123", REAL_DVS128),
        ("camera:00000123", REAL_DVS128),
        ("dvsapp", SYNTHETIC_RECORDING),
        ("emulator:webcam 0", OTHER),
    ):
        out = tmp_path / f"{kind}.aedat4"
        write_aedat4(out, [_events()], (128, 128, 2), camera_name=camera)
        assert origin_of_reader(open_reader(out)).kind == kind, camera


def test_origin_rule_from_metadata() -> None:
    jaer = {"version": "2.0", "chip": "DVS128"}
    assert recording_origin(Path("a.aedat"), "aedat2", (128, 128, 2), jaer).kind == REAL_DVS128
    # Not 128x128: not a DVS128, even from a camera.
    davis = {"source": "DAVIS346_00000104"}
    assert recording_origin(Path("d.aedat4"), "aedat4", (346, 260, 2), davis).kind == OTHER
    # Nothing names the camera (a numpy file): no verdict.
    assert recording_origin(Path("3.npy"), "npy", (128, 128, 2), {"target": 3}).kind == OTHER
    # Our synth's names win over everything else.
    named = recording_origin(Path("synth_seed7.aedat"), "aedat2", (128, 128, 2), jaer)
    assert named.kind == SYNTHETIC_RECORDING


def test_moving_dark_box_is_a_real_dvs128_recording(samples_dir: Path) -> None:
    origin = origin_of_reader(open_reader(samples_dir / "MovingDarkBox.aedat"))
    assert origin.kind == REAL_DVS128 and "AEDAT 2.0" in origin.reason
    other = origin_of_reader(open_reader(samples_dir / "sample.aedat4"))
    assert other.kind == OTHER  # a DVXplorer, 320x240


def test_suggest_model() -> None:
    models = [summarise_checkpoint(p) for p in shipped_models()]
    real = RecordingOrigin(Path("x.aedat"), REAL_DVS128, "test")
    pick = suggest_model(real, SYNTHETIC, DEFAULT_MODEL, models)
    assert pick is not None and pick.name == GESTURE_MODEL
    for training in (NMNIST, UNTRAINED, UNKNOWN):
        assert suggest_model(real, training, None, models) == pick
    assert suggest_model(real, DVS128_GESTURE, GESTURE, models) is None
    synth = RecordingOrigin(Path("synth_seed1.aedat"), SYNTHETIC_RECORDING, "test")
    assert suggest_model(synth, SYNTHETIC, DEFAULT_MODEL, models) is None
    assert suggest_model(None, SYNTHETIC, DEFAULT_MODEL, models) is None
    assert suggest_model(real, None, None, models) is None  # nothing loaded yet
    no_gesture = [m for m in models if m.name != GESTURE_MODEL]
    assert suggest_model(real, SYNTHETIC, DEFAULT_MODEL, no_gesture) is None


# -- the chooser -----------------------------------------------------------------------------
def test_chooser_entries_and_tooltips_state_training_data(qtbot) -> None:
    pipe = FakePipeline(PipelineSettings(recording=SYNTH_REC, checkpoint=DEFAULT_MODEL))
    win = MainWindow(pipe, shipped_models())
    qtbot.addWidget(win)
    win.resize(1600, 1000)
    win.show()
    qtbot.waitExposed(win)
    combo = win.controls.model
    seen = {}
    for i in range(combo.count()):
        data = combo.itemData(i)
        if isinstance(data, Path):
            seen[data.stem] = (combo.full_text(i), combo.itemData(i, Qt.ItemDataRole.ToolTipRole))
    assert set(seen) == set(SHIPPED_TRAINING)
    for stem, expected in SHIPPED_TRAINING.items():
        entry, tip = seen[stem]
        assert entry == f"{stem} · {expected}"
        assert f"trained on: {expected}" in tip and "input: 2x" in tip
    assert "input: 2x32x32, 40 ms bins, denoised (10 ms)" in seen[GESTURE_MODEL][1]
    # The closed box: elided to its width, and its tooltip is the chosen entry's full text.
    assert combo.currentData() == DEFAULT_MODEL
    assert combo.toolTip().startswith("resnet_small_synth\ntrained on: synthetic gestures")
    fm = combo.fontMetrics()
    assert fm.horizontalAdvance(combo.shown_text()) <= combo.width()
    long_name = MODELS / "resnet_small_synth_nonorm_collapsed.safetensors"
    collapsed = [combo.itemData(i) for i in range(combo.count())].index(long_name)
    width = combo.width()
    combo.setCurrentIndex(collapsed)
    shown = combo.shown_text()
    assert shown and fm.horizontalAdvance(shown) <= combo.width() == width
    # Whole with its training data, or the name alone (the label below says the data).
    name = combo.itemText(collapsed)
    assert shown in (combo.full_text(collapsed), name) or ("…" in shown and name[:4] in shown)
    # The open list is wide enough for every entry whole.
    widest = max(fm.horizontalAdvance(combo.full_text(i)) for i in range(combo.count()))
    assert combo.view().minimumWidth() >= min(widest, 500)
    win.close()


def test_chooser_width_does_not_follow_the_entries(qtbot) -> None:
    short, long_ = ModelCombo(), ModelCombo()
    for w in (short, long_):
        qtbot.addWidget(w)
    short.add_model("a", 1)
    long_.add_model("resnet_small_synth_nonorm_collapsed_and_then_some_more", 1)
    long_.describe(0, SYNTHETIC, "tip")
    assert short.sizeHint().width() == long_.sizeHint().width()
    assert short.minimumSizeHint().width() == long_.minimumSizeHint().width()
    long_.resize(long_.sizeHint())
    long_.show()
    qtbot.waitExposed(long_)
    shown = long_.shown_text()
    assert "…" in shown and shown.startswith("resnet_") and shown.endswith("more")
    assert long_.fontMetrics().horizontalAdvance(shown) <= long_.width()


def test_model_label_states_training_data_and_input(qtbot) -> None:
    pipe = FakePipeline(PipelineSettings(recording=SYNTH_REC))
    pipe._publish_info()
    info = dataclasses.replace(
        pipe.model_info(),
        trained_on="DVS128 Gesture (real; trained by NeuroBench)",
        trained_input="2x32x32, 40 ms bins, denoised",
    )
    text = model_text(info)
    assert "trained on: real DVS128 Gesture" in text
    assert "input 2x32x32, 40 ms bins, denoised" in text
    demo = dataclasses.replace(info, trained=False, trained_on="nothing (untrained)")
    assert "trained on: untrained" in model_text(demo)
    assert "trained on: unknown" in model_text(dataclasses.replace(info, trained_on=""))


# -- the suggestion --------------------------------------------------------------------------
class _RealRecordingFake(FakePipeline):
    """The fake pipeline, reporting its recording as a real DVS128 one and its model as
    the requested checkpoint trained on synthetic gestures (or the checkpoint's own data)."""

    def model_info(self):
        info = super().model_info()
        if info is None:
            return None
        ckpt = self.settings.checkpoint
        trained_on = "synth" if ckpt is None else summarise_checkpoint(ckpt).trained_on
        return dataclasses.replace(
            info, path=ckpt, name=Path(ckpt or "x").name, trained_on=trained_on
        )

    def stats(self) -> PipelineStats:
        rec = self.settings.recording
        kind = REAL_DVS128 if rec is not None and "real" in rec.name else SYNTHETIC_RECORDING
        return dataclasses.replace(
            super().stats(), recording_origin=RecordingOrigin(rec, kind, "a fake camera")
        )


def _notice_pixels(win: MainWindow) -> int:
    return colour_pixels(grab(win), np.array([theme.hex_rgb(theme.NOTICE_BACKGROUND)], np.uint8))


def test_suggestion_dismiss_and_no_silent_switch(qtbot, tmp_path: Path) -> None:
    real = tmp_path / "real_dvs128.aedat"
    settings = PipelineSettings(recording=real, checkpoint=DEFAULT_MODEL)
    pipe = _RealRecordingFake(settings)
    win = MainWindow(pipe, shipped_models())
    qtbot.addWidget(win)
    win.resize(1600, 1000)
    win.show()
    qtbot.waitExposed(win)
    win.start()
    try:
        qtbot.waitUntil(win.notice.isVisible, timeout=WAIT_MS)
        assert "real DVS128 recording" in win.notice.text()
        assert "resnet_small_synth was trained on synthetic gestures" in win.notice.text()
        assert win.notice.action_button.text() == f"use {GESTURE_MODEL}"
        assert _notice_pixels(win) > 5000
        qtbot.wait(600)  # a few stats ticks: suggested, not switched
        assert win.settings.checkpoint == DEFAULT_MODEL
        assert ("load_model", GESTURE) not in pipe.calls
        # Dismissed: gone, and it stays gone for this recording and model.
        qtbot.mouseClick(win.notice.close_button, Qt.MouseButton.LeftButton)
        assert not win.notice.isVisible()
        qtbot.wait(600)
        assert not win.notice.isVisible() and _notice_pixels(win) == 0
        # Another real recording: suggested again.
        win.open_recording(tmp_path / "real_other.aedat")
        qtbot.waitUntil(win.notice.isVisible, timeout=WAIT_MS)
        # A synthetic one: no suggestion.
        win.open_recording(SYNTH_REC)
        qtbot.waitUntil(lambda: not win.notice.isVisible(), timeout=WAIT_MS)
    finally:
        win.close()


def _real_window(qtbot, recording: Path, checkpoint: Path | None = DEFAULT_MODEL) -> MainWindow:
    settings = PipelineSettings(recording=recording, checkpoint=checkpoint, device="cpu")
    win = MainWindow(Pipeline(settings), shipped_models())
    qtbot.addWidget(win)
    win.resize(1600, 1000)
    win.show()
    qtbot.waitExposed(win)
    win.start()
    return win


def test_real_dvs128_recording_suggests_the_gesture_model(qtbot, samples_dir: Path) -> None:
    box = samples_dir / "MovingDarkBox.aedat"
    win = _real_window(qtbot, box)
    try:
        qtbot.waitUntil(win.notice.isVisible, timeout=WAIT_MS)
        st = win.last_stats
        assert st is not None and st.recording_origin is not None
        assert st.recording_origin.kind == REAL_DVS128
        assert win.info is not None and win.info.path == DEFAULT_MODEL  # not switched
        text = win.notice.text()
        assert "MovingDarkBox.aedat looks like a real DVS128 recording" in text
        assert "synthetic gestures" in text and "real DVS128 Gesture" in text
        assert _notice_pixels(win) > 5000
        qtbot.mouseClick(win.notice.action_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: win.info is not None and win.info.path == GESTURE, timeout=WAIT_MS)
        assert win.settings.checkpoint == GESTURE
        assert win.controls.model.currentData() == GESTURE
        assert "trained on: real DVS128 Gesture" in win.controls.model_label.text()
        wait_steps(qtbot, win, win.seq + 3)
        qtbot.wait(600)  # stats ticks with the right model: no suggestion
        assert not win.notice.isVisible() and _notice_pixels(win) == 0
        assert win.pipeline.stats().state != "error"
    finally:
        win.close()


def test_synthetic_recording_gets_no_suggestion(qtbot) -> None:
    win = _real_window(qtbot, SYNTH_REC)
    try:
        wait_steps(qtbot, win, 3)
        qtbot.waitUntil(
            lambda: win.last_stats is not None and win.last_stats.recording_origin is not None,
            timeout=WAIT_MS,
        )
        assert win.last_stats.recording_origin.kind == SYNTHETIC_RECORDING
        qtbot.wait(600)
        assert not win.notice.isVisible() and _notice_pixels(win) == 0
    finally:
        win.close()


def test_summary_tooltip_of_a_model_without_metadata() -> None:
    s = ModelSummary(Path("m.safetensors"), "m", SYNTHETIC, "synth", "2x8x8", "2x8x8", None)
    assert s.tooltip.splitlines()[:3] == [
        "m",
        "trained on: synthetic gestures",
        "its checkpoint says: synth",
    ]
