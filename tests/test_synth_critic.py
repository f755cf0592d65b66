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

ROOT = Path(__file__).resolve().parents[1]
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
        (["--critic", "--generator", "5"], "generator must be one of 1, 2, 3, 4,"),
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


# -- the other way round: the critic and our models on a labelled recording -------------------
def _recording(folder: Path, name: str, clips: list[tuple[int, np.ndarray]], dur_s: float) -> Path:
    """An AEDAT 3.1 recording of ``clips`` (class, events from 0) back to back, labelled."""
    from dvsapp.events.types import LabelSegment
    from dvsapp.events.writers import write_aedat31, write_labels_csv

    parts, segs = [], []
    for i, (c, ev) in enumerate(clips):
        t0 = round(i * dur_s * 1e6)
        ev = ev.copy()
        ev["t"] += t0
        parts.append(ev)
        segs.append(LabelSegment(c, DVS_GESTURE_CLASSES[c], t0, t0 + round(dur_s * 1e6)))
    path = write_aedat31(folder / f"{name}.aedat", np.concatenate(parts))
    write_labels_csv(folder / f"{name}_labels.csv", segs)
    return path


@needs_critic
def test_agreement_names_each_segment_as_the_critic_and_dvsapp_run_do(tmp_path: Path) -> None:
    """Each label segment's verdicts: the critic's equals critic_predict on that clip alone;
    a model's equals the highest summed probability of `dvsapp run`'s windows over a
    recording of that clip alone (the session, not the agreement's own loop)."""
    from dvsapp.synth.agreement import agreement
    from dvsapp.synth.generate import gesture_events

    models = ROOT / "models"
    model = models / "vgg_small_synth.safetensors"
    dur = 1.0  # two whole windows of the model's 10 x 50 ms
    clips = [(c, gesture_events(c, 4_000_000 + c, dur, generator=2)) for c in (1, 5, 9)]
    rec = _recording(tmp_path, "three", clips, dur)
    report = agreement(rec, [model])
    assert [v.true for v in report.verdicts] == [DVS_GESTURE_CLASSES[c] for c, _ in clips]
    judge = critic.load_critic()
    for i, ((c, ev), v) in enumerate(zip(clips, report.verdicts, strict=True)):
        assert v.critic == DVS_GESTURE_CLASSES[critic.critic_predict(judge, ev, dur)]
        alone = _recording(tmp_path, f"alone{i}", [(c, ev)], dur)
        out = io.StringIO()
        with redirect_stdout(out):
            assert dvsapp_main(["run", str(alone), "--model", str(model), "--json",
                                "--no-exit", "--no-probes"]) == 0  # fmt: skip
        windows = [json.loads(line) for line in out.getvalue().splitlines()][:-1]
        assert len(windows) == 2
        summed = np.sum([w["probs"] for w in windows], axis=0)
        assert v.models[str(model)] == DVS_GESTURE_CLASSES[int(np.argmax(summed))]
    s = report.summary()
    alike = sum(v.models[str(model)] == v.critic for v in report.verdicts)
    assert s["segments"] == 3 and s[str(model)]["alike"] == alike
    assert s[str(model)]["agreement"] == alike / 3


@needs_critic
def test_cli_agree_prints_a_row_per_segment_and_refuses_unlabelled_recordings(
    tmp_path: Path,
) -> None:
    from dvsapp.events.writers import write_aedat31
    from dvsapp.synth.generate import gesture_events

    ev = gesture_events(3, 4_000_100, 0.6, generator=2)
    rec = _recording(tmp_path, "one", [(3, ev)], 0.6)
    code, out, _ = _cli("--critic", "--agree", str(rec), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["summary"]["segments"] == 1 and len(report["models"]) == 2
    assert report["segments"][0]["true"] == "right_arm_clockwise"
    bare = write_aedat31(tmp_path / "bare.aedat", ev)
    code, _, err = _cli("--critic", "--agree", str(bare))
    assert code == 2 and err.count("\n") == 1 and "no labels" in err, err
