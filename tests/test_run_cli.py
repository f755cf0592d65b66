"""`dvsapp run`: a recording through a checkpoint, one line per window and a summary; bad
recordings and checkpoints give one line on stderr and exit 2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from toy_snn import (
    REAL_SMALL,
    make_polarity_detector,
    make_toy,
    single_thread,
    small_real_model,
    toy_architectures,
)

from dvsapp.binning import BinningConfig, bin_events
from dvsapp.cli import main
from dvsapp.events.types import LabelSegment, make_events
from dvsapp.events.writers import write_npz
from dvsapp.snn.checkpoint import inspect_checkpoint, save_checkpoint
from dvsapp.snn.early_exit import softmax

T = 4
WINDOW_US = 10_000
CLASSES = ["off", "on", "quiet"]
# "on" starts at 180 ms although the events turn ON at 200 ms: window 4 (160-200 ms, midpoint
# 180 ms) is labelled "on" but sees OFF events; windows 8 and 9 (320-400 ms) are unlabelled.
LABELS = [LabelSegment(0, "off", 0, 180_000), LabelSegment(1, "on", 180_000, 320_000)]
EXPECTED_TRUE = ["off"] * 4 + ["on"] * 4 + [None, None]
KEYS = {"window", "t_start_us", "t_end_us", "pred", "label", "exit_step", "probs", "true"}


@pytest.fixture(autouse=True)
def _toys() -> Iterator[None]:
    with toy_architectures(), single_thread():
        yield


def _events(n: int = 8000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) * (400_000 // n)
    on = np.where(t < 200_000, rng.random(n) < 0.1, rng.random(n) < 0.9)
    return make_events(rng.integers(0, 16, n), rng.integers(0, 16, n), t, on)


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "rec.npz"
    write_npz(path, [_events()], (16, 16, 2), labels=LABELS)
    return path


def _checkpoint(path: Path, arch: str = "toy") -> Path:
    binning = BinningConfig(sensor_size=(8, 8), time_window_us=WINDOW_US)
    model = make_polarity_detector(make_toy(arch))
    return save_checkpoint(
        path,
        model,
        class_names=CLASSES,
        binning=binning,
        sensor_size=(8, 8),
        trained_on="hand-set weights",
        metrics={},
    )


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    return _checkpoint(tmp_path / "toy.safetensors")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["run", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _reference(model: torch.nn.Module | None = None, size: int = 8) -> list[np.ndarray]:
    """Window probabilities from model.forward on frames binned offline (16x16 -> size)."""
    config = BinningConfig(sensor_size=(16, 16), time_window_us=WINDOW_US, input_size=(size, size))
    frames = torch.from_numpy(bin_events(_events(), config).data)
    model = model or make_polarity_detector(make_toy()).eval()
    with torch.no_grad():
        return [
            softmax(model(frames[i : i + T].unsqueeze(1))[:, 0].numpy().mean(0))
            for i in range(0, len(frames), T)
        ]


def test_run_json_one_line_per_window_and_a_summary(
    capsys: pytest.CaptureFixture[str], recording: Path, checkpoint: Path
) -> None:
    code, out, err = _run(
        capsys,
        str(recording),
        "--model",
        str(checkpoint),
        "--json",
        "--device",
        "cpu",
        "--exit-threshold",
        "0.9",
        "--exit-consecutive",
        "2",
    )
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    windows, summary = lines[:-1], lines[-1]["summary"]
    reference = _reference()
    assert len(windows) == len(reference) == 10
    for i, (w, probs) in enumerate(zip(windows, reference, strict=True)):
        assert w.keys() >= KEYS
        assert w["window"] == i
        assert (w["t_start_us"], w["t_end_us"]) == (i * T * WINDOW_US, (i + 1) * T * WINDOW_US)
        np.testing.assert_allclose(w["probs"], probs, atol=1e-5)
        assert w["pred"] == int(np.argmax(probs)) and w["label"] == CLASSES[w["pred"]]
        assert 1 <= w["exit_step"] <= T
    assert [w["true"] for w in windows] == EXPECTED_TRUE
    assert [w["label"] for w in windows] == ["off"] * 5 + ["on"] * 5  # the detector works
    labelled = [w for w in windows if w["true"] is not None]
    accuracy = sum(w["label"] == w["true"] for w in labelled) / len(labelled)
    assert summary["accuracy"] == pytest.approx(accuracy) == pytest.approx(7 / 8)
    assert summary["windows"] == 10 and summary["steps"] == 40
    assert summary["mean_exit_step"] == pytest.approx(np.mean([w["exit_step"] for w in windows]))
    assert summary["mean_exit_step"] < T  # confident windows exit early
    assert summary["mean_step_latency_ms"] > 0 and summary["realtime_factor"] > 0
    assert summary["stream_s"] == pytest.approx(0.4)


def test_run_table(capsys: pytest.CaptureFixture[str], recording: Path, checkpoint: Path) -> None:
    code, out, err = _run(capsys, str(recording), "--model", str(checkpoint), "--window", "2")
    assert code == 0, err
    rows = [ln for ln in out.splitlines() if ln.split() and ln.split()[0].isdigit()]
    assert len(rows) == 20
    assert "windows 20, steps 40, accuracy" in out
    assert "(15/16)" in out  # windows 8 and 9 of 20 ms: only window 9 (180-200 ms) is wrong
    assert "16x16" in out and "2x8x8" in out


def test_run_threads_sets_torch_threads_and_keeps_the_results(
    capsys: pytest.CaptureFixture[str], recording: Path, checkpoint: Path
) -> None:
    before = torch.get_num_threads()
    try:
        code, out, err = _run(capsys, str(recording), "--model", str(checkpoint), "--json")
        assert code == 0, err
        torch.set_num_threads(2)
        code, out1, err = _run(
            capsys, str(recording), "--model", str(checkpoint), "--json", "--threads", "1"
        )
        assert code == 0, err
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    windows = [json.loads(ln) for ln in out.splitlines()[:-1]]
    assert windows == [json.loads(ln) for ln in out1.splitlines()[:-1]]
    with pytest.raises(SystemExit) as exc:
        main(["run", str(recording), "--model", str(checkpoint), "--threads", "0"])
    assert exc.value.code == 2
    assert "expected an integer >= 1, got 0" in capsys.readouterr().err


def test_run_without_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], checkpoint: Path
) -> None:
    rec = tmp_path / "nolabels.npz"
    write_npz(rec, [_events()], (16, 16, 2))
    code, out, err = _run(capsys, str(rec), "--model", str(checkpoint), "--json", "--no-exit")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert all(w["true"] is None for w in lines[:-1])
    assert lines[-1]["summary"]["accuracy"] is None
    assert lines[-1]["summary"]["mean_exit_step"] == T  # --no-exit: whole windows


def test_run_confidence_exit_defaults_to_the_apps(
    capsys: pytest.CaptureFixture[str], recording: Path, checkpoint: Path
) -> None:
    """One default for both: the app's PipelineSettings (on, 0.9 for 3 steps) is `run`'s."""
    from dvsapp.cli import build_parser
    from dvsapp.pipeline.records import PipelineSettings

    args = build_parser().parse_args(["run", "x", "--model", "m"])
    app = PipelineSettings()
    assert (args.exit_threshold, args.exit_consecutive) == (0.9, 3)
    assert (args.exit_threshold, args.exit_consecutive) == (
        app.exit_threshold,
        app.exit_consecutive,
    )
    assert not args.no_exit
    summaries = {}
    for flags in ((), ("--no-exit",), ("--exit-threshold", "0.9", "--exit-consecutive", "3")):
        code, out, err = _run(capsys, str(recording), "--model", str(checkpoint), "--json", *flags)
        assert code == 0, err
        summaries[flags] = json.loads(out.splitlines()[-1])["summary"]
    default, off, explicit = summaries.values()
    assert off["exits_fired"] == 0 and off["mean_exit_step"] == T
    assert default["exits_fired"] > 0 and default["mean_exit_step"] < T
    assert default["mean_exit_step"] == explicit["mean_exit_step"]


def test_run_threads_default_leaves_a_core(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    recording: Path,
    checkpoint: Path,
) -> None:
    """Without --threads, torch gets cores - 1 threads (at least 1), as the app."""
    import os

    calls: list[int] = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads", lambda n: (calls.append(n), real(1)))
    for cores, want in ((8, 7), (2, 1), (1, 1), (None, 1)):
        monkeypatch.setattr(os, "cpu_count", lambda c=cores: c)
        calls.clear()
        code, _, err = _run(capsys, str(recording), "--model", str(checkpoint), "--json")
        assert code == 0, err
        assert calls[:1] == [want], (cores, calls)
    calls.clear()
    assert _run(capsys, str(recording), "--model", str(checkpoint), "--threads", "3")[0] == 0
    assert calls[:1] == [3]


def test_run_warns_when_the_recording_differs_from_training(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], checkpoint: Path
) -> None:
    """Each mismatch is one stderr line naming both sensor sizes; stdout stays clean JSON."""
    wide = tmp_path / "wide.npz"
    write_npz(wide, [_events()], (32, 16, 2))
    code, out, err = _run(capsys, str(wide), "--model", str(checkpoint), "--json")
    assert code == 0, err
    warnings = [ln for ln in err.splitlines() if ln.startswith("dvsapp: warning: ")]
    assert any("32x16" in ln and "8x8" in ln and "aspect ratio" in ln for ln in warnings), err
    assert all(str(wide) in ln for ln in warnings)
    json.loads(out.splitlines()[-1])
    same = tmp_path / "same.npz"
    events = _events()
    events["x"] %= 8
    events["y"] %= 8
    write_npz(same, [events], (8, 8, 2))
    code, out, err = _run(capsys, str(same), "--model", str(checkpoint), "--json")
    assert code == 0, err
    assert "sensor" not in err and "aspect" not in err, err


def _bad_checkpoints(tmp_path: Path, good: Path) -> dict[str, tuple[Path, str]]:
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(good.read_bytes()[:-50])
    meta = {
        k: v
        for k, v in inspect_checkpoint(good).items()
        if k not in ("file", "file_bytes", "tensors", "parameters")
    }
    meta["architecture"] = meta["config"]["arch"] = "toy_wide"
    other = tmp_path / "other.safetensors"
    save_file(load_file(str(good)), str(other), metadata={"dvsapp": json.dumps(meta)})
    pt = tmp_path / "model.pt"
    torch.save(make_toy().state_dict(), pt)
    return {
        "corrupt": (corrupt, "truncated"),
        "another architecture": (other, "do not fit architecture 'toy_wide'"),
        "pickle": (pt, "never unpickles"),
        "missing": (tmp_path / "nope.safetensors", "no such file"),
    }


def test_bad_checkpoints_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], recording: Path, checkpoint: Path
) -> None:
    for case, (path, words) in _bad_checkpoints(tmp_path, checkpoint).items():
        code, out, err = _run(capsys, str(recording), "--model", str(path), "--json")
        assert code == 2, case
        assert out == "", case
        assert err.count("\n") == 1 and err.startswith("dvsapp: error: "), (case, err)
        assert str(path) in err and words in err, (case, err)


def test_bad_recordings_and_settings_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], recording: Path, checkpoint: Path
) -> None:
    small = tmp_path / "small.npz"
    write_npz(small, [_events()[:10]], (16, 16, 2))
    tiny = tmp_path / "tiny.npz"
    ev = _events()
    ev["x"] %= 4
    ev["y"] %= 4
    write_npz(tiny, [ev], (4, 4, 2))
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00junk" * 100)
    bntt = _checkpoint(tmp_path / "bntt.safetensors", "toy_bntt")
    cases = [
        ([str(tiny), "--model", str(checkpoint)], "smaller than the model's 8x8 input"),
        ([str(junk), "--model", str(checkpoint)], str(junk)),
        ([str(tmp_path / "none.npz"), "--model", str(checkpoint)], "none.npz"),
        ([str(recording), "--model", str(bntt), "--policy", "free"], "policy 'reset'"),
        ([str(recording), "--model", str(checkpoint), "--window", "0"], "window_steps"),
        ([str(recording), "--model", str(checkpoint), "--exit-threshold", "2"], "threshold"),
    ]
    for argv, words in cases:
        code, out, err = _run(capsys, *argv)
        assert code == 2, (argv, err)
        assert err.count("\n") == 1 and words in err, (argv, err)
    code, out, err = _run(capsys, str(small), "--model", str(checkpoint), "--json")
    assert code == 0, err  # a recording shorter than one window gives one short window
    first = json.loads(out.splitlines()[0])
    assert first["steps"] == 1 and first["complete"] is False


@pytest.mark.parametrize("arch", sorted(REAL_SMALL))
def test_run_a_shipped_architecture(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], recording: Path, arch: str
) -> None:
    model = small_real_model(arch)
    if arch == "vgg_small":  # gamma falls below 0.5 at step 3: the temporal exit is step 3
        with torch.no_grad():
            for name, t in model.state_dict().items():
                if name.endswith("bntt.weight"):
                    t.copy_(torch.tensor([2.5, 2.4, 0.4, 0.3])[:, None].expand_as(t))
    binning = BinningConfig(sensor_size=(16, 16), time_window_us=WINDOW_US)
    path = save_checkpoint(
        tmp_path / f"{arch}.safetensors",
        model,
        class_names=CLASSES,
        binning=binning,
        sensor_size=(16, 16),
        trained_on="",
        metrics={},
    )
    extra = ["--temporal-exit", "0.5"] if arch == "vgg_small" else ["--exit-threshold", "0.5"]
    code, out, err = _run(capsys, str(recording), "--model", str(path), "--json", *extra)
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    windows = lines[:-1]
    reference = _reference(model, size=16)
    assert len(windows) == len(reference) == 10
    for w, probs in zip(windows, reference, strict=True):
        np.testing.assert_allclose(w["probs"], probs, atol=1e-5)
    if arch == "vgg_small":
        assert {(w["exit_step"], w["exit_reason"]) for w in windows} == {(3, "temporal")}
    assert lines[-1]["summary"]["windows"] == 10


def test_run_warns_when_the_recording_is_shorter_than_half_a_window(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], checkpoint: Path
) -> None:
    """The toy model's window is T = 4 bins of 10 ms: a 5 ms recording (one bin) is told apart."""
    n = 600
    t = np.arange(n) * 8  # 0 .. 4.8 ms: one 10 ms bin
    short = tmp_path / "short.npz"
    write_npz(short, [make_events(t % 8, (t // 8) % 8, t, t % 3 == 0)], (8, 8, 2))
    code, _, err = _run(capsys, str(short), "--model", str(checkpoint), "--json")
    assert code == 0, err
    (line,) = [ln for ln in err.splitlines() if "lasts" in ln]
    assert line.startswith(f"dvsapp: warning: {short}: ") and "0.04 s window" in line, line
    code, _, err = _run(
        capsys, str(tmp_path / "short.npz"), "--model", str(checkpoint), "--window", "1"
    )
    assert "lasts" in err  # the training window, not the run's
