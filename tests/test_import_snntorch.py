"""snnTorch networks imported from their class and state_dict: every step of the imported
graph model equals snnTorch stepping its own network (spikes exactly, membranes within
1e-5), for each reset mechanism and reset_delay, Leaky and Synaptic, init_hidden and
explicit state, learnable beta and threshold, BatchNorm folded, a residual add; and the
one-line refusals."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

import pytest
import torch

from dvsapp.cli import main
from dvsapp.snn.base import ProbeSpec
from dvsapp.snn.graph.importer import ImportOptions, import_framework
from tests.graph_helpers import build_from_code, spike_frames

snntorch = pytest.importorskip("snntorch")

CODE = """
import torch
import torch.nn as nn
import snntorch as snn


class Hidden(nn.Module):
    def __init__(self, reset="subtract", delay=True, synaptic=False):
        super().__init__()
        Neuron = snn.Synaptic if synaptic else snn.Leaky
        extra = {"alpha": 0.7} if synaptic else {}
        self.conv = nn.Conv2d(2, 6, 3, padding=1)
        self.bn = nn.BatchNorm2d(6)
        self.pool = nn.MaxPool2d(2)
        self.lif1 = Neuron(beta=0.85, threshold=0.6, init_hidden=True, reset_mechanism=reset,
                           reset_delay=delay, learn_beta=True, learn_threshold=True, **extra)
        self.fc = nn.Linear(6 * 4 * 4, 5)
        self.drop = nn.Dropout(0.3)
        self.lif2 = Neuron(beta=0.9, threshold=0.4, init_hidden=True, output=True,
                           reset_mechanism=reset, reset_delay=delay, **extra)

    def forward(self, x):
        s = self.lif1(self.pool(self.bn(self.conv(x))))
        out = self.lif2(self.drop(self.fc(s.flatten(1))))
        return out[0], out[-1]


def zero_nodelay():
    return Hidden("zero", False)


def none_delay():
    return Hidden("none", True)


def sub_nodelay():
    return Hidden("subtract", False)


def synaptic():
    return Hidden("zero", True, synaptic=True)


class Explicit(nn.Module):
    \"\"\"Explicit state: one step, the membrane passed in and out.\"\"\"

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(2 * 8 * 8, 20)
        self.lif1 = snn.Leaky(beta=0.8, threshold=0.5)
        self.fc2 = nn.Linear(20, 20)
        self.fc3 = nn.Linear(20, 4)
        self.lif2 = snn.Leaky(beta=0.95, threshold=0.3)

    def forward(self, x, mem1=None, mem2=None):
        spk1, mem1 = self.lif1(self.fc1(x.flatten(1)), mem1)
        h = self.fc2(spk1) + spk1  # a residual add
        spk2, mem2 = self.lif2(self.fc3(h), mem2)
        return spk2, mem1, mem2


class Recurrent(nn.Module):
    # RLeaky layers: all-to-all linear, one-to-one V, and convolutional recurrence

    def __init__(self, kind="linear"):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        if kind == "conv":
            self.rlif1 = snn.RLeaky(beta=0.8, threshold=0.7, conv2d_channels=4, kernel_size=3,
                                    init_hidden=True)
        else:
            self.rlif1 = snn.Leaky(beta=0.8, threshold=0.7, init_hidden=True)
        self.fc = nn.Linear(4 * 8 * 8, 12)
        if kind == "one_to_one":
            self.rlif2 = snn.RLeaky(beta=0.9, threshold=0.5, all_to_all=False, V=0.3,
                                    learn_recurrent=True, init_hidden=True, output=True)
        else:
            self.rlif2 = snn.RLeaky(beta=0.9, threshold=0.5, linear_features=12,
                                    init_hidden=True, output=True, reset_mechanism="zero")

    def forward(self, x):
        s = self.rlif1(self.conv(x))
        spk, mem = self.rlif2(self.fc(s.flatten(1)))
        return spk, mem


def rleaky_one_to_one():
    return Recurrent("one_to_one")


def rleaky_conv():
    return Recurrent("conv")


class WithAlpha(nn.Module):
    def __init__(self, reset="subtract"):
        super().__init__()
        self.fc = nn.Linear(2 * 8 * 8, 6)
        self.lif = snn.Alpha(alpha=0.9, beta=0.8, threshold=0.3, init_hidden=True,
                             reset_mechanism=reset)
        self.fc2 = nn.Linear(6, 3)
        self.out = snn.Alpha(alpha=0.85, beta=0.6, threshold=0.2, init_hidden=True, output=True,
                             reset_mechanism=reset)

    def forward(self, x):
        spk, exc, inh, mem = self.out(self.fc2(self.lif(self.fc(x.flatten(1)))))
        return spk, mem


def alpha_zero():
    return WithAlpha("zero")


class WithLapicque(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2 * 8 * 8, 3)
        self.lif = snn.Lapicque(beta=0.9, init_hidden=True)

    def forward(self, x):
        return self.lif(self.fc(x.flatten(1)))


def broken():
    raise ValueError("this builder is broken")
"""


@pytest.fixture(scope="module")
def code_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("code") / "nets.py"
    path.write_text(textwrap.dedent(CODE))
    return path


def _trained(code_file: Path, name: str, tmp_path: Path) -> tuple[torch.nn.Module, Path]:
    """The network with weights and BatchNorm statistics that are not the defaults (as after
    training), saved as a state_dict."""
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
            elif n.endswith("beta") and t.numel() == 1:
                t.fill_(0.8 if "lif1" in n else t.item())
    net.eval()
    path = tmp_path / f"{name}.pt"
    torch.save(net.state_dict(), path)
    return net, path


@pytest.mark.parametrize(
    "name", ["Hidden", "zero_nodelay", "none_delay", "sub_nodelay", "synaptic"]
)
def test_init_hidden_networks_equal_snntorch_per_step(code_file, tmp_path, name):
    net, weights = _trained(code_file, name, tmp_path)
    ckpt = import_framework(
        weights, "snntorch", f"{code_file}:{name}", ImportOptions(input_size=(8, 8), classes="5")
    )
    ours = ckpt.model
    ours.set_probes(ProbeSpec(spikes=True, vm=True))
    x = spike_frames(80, (2, 8, 8))
    for m in net.modules():
        if isinstance(m, snntorch.SpikingNeuron):
            m.reset_mem()
    ours.reset()
    seen: dict[str, torch.Tensor] = {}
    net.lif1.register_forward_hook(lambda m, i, o: seen.__setitem__("spk1", o))
    fired = 0
    with torch.no_grad():
        for x_t in x:
            spk, mem = net(x_t)
            out = ours.step(x_t)
            torch.testing.assert_close(out, spk, rtol=0, atol=0)
            hidden = ours.spiking_layers()["lif1"]
            torch.testing.assert_close(hidden.o, seen["spk1"], rtol=0, atol=0)
            # snnTorch's mem after the step: ours before this step's own reset (the Vm the
            # app plots) where it resets later, after it where it resets at once
            theirs = net.lif1.mem
            ours_mem = hidden.record.vm if net.lif1.reset_delay else _membrane(hidden)
            torch.testing.assert_close(ours_mem, theirs, rtol=0, atol=1e-5)
            torch.testing.assert_close(
                _membrane(ours.spiking_layers()["lif2"]), mem, atol=1e-5, rtol=0
            ) if not net.lif2.reset_delay else None
            fired += int(hidden.o.sum())
    assert fired > 20


def _membrane(layer) -> torch.Tensor:
    return layer.v[1] if layer.v.dim() and layer.syn_decay is not None else layer.v


@pytest.mark.parametrize("name", ["Recurrent", "rleaky_one_to_one", "rleaky_conv"])
def test_rleaky_recurrence_equals_snntorch_per_step(code_file, tmp_path, name):
    """RLeaky: the layer's spikes return through its recurrent weights at the next step (a
    cycle in the graph; the recurrent bias enters the first step, as snnTorch's does)."""
    net, weights = _trained(code_file, name, tmp_path)
    options = ImportOptions(input_size=(8, 8), classes="12")
    ours = import_framework(weights, "snntorch", f"{code_file}:{name}", options).model
    assert any(a.endswith(".recurrent") for a, _ in ours.spec.edges)
    for m in net.modules():
        if isinstance(m, snntorch.SpikingNeuron):
            m.reset_mem()
    ours.reset()
    fired = 0
    with torch.no_grad():
        for x_t in spike_frames(80, (2, 8, 8), seed=3):
            spk, mem = net(x_t)
            torch.testing.assert_close(ours.step(x_t), spk, rtol=0, atol=0)
            torch.testing.assert_close(ours.spiking_layers()["rlif2"].v, mem, rtol=0, atol=1e-5)
            fired += int(spk.sum())
    assert fired > 10


@pytest.mark.parametrize("name", ["WithAlpha", "alpha_zero"])
def test_alpha_neurons_equal_snntorch_per_step(code_file, tmp_path, name):
    net, weights = _trained(code_file, name, tmp_path)
    options = ImportOptions(input_size=(8, 8), classes="3")
    ours = import_framework(weights, "snntorch", f"{code_file}:{name}", options).model
    ours.set_probes(ProbeSpec(spikes=True, vm=True))
    for m in net.modules():
        if isinstance(m, snntorch.SpikingNeuron):
            m.reset_mem()
    ours.reset()
    fired = 0
    with torch.no_grad():
        for x_t in spike_frames(80, (2, 8, 8), seed=4):
            spk, mem = net(x_t)
            torch.testing.assert_close(ours.step(x_t), spk, rtol=0, atol=0)
            hidden = ours.spiking_layers()["lif"]
            torch.testing.assert_close(hidden.v[2], net.lif.mem, rtol=0, atol=1e-5)
            torch.testing.assert_close(hidden.v[0], net.lif.syn_exc, rtol=0, atol=1e-5)
            torch.testing.assert_close(
                ours.spiking_layers()["out"].record.vm, mem, atol=1e-5, rtol=0
            )
            fired += int(hidden.o.sum())
    assert fired > 20


def test_explicit_state_network_with_residual_equals_snntorch(code_file, tmp_path):
    net, weights = _trained(code_file, "Explicit", tmp_path)
    ckpt = import_framework(
        weights, "snntorch", f"{code_file}:Explicit", ImportOptions(input_size=(8, 8))
    )
    x = spike_frames(60, (2, 8, 8), seed=2)
    mem1 = mem2 = None
    ckpt.model.reset()
    ckpt.model.set_probes(ProbeSpec(spikes=True, vm=True))
    fired = 0
    with torch.no_grad():
        for x_t in x:
            spk, mem1, mem2 = net(x_t, mem1, mem2)
            torch.testing.assert_close(ckpt.model.step(x_t), spk, rtol=0, atol=0)
            torch.testing.assert_close(
                ckpt.model.spiking_layers()["lif1"].record.vm
                if False
                else ckpt.model.spiking_layers()["lif1"].v,
                mem1,
                rtol=0,
                atol=1e-5,
            )
            fired += int(spk.sum())
    assert fired > 5


def test_learnable_beta_and_threshold_come_from_the_state_dict(code_file, tmp_path):
    _, weights = _trained(code_file, "Hidden", tmp_path)
    state = torch.load(weights, weights_only=True)
    state["lif1.beta"] = torch.tensor(0.5)
    state["lif1.threshold"] = torch.tensor(0.25)
    torch.save(state, weights)
    ckpt = import_framework(
        weights, "snntorch", f"{code_file}:Hidden", ImportOptions(input_size=(8, 8), classes="5")
    )
    lif1 = ckpt.model.spiking_layers()["lif1"]
    assert float(lif1.decay) == 0.5 and lif1.threshold == 0.25


def test_shipped_style_cli_import_and_refusals(code_file, tmp_path, capsys):
    _, weights = _trained(code_file, "Hidden", tmp_path)
    out = tmp_path / "hidden.safetensors"
    base = [
        "import",
        str(weights),
        "--framework",
        "snntorch",
        "--input-size",
        "8x8",
        "-o",
        str(out),
    ]
    assert main([*base, "--code", f"{code_file}:Hidden", "--classes", "5"]) == 0
    assert out.exists()
    capsys.readouterr()
    pickled = tmp_path / "with_args.pt"  # a training script's habit: objects beside tensors
    torch.save({"state_dict": torch.load(weights), "args": argparse.Namespace(lr=0.1)}, pickled)
    _, alpha_weights = _trained(code_file, "WithLapicque", tmp_path)
    cases = {
        "lapicque": (
            ["import", str(alpha_weights), *base[2:], "--code", f"{code_file}:WithLapicque"],
            "'lif' (snntorch.Lapicque) cannot be converted",
        ),
        "objects beside the tensors": (
            [*base[:1], str(pickled), *base[2:], "--code", f"{code_file}:Hidden"],
            "unpickling",
        ),
        "no code file": ([*base, "--code", f"{tmp_path}/nope.py:Net"], "no such file"),
        "code raises": (
            [*base, "--code", f"{code_file}:broken"],
            "raised ValueError: this builder is broken",
        ),
        "no such name": ([*base, "--code", f"{code_file}:Nope"], "defines no 'Nope'"),
        "wrong class": ([*base, "--code", f"{code_file}:Explicit"], "do not fit the model class"),
        "no --code": (base, "needs --code"),
    }
    for what, (args, message) in cases.items():
        out.unlink(missing_ok=True)
        assert main(args) == 2, what
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (what, err)
        assert not out.exists(), what


def test_unsupported_framework_version_is_refused(code_file, tmp_path, capsys, monkeypatch):
    _, weights = _trained(code_file, "Hidden", tmp_path)
    monkeypatch.setattr(snntorch, "__version__", "0.7.0")
    out = tmp_path / "old.safetensors"
    args = ["import", str(weights), "--framework", "snntorch", "--code", f"{code_file}:Hidden"]
    assert main([*args, "--input-size", "8x8", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "snnTorch 0.7.0 is not supported" in err
    assert not out.exists()
