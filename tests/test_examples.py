"""The README's worked framework examples (examples/*.py) import with the README's command
and step as their framework does."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from dvsapp.cli import main
from dvsapp.snn.checkpoint import load_checkpoint

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _net(name: str) -> torch.nn.Module:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    return module.Net()


def _import(
    name: str, framework: str, tmp_path: Path, *flags: str, positive: bool = False
) -> tuple[torch.nn.Module, Path]:
    net = _net(name)
    with torch.no_grad():  # trained-looking weights: larger than the initialisation
        for p in net.parameters():
            (p.abs_() if positive else p).mul_(3.0)
    weights, out = tmp_path / "w.pt", tmp_path / "net.safetensors"
    torch.save(net.state_dict(), weights)
    code = f"{EXAMPLES / name}.py:Net"
    args = ["import", str(weights), "--framework", framework, "--code", code, *flags]
    assert main([*args, "-o", str(out)]) == 0
    return net.eval(), out


def _frames(t: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return (torch.rand((t, 1, 2, 64, 64), generator=g) < 0.2).float() * 2.0


def test_sinabs_example(tmp_path):
    sinabs = pytest.importorskip("sinabs")
    flags = ["--input-size", "64x64", "--sensor", "128x128", "--bin-us", "2000", "--classes", "10"]
    net, out = _import("sinabs_net", "sinabs", tmp_path, *flags, positive=True)
    model = load_checkpoint(out).model
    x = _frames(40)
    sinabs.reset_states(net)
    with torch.no_grad():
        theirs = torch.stack([net(x_t) for x_t in x])
    model.reset()
    with torch.no_grad():
        ours = torch.stack([model.step(x_t) for x_t in x])
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    assert theirs.sum() > 0


def test_spikingjelly_example(tmp_path):
    pytest.importorskip("spikingjelly.activation_based")
    from spikingjelly.activation_based import functional

    flags = ["--input-size", "64x64", "--sensor", "128x128", "--bin-us", "25000"]
    net, out = _import("spikingjelly_net", "spikingjelly", tmp_path, *flags, "--classes", "11")
    model = load_checkpoint(out).model
    x = _frames(40)
    functional.reset_net(net)
    with torch.no_grad():
        theirs = net(x)  # multi-step: the whole sequence at once
    model.reset()
    with torch.no_grad():
        ours = torch.stack([model.step(x_t) for x_t in x])
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    assert theirs.sum() > 0
