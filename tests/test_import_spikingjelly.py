"""SpikingJelly 2.x networks imported from their class and state_dict: every step of the
imported graph model equals SpikingJelly stepping its own network, for IFNode, LIFNode and
ParametricLIFNode with hard reset (to 0 and to a non-zero v_reset) and soft reset,
``decay_input`` both ways; BatchNorm folded; a tdBN ResNet block built in multi-step mode
(tdBN folded, a SeqToANNContainer, a residual add); a BNTT VGG-style net (per-step tables,
reset every T steps, the last step's statistics beyond T); and the one-line refusals.

Spikes are compared exactly. Membranes: SpikingJelly's ``neuron.v`` after a step is the
membrane after reset, compared with our layer's ``v`` (after reset) within 1e-5 (plus 1e-6
relative: an IF membrane, which never leaks, drifts to tens where float32 rounding of the
folded BatchNorm shows at 1e-5); our
recorded Vm (``record.vm``, with ``ProbeSpec(spikes=True, vm=True)``) is the charged ``H``
before reset, checked against SpikingJelly's ``v`` where nothing fired.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from dvsapp.cli import main
from dvsapp.snn.base import ProbeSpec
from dvsapp.snn.graph.importer import ImportOptions, import_framework, open_model, save_imported
from tests.graph_helpers import build_from_code, spike_frames

pytest.importorskip("spikingjelly.activation_based")
from spikingjelly.activation_based import functional, neuron


def _frames_sj(t: int, shape: tuple[int, ...], seed: int = 1) -> torch.Tensor:
    return spike_frames(t, shape, seed, density=0.25)


CODE = """
import math

import torch
import torch.nn as nn
from spikingjelly.activation_based import functional, layer, neuron


def _neuron(kind, v_reset, decay_input, tau=4.0, v_threshold=0.6):
    if kind == "if":
        return neuron.IFNode(v_threshold=v_threshold, v_reset=v_reset)
    if kind == "lif":
        return neuron.LIFNode(tau=tau, decay_input=decay_input, v_threshold=v_threshold,
                              v_reset=v_reset)
    return neuron.ParametricLIFNode(init_tau=tau, decay_input=decay_input,
                                    v_threshold=v_threshold, v_reset=v_reset)


class Small(nn.Module):
    def __init__(self, kind="lif", v_reset=0.0, decay_input=True):
        super().__init__()
        self.conv = layer.Conv2d(2, 6, 3, padding=1, bias=False)
        self.bn = layer.BatchNorm2d(6)
        self.sn1 = _neuron(kind, v_reset, decay_input)
        self.pool = layer.MaxPool2d(2)
        self.flat = layer.Flatten()
        self.drop = layer.Dropout(0.3)
        self.fc = layer.Linear(6 * 4 * 4, 5)
        self.sn2 = _neuron(kind, v_reset, decay_input, tau=3.0, v_threshold=0.4)

    def forward(self, x):
        return self.sn2(self.fc(self.drop(self.flat(self.pool(self.sn1(self.bn(self.conv(x))))))))


def if_hard():
    return Small("if", 0.0)

def if_soft():
    return Small("if", None)

def if_reset_below():
    return Small("if", -0.3)

def lif_soft_nodecay():
    return Small("lif", None, False)

def lif_reset_below():
    return Small("lif", -0.2, True)

def plif_hard():
    return Small("plif", 0.0, True)

def plif_soft_nodecay():
    return Small("plif", None, False)


class TdBlockNet(nn.Module):
    \"\"\"conv-tdBN-LIF-conv-tdBN + (conv1x1-tdBN shortcut), add, LIF; built multi-step.\"\"\"

    def __init__(self):
        super().__init__()
        vth = 0.5
        self.stem = layer.SeqToANNContainer(
            nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))
        self.sn0 = neuron.LIFNode(tau=2.0, decay_input=False, v_threshold=vth)
        self.conv1 = layer.Conv2d(4, 8, 3, stride=2, padding=1, bias=False)
        self.bn1 = layer.ThresholdDependentBatchNorm2d(1.0, vth, 8)
        self.sn1 = neuron.LIFNode(tau=2.0, decay_input=False, v_threshold=vth)
        self.conv2 = layer.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = layer.ThresholdDependentBatchNorm2d(1 / math.sqrt(2), vth, 8)
        self.down = layer.Conv2d(4, 8, 1, stride=2, bias=False)
        self.bn_down = layer.ThresholdDependentBatchNorm2d(1 / math.sqrt(2), vth, 8)
        self.sn2 = neuron.LIFNode(tau=2.0, decay_input=False, v_threshold=vth)
        self.pool = layer.AvgPool2d(2)
        self.flat = layer.Flatten()
        self.fc = layer.Linear(8 * 2 * 2, 4)
        self.out = neuron.IFNode(v_threshold=vth)
        functional.set_step_mode(self, "m")

    def forward(self, x):
        s = self.sn0(self.stem(x))
        y = self.bn2(self.conv2(self.sn1(self.bn1(self.conv1(s)))))
        y = self.sn2(y + self.bn_down(self.down(s)))
        return self.out(self.fc(self.flat(self.pool(y))))


class BnttVGG(nn.Module):
    \"\"\"Two conv-BNTT-LIF(soft reset)-avgpool blocks, fc-BNTT-LIF, a non-spiking fc.\"\"\"

    T = 20

    def __init__(self):
        super().__init__()
        lif = dict(tau=1 / (1 - 0.95), decay_input=False, v_threshold=1.0, v_reset=None)
        self.conv1 = layer.Conv2d(2, 6, 3, padding=1, bias=False)
        self.bntt1 = layer.BatchNormThroughTime2d(self.T, 6)
        self.sn1 = neuron.LIFNode(**lif)
        self.pool1 = layer.AvgPool2d(2)
        self.conv2 = layer.Conv2d(6, 8, 3, padding=1, bias=False)
        self.bntt2 = layer.BatchNormThroughTime2d(self.T, 8)
        self.sn2 = neuron.LIFNode(**lif)
        self.pool2 = layer.AvgPool2d(2)
        self.flat = layer.Flatten()
        self.fc1 = layer.Linear(8 * 2 * 2, 12, bias=False)
        self.bntt3 = layer.BatchNormThroughTime1d(self.T, 12)
        self.sn3 = neuron.LIFNode(**lif)
        self.fc2 = layer.Linear(12, 4, bias=False)

    def forward(self, x):
        x = self.pool1(self.sn1(self.bntt1(self.conv1(x))))
        x = self.pool2(self.sn2(self.bntt2(self.conv2(x))))
        return self.fc2(self.sn3(self.bntt3(self.fc1(self.flat(x)))))


class WithAdaptive(nn.Module):
    def __init__(self, size=(2, 2)):
        super().__init__()
        self.conv = layer.Conv2d(2, 4, 3, padding=1)
        self.sn = neuron.LIFNode()
        self.pool = layer.AdaptiveAvgPool2d(size)
        self.flat = layer.Flatten()
        self.fc = layer.Linear(4 * size[0] * size[1], 3)
        self.sn2 = neuron.IFNode()

    def forward(self, x):
        return self.sn2(self.fc(self.flat(self.pool(self.sn(self.conv(x))))))


def global_pool():
    return WithAdaptive((1, 1))


class WithSimpleLIF(nn.Module):
    def __init__(self):
        super().__init__()
        self.flat = layer.Flatten()
        self.fc = layer.Linear(2 * 8 * 8, 3)
        self.sn = neuron.SimpleLIFNode(tau=2.0, decay_input=True)

    def forward(self, x):
        return self.sn(self.fc(self.flat(x)))
"""

SMALL = [
    "if_hard",
    "if_soft",
    "if_reset_below",
    "Small",
    "lif_soft_nodecay",
    "lif_reset_below",
    "plif_hard",
    "plif_soft_nodecay",
]


@pytest.fixture(scope="module")
def code_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("code") / "sj_nets.py"
    path.write_text(textwrap.dedent(CODE))
    return path


def _trained(code_file: Path, name: str, tmp_path: Path) -> tuple[torch.nn.Module, Path]:
    """The network with weights, BatchNorm statistics and PLIF time constants that are not
    the defaults (as after training), saved as a state_dict."""
    torch.manual_seed(0)
    net = build_from_code(code_file, name)
    with torch.no_grad():
        for n, t in net.state_dict().items():
            if n.endswith(("running_mean", "bias")):
                t.uniform_(-0.2, 0.3)
            elif n.endswith("running_var"):
                t.uniform_(0.5, 2.0)
            elif n.endswith("weight") and t.ndim > 1:
                t.mul_(2.5)
            elif n.endswith("weight"):  # BN gammas (tdBN: alpha * Vth times a learnt factor)
                t.mul_(torch.empty_like(t).uniform_(0.8, 1.6))
            elif n.endswith(".w"):  # PLIF: 1/tau = sigmoid(w)
                t.add_(0.3)
    net.eval()
    path = tmp_path / f"{name}.pt"
    torch.save(net.state_dict(), path)
    return net, path


def _neurons(net: torch.nn.Module) -> dict[str, torch.nn.Module]:
    return {n: m for n, m in net.named_modules() if isinstance(m, neuron.BaseNode)}


def _compare_neurons(net, ours, fired: dict[str, int]) -> None:
    """Every neuron's spikes (exact) and membrane after reset (1e-5); the recorded Vm equals
    SpikingJelly's membrane where the neuron did not fire (there it was not reset)."""
    layers = ours.spiking_layers()
    for name, m in _neurons(net).items():
        layer = layers[name]
        theirs_v = m.v.reshape(layer.v.shape)
        torch.testing.assert_close(layer.v, theirs_v, rtol=1e-6, atol=1e-5)
        quiet = layer.o == 0
        torch.testing.assert_close(layer.record.vm[quiet], theirs_v[quiet], rtol=1e-6, atol=1e-5)
        fired[name] = fired.get(name, 0) + int(layer.o.sum())


def _spike_hooks(net) -> dict[str, torch.Tensor]:
    seen: dict[str, torch.Tensor] = {}
    for name, m in _neurons(net).items():
        m.register_forward_hook(lambda mod, i, o, name=name: seen.__setitem__(name, o))
    return seen


@pytest.mark.parametrize("name", SMALL)
def test_neurons_equal_spikingjelly_per_step(code_file, tmp_path, name):
    net, weights = _trained(code_file, name, tmp_path)
    ckpt = import_framework(
        weights, "spikingjelly", f"{code_file}:{name}", ImportOptions(input_size=(8, 8))
    )
    ours = ckpt.model
    ours.set_probes(ProbeSpec(spikes=True, vm=True))
    seen = _spike_hooks(net)
    functional.reset_net(net)
    ours.reset()
    fired: dict[str, int] = {}
    with torch.no_grad():
        for x_t in _frames_sj(70, (2, 8, 8)):
            theirs = net(x_t)
            torch.testing.assert_close(ours.step(x_t), theirs, rtol=0, atol=0)
            for n, layer in ours.spiking_layers().items():
                torch.testing.assert_close(layer.o, seen[n], rtol=0, atol=0)
            _compare_neurons(net, ours, fired)
    assert fired["sn1"] > 50 and fired["sn2"] > 5, fired


def test_global_average_pooling_equals_spikingjelly(code_file, tmp_path):
    """``AdaptiveAvgPool2d((1, 1))``, a ResNet's last pooling, is a global mean."""
    net, weights = _trained(code_file, "global_pool", tmp_path)
    code = f"{code_file}:global_pool"
    ours = import_framework(weights, "spikingjelly", code, ImportOptions(input_size=(8, 8))).model
    assert [n.type for n in ours.spec.nodes].count("GlobalAvgPool2d") == 1
    functional.reset_net(net)
    ours.reset()
    with torch.no_grad():
        outs = [(ours.step(x_t), net(x_t)) for x_t in _frames_sj(40, (2, 8, 8))]
    for a, b in outs:
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert sum(float(b.sum()) for _, b in outs) > 0


def test_neuron_parameters_become_discrete_values(code_file, tmp_path):
    _, weights = _trained(code_file, "lif_reset_below", tmp_path)
    ckpt = import_framework(
        weights, "spikingjelly", f"{code_file}:lif_reset_below", ImportOptions(input_size=(8, 8))
    )
    sn1 = ckpt.model.spiking_layers()["sn1"]
    assert sn1.fire_rule == ">=" and sn1.reset_rule == "zero" and sn1.timing == "now"
    assert float(sn1.decay) == pytest.approx(0.75) and float(sn1.gain) == pytest.approx(0.25)
    assert float(sn1.rest) == pytest.approx(-0.05) and float(sn1.v_init) == pytest.approx(-0.2)


def test_tdbn_resnet_block_built_multistep_equals_spikingjelly(code_file, tmp_path):
    """SpikingJelly runs its multi-step net one step at a time ([T=1, B, ...]); tdBN runs
    multi-step only, and at inference (fixed statistics) it is time-invariant."""
    net, weights = _trained(code_file, "TdBlockNet", tmp_path)
    ckpt = import_framework(
        weights, "spikingjelly", f"{code_file}:TdBlockNet", ImportOptions(input_size=(8, 8))
    )
    ours = ckpt.model
    kinds = {n.name: n.type for n in ours.spec.nodes}
    assert "bn1" not in kinds and "stem.1" not in kinds  # folded into the convolutions
    assert net.sn1.step_mode == "m"  # the model keeps its own mode
    ours.set_probes(ProbeSpec(spikes=True, vm=True))
    seen = _spike_hooks(net)
    functional.reset_net(net)
    ours.reset()
    fired: dict[str, int] = {}
    with torch.no_grad():
        for x_t in _frames_sj(64, (2, 8, 8), seed=3):
            theirs = net(x_t.unsqueeze(0))[0]
            torch.testing.assert_close(ours.step(x_t), theirs, rtol=0, atol=0)
            for n, layer in ours.spiking_layers().items():
                torch.testing.assert_close(layer.o, seen[n][0], rtol=0, atol=0)
            _compare_neurons(net, ours, fired)
    assert min(fired.values()) > 5, fired
    # the whole sequence at once, in SpikingJelly's multi-step mode, gives the same
    x = _frames_sj(12, (2, 8, 8), seed=4)
    functional.reset_net(net)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), net(x), rtol=0, atol=0)


def test_bntt_vgg_equals_spikingjelly_and_clamps_beyond_t(code_file, tmp_path):
    """BNTT: SpikingJelly picks BN_t by its own counter; both reset every T = 20 steps (three
    windows, 60 steps). Beyond T ours keeps the last step's statistics: SpikingJelly, which
    raises there, is held at its last BN to check it."""
    net, weights = _trained(code_file, "BnttVGG", tmp_path)
    ckpt = import_framework(
        weights, "spikingjelly", f"{code_file}:BnttVGG", ImportOptions(input_size=(8, 8))
    )
    ours = ckpt.model
    kinds = {n.name: n.type for n in ours.spec.nodes}
    assert kinds["bntt1"] == kinds["bntt3"] == "StepAffine"
    assert ours.readout == "mean_softmax"
    ours.set_probes(ProbeSpec(spikes=True, vm=True))
    seen = _spike_hooks(net)
    bntts = [net.bntt1, net.bntt2, net.bntt3]
    fired: dict[str, int] = {}
    frames = _frames_sj(70, (2, 8, 8), seed=5)
    with torch.no_grad():
        for t, x_t in enumerate(frames):
            if t in (0, 20, 40):
                functional.reset_net(net)
                ours.reset()
            if t >= 60:  # beyond T (no reset since step 40): SpikingJelly at its last BN
                for b in bntts:
                    b.t = net.T - 2
            theirs = net(x_t)
            torch.testing.assert_close(ours.step(x_t), theirs, rtol=0, atol=1e-5)
            for n, layer in ours.spiking_layers().items():
                torch.testing.assert_close(layer.o, seen[n], rtol=0, atol=0)
            _compare_neurons(net, ours, fired)
    assert min(fired.values()) > 5, fired
    # the checkpoint written and loaded again (tensors + JSON only) steps the same
    loaded = open_model(save_imported(ckpt, tmp_path / "bntt.safetensors")).model
    x = _frames_sj(25, (2, 8, 8), seed=6)
    torch.testing.assert_close(loaded(x), ours(x), rtol=0, atol=0)


def test_cli_import_and_refusals(code_file, tmp_path, capsys):
    _, weights = _trained(code_file, "Small", tmp_path)
    out = tmp_path / "sj.safetensors"
    base = ["import", str(weights), "--framework", "spikingjelly", "--input-size", "8x8"]
    assert main([*base, "-o", str(out), "--code", f"{code_file}:Small"]) == 0
    assert out.exists()
    capsys.readouterr()
    _, adaptive = _trained(code_file, "WithAdaptive", tmp_path)
    _, simple = _trained(code_file, "WithSimpleLIF", tmp_path)
    other = ["--framework", "spikingjelly", "--input-size", "8x8", "-o", str(out)]
    cases = {
        "adaptive pool": (
            ["import", str(adaptive), *other, "--code", f"{code_file}:WithAdaptive"],
            "'pool' (AdaptiveAvgPool2d): only output size 1 (global average pooling)",
        ),
        "simple node": (
            ["import", str(simple), *other, "--code", f"{code_file}:WithSimpleLIF"],
            "'sn' (spikingjelly.activation_based.neuron.lif.SimpleLIFNode) cannot be converted",
        ),
        "weights of another net": (
            [*base, "-o", str(out), "--code", f"{code_file}:TdBlockNet"],
            "do not fit the model class",
        ),
    }
    for what, (args, message) in cases.items():
        out.unlink(missing_ok=True)
        assert main(args) == 2, what
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (what, err)
        assert not out.exists(), what
