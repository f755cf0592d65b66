"""`dvsapp run --rates`: per-window firing rates per layer, checked against the sequence
forward pass under the training's spike counter, and the collapse verdict on the shipped
models (the status bar's diagnosis, without a display)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from toy_snn import REAL_SMALL, single_thread, small_real_model

from dvsapp.binning import BinningConfig, bin_events
from dvsapp.cli import main
from dvsapp.events.types import make_events
from dvsapp.events.writers import write_npz
from dvsapp.snn.checkpoint import load_checkpoint, save_checkpoint
from dvsapp.train.logging import FiringRateMonitor

REPO = Path(__file__).resolve().parents[1]
RECORDING = REPO / "recordings" / "synth_seed9000000.aedat"
MODELS = REPO / "models"
BIN_US = 10_000
T = 4


@pytest.fixture(autouse=True)
def _one_thread():
    with single_thread():
        yield


def _events(span_us: int = 300_000, n: int = 12_000) -> np.ndarray:
    rng = np.random.default_rng(3)
    t = np.sort(rng.integers(0, span_us, n))
    return make_events(rng.integers(0, 16, n), rng.integers(0, 16, n), t, rng.random(n) < 0.5)


def _run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[list[dict], dict]:
    code = main(["run", *argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = [json.loads(ln) for ln in out.splitlines()]
    return lines[:-1], lines[-1]["summary"]


@pytest.mark.parametrize("arch", sorted(REAL_SMALL))
def test_window_rates_equal_the_sequence_forward(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arch: str
) -> None:
    events = _events()
    rec = tmp_path / "rec.npz"
    write_npz(rec, [events], (16, 16, 2))
    binning = BinningConfig(sensor_size=(16, 16), time_window_us=BIN_US)
    ckpt_path = save_checkpoint(
        tmp_path / f"{arch}.safetensors", small_real_model(arch), class_names=["a", "b", "c"],
        binning=binning, sensor_size=(16, 16, 2), trained_on="", metrics={},
    )  # fmt: skip
    windows, summary = _run_json(capsys, str(rec), "--model", str(ckpt_path), "--rates")

    frames = torch.as_tensor(np.asarray(bin_events(events, binning).data), dtype=torch.float32)
    model = load_checkpoint(ckpt_path).model.eval()
    assert len(frames) == 30 and [w["steps"] for w in windows] == [T] * 7 + [2]
    counts = np.zeros(len(model.spiking_layers()))
    weighted = np.zeros(len(model.spiking_layers()))  # sum over windows of rate * steps
    for w in windows:  # the last, cut short by the end, over its 2 steps
        start = w["window"] * T
        x = frames[start : start + w["steps"]].unsqueeze(1)  # [steps, 1, C, H, W]
        with FiringRateMonitor(model) as mon, torch.no_grad():
            model(x)
        ref = mon.rates()
        assert list(w["rates"]) == list(ref)
        np.testing.assert_allclose(list(w["rates"].values()), list(ref.values()), atol=1e-6)
        counts += np.array(list(ref.values()))
        weighted += np.array(list(ref.values())) * w["steps"]
        assert set(w["flagged"]) == {"silent", "saturated"}
    layers = summary["firing_rates"]["layers"]
    assert set(layers) == set(model.spiking_layers())
    for i, d in enumerate(layers.values()):
        assert d["window_min"] <= d["mean"] <= d["window_max"]
        assert d["window_min"] <= counts[i] / 8 <= d["window_max"]
    # the run's mean is over its 30 steps, not the mean of the 8 window means (the last
    # window has 2 steps, the others 4): the two differ here, and only the first is right
    run_mean = weighted / len(frames)
    np.testing.assert_allclose([d["mean"] for d in layers.values()], run_mean, atol=2e-6)
    assert np.abs(run_mean - counts / len(windows)).max() > 1e-4


def _shipped_verdict(capsys: pytest.CaptureFixture[str], name: str) -> dict:
    _, summary = _run_json(
        capsys, str(RECORDING), "--model", str(MODELS / f"{name}.safetensors"), "--rates"
    )
    return summary["firing_rates"]


def test_collapsed_shipped_model_is_diagnosed_and_the_healthy_one_is_not(
    capsys: pytest.CaptureFixture[str],
) -> None:
    card = json.loads((MODELS / "resnet_small_synth_nonorm_collapsed.card.json").read_text())
    collapsed = _shipped_verdict(capsys, "resnet_small_synth_nonorm_collapsed")
    silent = [n for n, d in collapsed["layers"].items() if d["status"] == "silent"]
    assert silent == card["silent_layers"]
    assert collapsed["health"].startswith(f"{len(silent)} silent (")
    assert collapsed["layers"]["lif_hidden"]["silent_steps"] > 400  # of 512 steps
    healthy = _shipped_verdict(capsys, "resnet_small_synth")
    assert healthy["health"] == "all layers ok"
    assert all(d["silent_steps"] == 0 for d in healthy["layers"].values())
    for name in silent:  # the same layers fire at >= 10x the threshold in the healthy model
        assert healthy["layers"][name]["mean"] > 10 * card["silent_below"]


def test_rate_table_and_threshold_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    model = str(MODELS / "resnet_small_synth_nonorm_collapsed.safetensors")
    assert main(["run", str(RECORDING), "--model", model, "--rates"]) == 0
    out = capsys.readouterr().out.splitlines()
    header = next(i for i, ln in enumerate(out) if ln.startswith("layer "))
    rows = out[header + 1 : header + 9]
    assert [r.split()[0] for r in rows][-1] == "lif_hidden"
    # The layers the model card certified silent (the run's mean below 1e-3), and only those.
    card = json.loads((MODELS / "resnet_small_synth_nonorm_collapsed.card.json").read_text())
    silent = [r.split()[0] for r in rows if r.split()[-1] == "silent"]
    assert silent == card["silent_layers"] and len(silent) >= 3
    assert "lif_hidden" in silent and "lif1" not in silent
    assert out[header + 9].startswith(f"firing rates: {len(silent)} silent ({silent[0]}, ")
    # a threshold above 0.9 makes every healthy layer "silent"; inverted thresholds: exit 2
    code = main(["run", str(RECORDING), "--model", model, "--rates", "--silent-below", "0.95"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "silent_below <= saturated_above" in err
