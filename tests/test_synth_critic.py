"""`dvsapp synth --critic`: the network trained on real DVS128 Gesture judging synthetic clips.

Fast: one short clip per class (or a few classes); the real critic is the shipped import
``models/snntorch_dvs_gesture.safetensors`` (dvsapp's own graph model, no snnTorch needed).
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from dvsapp.cli import main as dvsapp_main
from dvsapp.errors import ConfigError
from dvsapp.events.types import DVS_GESTURE_CLASSES
from dvsapp.synth import critic

needs_critic = pytest.mark.skipif(
    not critic.CRITIC_MODEL.is_file(), reason="models/snntorch_dvs_gesture.safetensors absent"
)


def _cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = dvsapp_main(["synth", *args])
    return code, out.getvalue(), err.getvalue()


def test_report_counts_per_class_and_overall() -> None:
    confusion = np.zeros((11, 11), dtype=np.int64)
    confusion[0, 0] = 2  # class 0: both right
    confusion[1, 1], confusion[1, 2] = 1, 1  # class 1: one of two
    confusion[3, 4] = 2  # class 3: none
    report = critic.CriticReport(
        "m", 2, [5, 6], 1.0, list(DVS_GESTURE_CLASSES), confusion, [10.0, 30.0]
    )
    assert report.accuracy == pytest.approx(3 / 6)
    assert report.per_class[:4].tolist() == [1.0, 0.5, 0.0, 0.0]
    d = report.to_dict()
    assert d["clips"] == 6 and d["per_class"]["right_hand_wave"] == 0.5
    assert d["confusion"][1] == [0, 1, 1] + [0] * 8 and d["mean_events_per_s"] == 20.0
    json.dumps(d)
    lines = report.table()
    assert "accuracy 50.0% (3/6)" in lines[1]
    assert len([ln for ln in lines if ln[:2].strip().isdigit()]) == 11


@needs_critic
def test_critic_names_clips_made_by_a_given_clip_maker() -> None:
    """The critic gets each clip alone; a clip maker that returns nothing but noise-free
    silence gets one (constant) answer for every class."""
    calls: list[tuple[int, int, float]] = []

    def silent(c: int, seed: int, duration_s: float) -> np.ndarray:
        calls.append((c, seed, duration_s))
        from dvsapp.events.types import EVENT_DTYPE

        return np.zeros(0, EVENT_DTYPE)

    report = critic.run_critic(2, seed=40, clip_s=0.4, make_clip=silent, classes=[1, 5])
    assert calls == [(1, 40, 0.4), (5, 40, 0.4), (1, 41, 0.4), (5, 41, 0.4)]
    assert report.confusion.sum() == 4 and report.seeds == [40, 41]
    assert len(set(np.flatnonzero(report.confusion.sum(axis=0)))) == 1  # one answer for all


@needs_critic
def test_cli_critic_json_on_generated_clips() -> None:
    code, out, err = _cli(
        "--critic", "--n-per-class", "1", "--clip-s", "0.5", "--critic-seed", "1000000",
        "--classes", "right_hand_wave,left_hand_wave", "--json",
    )  # fmt: skip
    assert code == 0, err
    d = json.loads(out)
    assert d["clips"] == 2 and d["generator"] == 1 and d["seeds"] == [1_000_000]
    assert np.asarray(d["confusion"]).sum(axis=1).tolist() == [0, 1, 1] + [0] * 8
    assert set(d["per_class"]) == set(DVS_GESTURE_CLASSES)
    assert d["mean_events_per_s"] > 1000


@needs_critic
def test_cli_critic_table_for_generator_2() -> None:
    code, out, _ = _cli("--critic", "--n-per-class", "1", "--clip-s", "0.3", "--classes", "0",
                        "--generator", "2")  # fmt: skip
    assert code == 0
    assert "on generator 2: 1 clips of 0.3 s" in out and "hand_clapping" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--critic", "--model", "no/such/critic.safetensors"], "critic model not found"),
        (["--critic", "OUT"], "writes no files"),
        (["--critic", "--generator", "3"], "generator must be one of 1, 2"),
        (["--critic", "--threads", "0"], "--threads"),
        (["--critic", "--n-per-class", "0"], "clips per class"),
        (["--critic", "--clip-s", "-1"], "clip length"),
        ([], "OUT_DIR is required"),
        (["OUT", "--generator", "0"], "generator must be one of"),
    ],
)
def test_bad_critic_input_is_one_line_and_exit_status_2(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = _cli(*args)
    assert code == 2
    assert err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "OUT").exists()


def test_missing_critic_model_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="critic model not found"):
        critic.load_critic(tmp_path / "critic.safetensors")
