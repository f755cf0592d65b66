"""sinabs 2.x networks imported from their class and state_dict: every step of the imported
graph model equals sinabs stepping its own network, for IAF and LIF (Squeeze and plain),
with and without ``tau_syn``, ``norm_input`` both ways, ``train_alphas``; SingleSpike,
MultiSpike and MaxSpike; MembraneSubtract and MembraneReset (zero and a non-zero
reset_value, which sinabs adds at every neuron); ``min_v_mem``; a per-channel
``spike_threshold`` tensor; SumPool2d, BatchNorm folded, FlattenTime / UnflattenTime; and the
one-line refusals.

Spikes are compared exactly. Membranes: sinabs' ``v_mem`` after a step is the membrane after
reset and clamping, compared with our layer's ``v`` (after reset; ``v[1]`` with a synapse)
within 1e-5 (plus 1e-6 relative: an IAF membrane, which never leaks, drifts to tens where
float32 rounding of the folded BatchNorm shows at 1e-5).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from dvsapp.cli import main
from dvsapp.snn.base import ProbeSpec
from dvsapp.snn.graph.importer import ImportOptions, import_framework
from tests.graph_helpers import build_from_code, spike_frames

sinabs = pytest.importorskip("sinabs")
from sinabs.layers import StatefulLayer  # noqa: E402

CODE = """
import torch
import torch.nn as nn
import sinabs.layers as sl
from sinabs.activation import MaxSpike, MembraneReset, MembraneSubtract, MultiSpike, SingleSpike


class Squeezed(nn.Module):
    \"\"\"conv-BN-neuron-sumpool-flatten-linear-neuron, sinabs' Squeeze layers ([B*T, ...]).\"\"\"

    def __init__(self, lif=False, spike_fn=MultiSpike, reset_fn=None, min_v=None,
                 tau_syn=None, norm_input=True, train_alphas=False):
        super().__init__()
        reset_fn = reset_fn or MembraneSubtract()
        common = dict(spike_fn=spike_fn, reset_fn=reset_fn, min_v_mem=min_v, tau_syn=tau_syn,
                      batch_size=1)
        if lif:
            extra = dict(norm_input=norm_input, train_alphas=train_alphas)
            self.sn1 = sl.LIFSqueeze(tau_mem=torch.full((6, 1, 1), 6.0),
                                     spike_threshold=torch.full((6, 1, 1), 0.5), **common,
                                     **extra)
            self.sn2 = sl.LIFSqueeze(tau_mem=8.0, spike_threshold=0.15, **common, **extra)
        else:
            self.sn1 = sl.IAFSqueeze(spike_threshold=torch.full((6, 1, 1), 0.5), **common)
            self.sn2 = sl.IAFSqueeze(spike_threshold=0.4, **common)
        self.conv = nn.Conv2d(2, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.pool = sl.SumPool2d(2)
        self.flat = nn.Flatten()
        self.fc = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x):
        s = self.pool(self.sn1(self.bn(self.conv(x))))
        return self.sn2(self.fc(self.flat(s)))


def iaf_multi_subtract():
    return Squeezed(min_v=-1.0)

def iaf_single_reset():
    return Squeezed(spike_fn=SingleSpike, reset_fn=MembraneReset())

def iaf_max_reset_value():
    return Squeezed(spike_fn=MaxSpike(2), reset_fn=MembraneReset(reset_value=-0.05), min_v=-0.5)

def lif_norm():
    return Squeezed(lif=True)

def lif_no_norm_single():
    return Squeezed(lif=True, spike_fn=SingleSpike, norm_input=False, min_v=-0.8)

def lif_syn_norm():
    return Squeezed(lif=True, tau_syn=3.0)

def lif_syn_no_norm_reset():
    return Squeezed(lif=True, tau_syn=4.0, norm_input=False, reset_fn=MembraneReset())

def lif_train_alphas_syn():
    return Squeezed(lif=True, tau_syn=3.0, train_alphas=True, spike_fn=MaxSpike(3))

def iaf_syn():
    return Squeezed(tau_syn=2.0, min_v=-1.0)


def plain():
    \"\"\"sinabs' plain layers ([B, T, ...]) between FlattenTime / UnflattenTime.\"\"\"
    return nn.Sequential(
        sl.FlattenTime(),
        nn.Conv2d(2, 4, 3, padding=1),
        sl.UnflattenTime(batch_size=1),
        sl.LIF(tau_mem=5.0, spike_threshold=0.5, norm_input=False),
        sl.FlattenTime(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 4 * 4, 3),
        sl.UnflattenTime(batch_size=1),
        sl.IAF(spike_threshold=0.3, spike_fn=SingleSpike, reset_fn=MembraneReset()),
    )


def with_expleak():
    return nn.Sequential(nn.Conv2d(2, 4, 3), sl.ExpLeakSqueeze(tau_mem=3.0, batch_size=1))


def non_spiking():
    return nn.Sequential(nn.Conv2d(2, 4, 3), sl.IAFSqueeze(spike_fn=None, batch_size=1))


def subtract_value():
    return nn.Sequential(
        nn.Conv2d(2, 4, 3),
        sl.IAFSqueeze(reset_fn=MembraneSubtract(subtract_value=0.3), batch_size=1),
    )
"""

SQUEEZED = [
    "iaf_multi_subtract",
    "iaf_single_reset",
    "iaf_max_reset_value",
    "iaf_syn",
    "lif_norm",
    "lif_no_norm_single",
    "lif_syn_norm",
    "lif_syn_no_norm_reset",
    "lif_train_alphas_syn",
]


@pytest.fixture(scope="module")
def code_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("code") / "sinabs_nets.py"
    path.write_text(textwrap.dedent(CODE))
    return path


def _trained(
    code_file: Path, name: str, tmp_path: Path, shape: tuple[int, ...] = (1, 2, 8, 8)
) -> tuple[torch.nn.Module, Path]:
    """The network with weights and BatchNorm statistics that are not the defaults, run once
    (so that its state buffers hold a run's state, as in a state_dict saved after training)
    and saved as a state_dict."""
    torch.manual_seed(0)
    net = build_from_code(code_file, name)
    with torch.no_grad():
        for n, t in net.state_dict().items():
            if n.endswith(("running_mean", "bias")):
                t.uniform_(-0.2, 0.3)
            elif n.endswith("running_var"):
                t.uniform_(0.5, 2.0)
            elif n.endswith("weight") and t.ndim > 1:
                t.mul_(2.0)
        net.eval()
        net(torch.ones(shape))
    path = tmp_path / f"{name}.pt"
    torch.save(net.state_dict(), path)
    sinabs.reset_states(net)
    return net, path


def _v(layer) -> torch.Tensor:
    return layer.v[1] if layer.syn_decay is not None else layer.v


def _run(net, ours, frames, theirs_input=lambda x: x) -> dict[str, int]:
    neurons = {n: m for n, m in net.named_modules() if isinstance(m, StatefulLayer)}
    seen: dict[str, torch.Tensor] = {}
    for n, m in neurons.items():
        m.register_forward_hook(lambda mod, i, o, n=n: seen.__setitem__(n, o))
    sinabs.reset_states(net)
    ours.reset()
    ours.set_probes(ProbeSpec(spikes=True, vm=True))
    fired: dict[str, int] = {}
    with torch.no_grad():
        for x_t in frames:
            theirs = net(theirs_input(x_t))
            torch.testing.assert_close(ours.step(x_t), theirs.reshape(1, -1), rtol=0, atol=0)
            layers = ours.spiking_layers()
            for n, m in neurons.items():
                layer = layers[n]
                torch.testing.assert_close(layer.o, seen[n].reshape(layer.o.shape), rtol=0, atol=0)
                theirs_v = m.v_mem.reshape(layer.o.shape)
                torch.testing.assert_close(_v(layer), theirs_v, rtol=1e-6, atol=1e-5)
                fired[n] = fired.get(n, 0) + int(layer.o.sum())
    return fired


@pytest.mark.parametrize("name", SQUEEZED)
def test_squeeze_networks_equal_sinabs_per_step(code_file, tmp_path, name):
    net, weights = _trained(code_file, name, tmp_path)
    ckpt = import_framework(
        weights, "sinabs", f"{code_file}:{name}", ImportOptions(input_size=(8, 8), classes="5")
    )
    fired = _run(net, ckpt.model, spike_frames(70, (2, 8, 8)))
    assert fired["sn1"] > 50 and fired["sn2"] > 5, fired


def test_plain_layers_between_flatten_and_unflatten_time_equal_sinabs(code_file, tmp_path):
    """sinabs' plain layers take [B, T, ...]: fed [1, 1, ...] per step, one dvsapp step."""
    net, weights = _trained(code_file, "plain", tmp_path, shape=(1, 1, 2, 8, 8))
    ckpt = import_framework(
        weights, "sinabs", f"{code_file}:plain", ImportOptions(input_size=(8, 8), classes="3")
    )
    fired = _run(net, ckpt.model, spike_frames(70, (2, 8, 8), seed=2), lambda x: x.unsqueeze(1))
    assert min(fired.values()) > 5, fired


def test_mappings(code_file, tmp_path):
    _, weights = _trained(code_file, "iaf_max_reset_value", tmp_path)
    ckpt = import_framework(
        weights, "sinabs", f"{code_file}:iaf_max_reset_value", ImportOptions(input_size=(8, 8))
    )
    sn1 = ckpt.model.spiking_layers()["sn1"]
    assert (sn1.fire_rule, sn1.max_spikes, sn1.reset_rule) == ("multi", 2.0, "sinabs")
    assert float(sn1.v_reset) == pytest.approx(-0.05) and float(sn1.min_v) == -0.5
    assert list(sn1.v_threshold.shape) == [6, 1, 1] and sn1.threshold == 0.5
    _, weights = _trained(code_file, "lif_syn_norm", tmp_path)
    ckpt = import_framework(
        weights, "sinabs", f"{code_file}:lif_syn_norm", ImportOptions(input_size=(8, 8))
    )
    sn2 = ckpt.model.spiking_layers()["sn2"]
    a_mem, a_syn = torch.exp(torch.tensor(-1 / 8.0)), torch.exp(torch.tensor(-1 / 3.0))
    assert float(sn2.decay) == pytest.approx(float(a_mem))
    assert float(sn2.syn_decay) == pytest.approx(float(a_syn))
    assert float(sn2.gain) == pytest.approx(float((1 - a_mem) * a_syn))
    kinds = {n.name: n.type for n in ckpt.model.spec.nodes}
    assert kinds["pool"] == "SumPool2d" and "bn" not in kinds


def test_cli_import_and_refusals(code_file, tmp_path, capsys):
    _, weights = _trained(code_file, "lif_norm", tmp_path)
    out = tmp_path / "sinabs.safetensors"
    base = ["import", str(weights), "--framework", "sinabs", "--input-size", "8x8"]
    assert main([*base, "-o", str(out), "--code", f"{code_file}:lif_norm"]) == 0
    assert out.exists()
    capsys.readouterr()
    cases = {}
    for name, message in (
        ("with_expleak", "'1' (sinabs.layers.exp_leak.ExpLeakSqueeze) cannot be converted"),
        ("non_spiking", "spike_fn=None (a non-spiking output) is not supported"),
        ("subtract_value", "reset_fn MembraneSubtract(subtract_value=0.3) is not supported"),
    ):
        _, w = _trained(code_file, name, tmp_path)
        cases[name] = (["import", str(w), *base[2:], "-o", str(out), "--code",
                        f"{code_file}:{name}"], message)  # fmt: skip
    cases["weights of another net"] = (
        [*base, "-o", str(out), "--code", f"{code_file}:iaf_syn"],
        "do not fit the model class",
    )
    for what, (args, message) in cases.items():
        out.unlink(missing_ok=True)
        assert main(args) == 2, what
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (what, err)
        assert not out.exists(), what
