"""The stepper against the independent reference, the sequence forward pass: "reset" windows
equal model.forward on each window's frames, "free" equals one long step sequence; and what
a StepRecord holds (probes, rates, health, exits, timing)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from toy_snn import REAL_SMALL, make_toy, single_thread, small_real_model

from dvsapp.binning import BinningConfig, bin_events
from dvsapp.errors import ConfigError
from dvsapp.events.types import make_events
from dvsapp.snn.base import ProbeSpec
from dvsapp.snn.early_exit import ConfidenceExit, evaluate_exit, softmax
from dvsapp.snn.health import FiringRateHealth
from dvsapp.snn.stepper import Stepper, resolve_device

T = 4


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with single_thread():
        yield


def _frames(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 4, (n, 2, 8, 8), generator=g).float()


def _forward(model: torch.nn.Module, frames: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model(frames.unsqueeze(1))[:, 0].numpy()


@pytest.mark.parametrize("arch", ["toy", "toy_bntt"])
def test_reset_windows_equal_forward_on_each_window(arch: str) -> None:
    model = make_toy(arch)
    frames = _frames(3 * T + 2)
    stepper = Stepper(model, "cpu", window_steps=T, policy="reset", rates=False)
    records = [stepper.push(f, 10 * i, 10 * i + 10) for i, f in enumerate(frames)]
    tail = stepper.finish()
    outputs = np.stack([r.output for r in records])
    windows = [r.window_result for r in records if r.window_result is not None] + [tail]
    assert [w.steps for w in windows] == [T, T, T, 2]
    assert [w.complete for w in windows] == [True, True, True, False]
    assert [r.step for r in records] == [1, 2, 3, 4] * 3 + [1, 2]
    assert [r.window for r in records] == [0] * 4 + [1] * 4 + [2] * 4 + [3] * 2
    varied = False
    for w, result in enumerate(windows):
        ref = _forward(model, frames[w * T : (w + 1) * T])
        np.testing.assert_allclose(outputs[w * T : w * T + len(ref)], ref, atol=1e-5)
        probs = softmax(ref.mean(0))
        np.testing.assert_allclose(result.probs, probs, atol=1e-6)
        assert result.pred == int(np.argmax(probs)) and result.label == str(result.pred)
        assert (result.t_start_us, result.t_end_us) == (10 * w * T, 10 * (w * T + len(ref)))
        varied |= not np.allclose(ref, ref[0])
    assert varied  # the toy's output moves with its input: the comparison can fail


def test_free_running_equals_one_long_step_sequence() -> None:
    model = make_toy("toy")
    frames = _frames(3 * T, seed=1)
    stepper = Stepper(model, "cpu", window_steps=T, policy="free", rates=False)
    records = [stepper.push(f, i, i + 1) for i, f in enumerate(frames)]
    ref = _forward(model, frames)  # one 12-step sequence from a fresh state
    np.testing.assert_allclose(np.stack([r.output for r in records]), ref, atol=1e-5)
    reset_outputs = [
        r.output for r in (Stepper(model, "cpu", T, "reset").push(f, 0, 1) for f in frames)
    ]
    assert not np.allclose(np.stack(reset_outputs), ref)  # state really carried over
    for w in range(3):
        result = records[(w + 1) * T - 1].window_result
        assert result is not None and result.window == w
        np.testing.assert_allclose(result.probs, softmax(ref[w * T : (w + 1) * T].mean(0)), 1e-6)


def test_bntt_refuses_free_running_and_longer_windows() -> None:
    with pytest.raises(ConfigError, match=r"BNTT.*policy 'reset'"):
        Stepper(make_toy("toy_bntt"), "cpu", window_steps=T, policy="free")
    with pytest.raises(ConfigError, match="trained for 4 steps"):
        Stepper(make_toy("toy_bntt"), "cpu", window_steps=T + 1)
    with pytest.raises(ConfigError, match="policy"):
        Stepper(make_toy("toy"), "cpu", policy="sometimes")  # type: ignore[arg-type]


def test_step_record_probes_rates_and_health() -> None:
    model = make_toy("toy")
    health = FiringRateHealth(patience=2)
    stepper = Stepper(
        model,
        "cpu",
        T,
        probes=ProbeSpec(spikes=True, vm=True),
        probe_layers=["lif1"],
        health=health,
        class_names=["off", "on", "quiet"],
    )
    frames = _frames(T, seed=2)
    ref_vm = []
    for i, f in enumerate(frames):
        rec = stepper.push(f.numpy(), i, i + 1)
        assert rec.layer_names == ("lif1", "lif2")
        assert rec.rates is not None and rec.rates.dtype == np.float32 and rec.rates.shape == (2,)
        assert set(rec.probes) == {"lif1"}
        p = rec.probes["lif1"]
        assert p.spikes is not None and p.vm is not None
        assert p.spikes.dtype == np.uint8 and p.spikes.shape == (8, 8, 8)
        assert p.vm.dtype == np.float32 and p.vm.shape == (8, 8, 8)
        assert set(np.unique(p.spikes)) <= {0, 1}
        assert p.rate == pytest.approx(p.spikes.mean()) == pytest.approx(rec.rates[0])
        np.testing.assert_array_equal(p.spikes, p.vm >= 1.0)  # spikes where Vm reached 1
        assert rec.rate_dict()["lif1"] == pytest.approx(p.rate)
        assert rec.health is not None
        assert rec.output.shape == rec.probs.shape == (3,) and rec.latency_ms > 0
        ref_vm.append(p.vm)
    assert rec.window_result is not None and rec.window_result.label in ("off", "on", "quiet")
    assert np.ptp([p.mean() for p in ref_vm]) > 0


def test_selected_neurons_and_health_flags_a_silent_layer() -> None:
    model = make_toy("toy")
    with torch.no_grad():
        model.conv.bias.fill_(-1.0)  # with no input, layer 1 stays silent
    stepper = Stepper(
        model,
        "cpu",
        T,
        probes=ProbeSpec(spikes=False, vm=[0, 5, 7]),
        health=FiringRateHealth(patience=2),
    )
    flagged = []
    for i in range(3):
        rec = stepper.push(torch.zeros(2, 8, 8), i, i + 1)
        assert rec.probes["lif1"].vm is not None and rec.probes["lif1"].vm.shape == (3,)
        assert rec.probes["lif2"].vm is not None and rec.probes["lif2"].spikes is None
        assert rec.probes["lif1"].rate == 0.0
        assert rec.health is not None
        flagged.append(rec.health.status("lif1"))
    assert flagged == ["ok", "silent", "silent"]


def test_stepper_exit_matches_the_offline_evaluation() -> None:
    model = make_toy("toy")
    frames = _frames(2 * T, seed=3)
    exits = [ConfidenceExit(0.4, consecutive=2)]
    stepper = Stepper(model, "cpu", T, exits=exits, rates=False)
    records = [stepper.push(f, i, i + 1) for i, f in enumerate(frames)]
    for w in range(2):
        result = records[(w + 1) * T - 1].window_result
        assert result is not None
        expected = evaluate_exit(exits, _forward(model, frames[w * T : (w + 1) * T]))
        assert (result.exit_step, result.exit_pred) == (expected.exit_step, expected.exit_pred)
        fired = [r.step for r in records[w * T : (w + 1) * T] if r.exited]
        assert fired == ([expected.exit_step] if expected.fired else [])
        assert result.to_dict()["exit_step"] == expected.exit_step


def test_frames_from_the_binner_and_bad_frames() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    ev = make_events(
        rng.integers(0, 16, n),
        rng.integers(0, 16, n),
        np.sort(rng.integers(0, 80_000, n)),
        rng.random(n) < 0.5,
    )
    config = BinningConfig(sensor_size=(16, 16), time_window_us=10_000, input_size=(8, 8))
    frames = bin_events(ev, config)
    model = make_toy("toy")
    records = Stepper(model, "cpu", T, rates=False).push_frames(frames)
    assert [r.t_start_us for r in records] == frames.t_start_us.tolist()
    ref = _forward(model, torch.from_numpy(frames.data[:T]))
    np.testing.assert_allclose(np.stack([r.output for r in records[:T]]), ref, atol=1e-5)
    stepper = Stepper(model, "cpu", T)
    stepper.push(frames.data[0][None], 0, 1)  # [1, C, H, W] is fine
    for bad in (np.zeros((2, 4, 4)), np.zeros((2, 2, 8, 8)), np.zeros((1, 8, 8))):
        with pytest.raises(ConfigError, match="frame of shape"):
            stepper.push(bad, 0, 1)
    with pytest.raises(ConfigError, match="no spiking layer named 'lif9'"):
        Stepper(model, "cpu", T, probes=ProbeSpec(), probe_layers=["lif9"])


def test_device_choice() -> None:
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="unknown device"):
        resolve_device("abacus")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")


def test_probes_off_touch_no_layer() -> None:
    model = make_toy("toy")
    stepper = Stepper(model, "cpu", T, rates=False)
    rec = stepper.push(_frames(1)[0], 0, 1)
    assert rec.rates is None and rec.probes == {} and rec.health is None
    assert all(layer.probe is None for layer in model.spiking_layers().values())
    stepper = Stepper(model, "cpu", T, probes=ProbeSpec(), probe_layers=["lif2"])
    stepper.close()
    assert all(layer.probe is None for layer in model.spiking_layers().values())


# -- the shipped architectures ---------------------------------------------------------------
def _real_frames(n: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(5)
    return torch.randint(0, 4, (n, 2, 16, 16), generator=g).float()


@pytest.mark.parametrize("static_state", [False, True], ids=["eager", "graph-logic"])
@pytest.mark.parametrize("arch", sorted(REAL_SMALL))
def test_shipped_architectures_reset_windows_equal_forward(arch: str, static_state: bool) -> None:
    """Also through the CUDA-graph wrapper's static-state logic (run without a graph here)."""
    model = small_real_model(arch)
    frames = _real_frames(2 * T + 1)
    stepper = Stepper(
        model,
        "cpu",
        T,
        probes=ProbeSpec(vm=True),
        health=FiringRateHealth(),
        cuda_graph=static_state,
    )
    assert (stepper._step_fn == model.step) != static_state
    records = [stepper.push(f, i, i + 1) for i, f in enumerate(frames)]
    tail = stepper.finish()
    outputs = np.stack([r.output for r in records])
    for w in range(3):
        ref = _forward(model, frames[w * T : (w + 1) * T])
        np.testing.assert_allclose(outputs[w * T : w * T + len(ref)], ref, atol=1e-5)
    assert not np.allclose(outputs, outputs[0])
    assert tail is not None and tail.steps == 1
    rec = records[-1]
    assert rec.layer_names == tuple(model.spiking_layers())
    for name, probe in rec.probes.items():
        assert probe.spikes is not None and probe.vm is not None
        assert probe.spikes.shape == probe.vm.shape
        assert probe.rate == pytest.approx(probe.spikes.mean())
        assert rec.rate_dict()[name] == pytest.approx(probe.rate)


def test_shipped_tdbn_runs_free_and_bntt_refuses() -> None:
    model = small_real_model("resnet_small")
    frames = _real_frames(3 * T)
    stepper = Stepper(model, "cpu", T, policy="free", rates=False)
    outputs = np.stack([stepper.push(f, i, i + 1).output for i, f in enumerate(frames)])
    np.testing.assert_allclose(outputs, _forward(model, frames), atol=1e-5)
    with pytest.raises(ConfigError, match="BNTT"):
        Stepper(small_real_model("vgg_small"), "cpu", T, policy="free")
