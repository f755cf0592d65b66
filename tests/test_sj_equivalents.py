"""The SpikingJelly equivalents used by benchmarks/bench_step.py are the same networks: layer
by layer the same parameter counts, hyperparameters and output shapes, and, with the weights
mapped across and the exact neurons, the same outputs step by step."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

pytest.importorskip("spikingjelly.activation_based", reason="SpikingJelly is not installed")

from spikingjelly.activation_based import layer as sj_layer
from spikingjelly.activation_based import neuron as sj_neuron
from spikingjelly.activation_based.neuron.base_node import SimpleBaseNode

from dvsapp.snn.base import SpikingModel
from dvsapp.snn.bntt import BnttNorm
from dvsapp.snn.resnet import TdbnResNet, TdConvBN, TdShortcutBN, load_spikingjelly_conv_bn
from dvsapp.snn.resnet import default_config as resnet_config
from dvsapp.snn.tdbn import (
    RESIDUAL_ALPHA,
    TdBatchNorm,
    TdLIF,
    load_spikingjelly_tdbn,
    spikingjelly_gamma,
)
from dvsapp.snn.vgg import BnttVGG
from dvsapp.snn.vgg import default_config as vgg_config


def _load_sj_models():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "sj_models.py"
    spec = importlib.util.spec_from_file_location("sj_models", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["sj_models"] = module
    spec.loader.exec_module(module)
    return module


sj = _load_sj_models()

T = 4
SMALL: dict[str, dict] = {
    "resnet17": {"width": 8, "input_size": (32, 32)},
    "resnet19": {"width": 8, "input_size": (16, 16)},
    "resnet_small": {"width": 8, "input_size": (32, 32)},
    "vgg9": {"width": 4, "input_size": (16, 16)},
    "vgg11": {"width": 4, "input_size": (16, 16)},
    "vgg_small": {"width": 4, "input_size": (16, 16)},
}
ARCHS = tuple(SMALL)
#: (arch, layout) of the ResNets: the builders' layout (2, the tdBN paper's) and the original
#: one that older checkpoints hold (1); VGGs have one layout.
CASES = [(arch, 2 if arch.startswith("resnet") else None) for arch in ARCHS] + [
    ("resnet17", 1),
    ("resnet19", 1),
    ("resnet_small", 1),
]
SJ_NODES = (sj_neuron.LIFNode, SimpleBaseNode)


def build(arch: str, layout: int | None = None, **overrides) -> SpikingModel:
    torch.manual_seed(0)
    fields = {**SMALL[arch], "time_steps": T, **overrides}
    if layout is not None:
        fields["layout"] = layout
    if arch.startswith("resnet"):
        return TdbnResNet(resnet_config(arch, **fields)).eval()
    return BnttVGG(vgg_config(arch, preset=None, **fields)).eval()


def layer_table(net: nn.Module) -> list[tuple]:
    """Weighted layers in module order: kind, hyperparameters, parameter count."""
    rows: list[tuple] = []
    skip: set[int] = set()
    for m in net.modules():
        if id(m) in skip:
            continue
        n = sum(p.numel() for p in m.parameters())
        if isinstance(m, nn.Conv2d):
            rows.append(("conv", m.in_channels, m.out_channels, m.kernel_size, m.stride,
                         m.padding, m.bias is not None, n))  # fmt: skip
        elif isinstance(m, nn.Linear):
            rows.append(("linear", m.in_features, m.out_features, m.bias is not None, n))
        elif isinstance(m, TdBatchNorm | BnttNorm | nn.BatchNorm2d | nn.BatchNorm1d):
            rows.append(("norm", n))
        elif isinstance(m, sj_layer.BatchNormThroughTime1d | sj_layer.BatchNormThroughTime2d):
            rows.append(("norm", n))
            skip.update(id(c) for c in m.modules())
        elif isinstance(m, nn.AvgPool2d | nn.AdaptiveAvgPool2d):
            rows.append(("pool", str(m.kernel_size if hasattr(m, "kernel_size")
                                     else m.output_size)))  # fmt: skip
    return rows


def sj_nodes(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, SJ_NODES)]


@pytest.mark.parametrize("kind", sj.NEURONS)
@pytest.mark.parametrize(("arch", "layout"), CASES)
def test_same_layers_parameters_and_shapes(arch: str, layout: int | None, kind: str) -> None:
    model = build(arch, layout)
    net = sj.sj_equivalent(model, kind)
    ours, theirs = layer_table(model), layer_table(net)
    if arch.startswith("resnet"):  # we average with .mean(), SpikingJelly with a pool layer
        theirs = [r for r in theirs if r[0] != "pool"]
    assert ours == theirs
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in net.parameters())
    nodes = sj_nodes(net)
    assert len(nodes) == len(model.spiking_layers())
    assert all(m.step_mode == "s" for m in net.modules() if hasattr(m, "step_mode"))
    cfg = model.config
    x = torch.ones(2, cfg.in_channels, cfg.input_size[1], cfg.input_size[0])
    with torch.inference_mode():
        out, sj_out = model.step(x), net(x)
    assert sj_out.shape == out.shape == (2, cfg.num_classes)
    assert [tuple(n.v.shape) for n in nodes] == [
        tuple(la.v.shape) for la in model.spiking_layers().values()
    ]


def _dyadic(t: torch.Tensor, bits: int) -> torch.Tensor:
    return torch.round(t * 2**bits) / 2**bits


def exact_arithmetic(model: SpikingModel) -> None:
    """BNTT: dyadic weights and statistics (and eps 0), so a folded scale/shift and
    SpikingJelly's BatchNorm round identically; tdBN needs nothing (see the test)."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                m.weight.copy_(_dyadic(m.weight, 4))
            elif isinstance(m, BnttNorm):
                shape = m.weight.shape
                m.eps = 0.0
                m.running_var.copy_(4.0 ** torch.randint(-1, 2, shape, generator=gen))
                m.running_mean.copy_(torch.randint(-4, 5, shape, generator=gen) / 8)
                m.weight.copy_(torch.randint(4, 17, shape, generator=gen) / 8)
            elif isinstance(m, TdBatchNorm):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.3)
                m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(c, generator=gen) * 2 + 1.0)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.2)


@pytest.mark.parametrize(("arch", "layout"), CASES)
def test_exact_equivalent_gives_our_outputs(arch: str, layout: int | None) -> None:
    model = build(arch, layout)
    if layout == 2 and arch != "resnet_small":  # the shortcut tdBNs are there, and mirrored
        assert any(isinstance(m, TdShortcutBN) for m in model.modules())
    exact_arithmetic(model)
    net = sj.sj_equivalent(model, "exact")
    if arch.startswith("resnet"):
        # Our eval step folds tdBN into the conv (other rounding); in training mode it runs
        # conv then tdBN with the running statistics, the very kernels SpikingJelly runs.
        model.train()
    cfg = model.config
    gen = torch.Generator().manual_seed(2)
    xs = torch.poisson(
        torch.full((T, 2, cfg.in_channels, cfg.input_size[1], cfg.input_size[0]), 1.0),
        generator=gen,
    )
    model.reset()
    sj.reset(net)
    fired = 0.0
    with torch.no_grad():
        for t, x in enumerate(xs):
            out, sj_out = model.step(x), net(x)
            assert torch.equal(out, sj_out), f"step {t}"
            fired += sum(float(la.o.sum()) for la in model.spiking_layers().values())
            for node, la in zip(sj_nodes(net), model.spiking_layers().values(), strict=True):
                assert torch.equal(node.v, la.v * (1 - la.o) if isinstance(la, TdLIF) else la.v)
    assert fired > 0, "the test network never fired"


@pytest.mark.parametrize("family", ["tdbn", "bntt"])
def test_stock_lif_node_has_our_dynamics(family: str) -> None:
    """SpikingJelly's LIFNode as configured for the benchmark: one step from the same state
    charges, fires and resets as ours, up to rounding (and firing at exactly Vth)."""
    model = build("resnet_small" if family == "tdbn" else "vgg_small")
    ours = next(iter(model.spiking_layers().values()))
    node = sj._node(ours, "lif")
    assert isinstance(node, sj_neuron.LIFNode)
    gen = torch.Generator().manual_seed(3)
    th = ours.threshold
    v_prev = (torch.rand(100_000, generator=gen) * 2 - 0.5) * th
    o_prev = (torch.rand(100_000, generator=gen) < 0.3).float()
    x = (torch.rand(100_000, generator=gen) * 2 - 0.5) * th
    with torch.no_grad():
        spikes, u, v_next = ours.dynamics(x, v_prev, o_prev)
        # SpikingJelly keeps the potential after its reset: ours applies the hard reset at
        # the next charge through (1 - o).
        node.v = v_prev * (1 - o_prev) if family == "tdbn" else v_prev.clone()
        sj_spikes = node(x)
    near = (u - th).abs() < 1e-5
    assert near.float().mean() < 1e-3
    assert torch.equal(spikes[~near], sj_spikes[~near])
    expected = u * (1 - spikes) if family == "tdbn" else v_next
    torch.testing.assert_close(node.v[~near], expected[~near], rtol=1e-5, atol=1e-6)


def test_rejects_what_it_cannot_mirror() -> None:
    with pytest.raises(TypeError):
        sj.sj_equivalent(nn.Linear(2, 2))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="neuron"):
        sj.sj_equivalent(build("vgg_small"), "izhikevich")


# --- SpikingJelly's tdBN and ours -------------------------------------------------------------


def _randomize_sj_tdbn(bn: nn.Module, gen: torch.Generator) -> None:
    """A trained-looking SpikingJelly tdBN: gamma (which holds alpha * Vth) and statistics."""
    c = bn.num_features
    with torch.no_grad():
        bn.weight.copy_((torch.rand(c, generator=gen) + 0.5) * bn.weight)
        bn.bias.copy_(torch.randn(c, generator=gen) * 0.1)
        bn.running_mean.copy_(torch.randn(c, generator=gen) * 0.5)
        bn.running_var.copy_(torch.rand(c, generator=gen) * 2 + 0.5)
        bn.num_batches_tracked.fill_(7)


@pytest.mark.parametrize(
    ("sj_alpha", "sj_vth", "conv_bias"),
    [(RESIDUAL_ALPHA, 0.2, False), (1.0, 1.0, False), (RESIDUAL_ALPHA, 0.2, True)],
)
def test_spikingjelly_tdbn_loads_into_ours_and_gives_the_same_outputs(
    sj_alpha: float, sj_vth: float, conv_bias: bool
) -> None:
    """SpikingJelly's ``ThresholdDependentBatchNorm2d`` keeps ``alpha * Vth`` inside its
    learned gamma; ours multiplies a weight by a fixed ``alpha * Vth``. With the weight
    ``gamma / (alpha * Vth)`` the two compute the same, in training on a batch (and update
    the same running statistics) and in eval with the running statistics (ours folded into
    the conv). SpikingJelly's own alpha and Vth only set gamma's initial value, so the rule
    holds when they differ from ours too; a conv bias goes into our running mean."""
    gen = torch.Generator().manual_seed(21)
    conv = sj_layer.Conv2d(3, 6, 3, stride=2, padding=1, bias=conv_bias, step_mode="m")
    bn = sj_layer.ThresholdDependentBatchNorm2d(sj_alpha, sj_vth, 6)
    assert bn.step_mode == "m"
    torch.testing.assert_close(bn.weight.detach(), torch.full((6,), sj_alpha * sj_vth))
    _randomize_sj_tdbn(bn, gen)
    ours = TdConvBN(3, 6, 3, stride=2, v_th=0.2, alpha=RESIDUAL_ALPHA)
    load_spikingjelly_conv_bn(ours, conv, bn)
    torch.testing.assert_close(spikingjelly_gamma(ours.bn), bn.weight, rtol=1e-6, atol=0)
    assert ours.bn.num_batches_tracked.item() == 7

    x = torch.rand(4, 2, 3, 10, 10, generator=gen)  # [T, B, C, H, W]
    # training: statistics over (T, B, H, W) of this batch, and the same running update
    ours.train()
    bn.train()
    with torch.no_grad():
        theirs_y, ours_y = bn(conv(x)), ours(x)
    assert theirs_y.shape == ours_y.shape == (4, 2, 6, 5, 5)
    torch.testing.assert_close(ours_y, theirs_y, atol=2e-6, rtol=1e-5)
    mean = bn.running_mean - (conv.bias if conv_bias else 0)
    torch.testing.assert_close(ours.bn.running_mean, mean.detach(), atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(ours.bn.running_var, bn.running_var, atol=1e-6, rtol=1e-6)
    # eval: the running statistics (ours folded into one conv), over the sequence and per step
    ours.eval()
    bn.eval()
    with torch.no_grad():
        theirs_y, ours_y = bn(conv(x)), ours(x)
        torch.testing.assert_close(ours_y, theirs_y, atol=1e-5, rtol=1e-5)
        for t in range(4):
            torch.testing.assert_close(ours.step(x[t]), theirs_y[t], atol=1e-5, rtol=1e-5)
    assert theirs_y.abs().max() > 0.1  # not trivially zero


def test_spikingjelly_tdbn_load_refuses_what_does_not_fit() -> None:
    bn = sj_layer.ThresholdDependentBatchNorm2d(1.0, 0.2, 4)
    with pytest.raises(ValueError, match="channels"):
        load_spikingjelly_tdbn(TdBatchNorm(5), bn)
    conv = sj_layer.Conv2d(3, 4, 3, padding=1, bias=False, step_mode="m")
    with pytest.raises(ValueError, match="conv"):
        load_spikingjelly_conv_bn(TdConvBN(3, 4, 3, stride=2), conv, bn)
    with pytest.raises(ValueError, match="no tdBN"):
        load_spikingjelly_conv_bn(TdConvBN(3, 4, 3, norm=False), conv, bn)
