"""The tdBN ResNet-SNN family: neuron equations, surrogate, tdBN statistics and alpha, layouts,
step/forward parity (with folded tdBN, beyond the trained T), probes, training."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dvsapp.snn.tdbn as tdbn_module
from dvsapp.snn.base import ModelConfig, ProbeSpec
from dvsapp.snn.resnet import (
    RESNET_ARCHS,
    TdbnResNet,
    TdConvBN,
    TdShortcutBN,
    conv3x3_bn,
    default_config,
    resnet17,
    resnet19,
    resnet_small,
)
from dvsapp.snn.tdbn import (
    RESIDUAL_ALPHA,
    TDBN_NEURON_DEFAULTS,
    TdBatchNorm,
    TdLIF,
    rectangle_spike,
)

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here"),
    ),
]

#: Fast members with the real layouts: small widths and inputs (resnet_small at its real size).
SMALL: dict[str, dict] = {
    "resnet17": {"width": 8, "input_size": (32, 32), "time_steps": 6},
    "resnet19": {"width": 8, "input_size": (16, 16), "time_steps": 6},
    "resnet_small": {"time_steps": 6},
}


def small_model(arch: str, **overrides) -> TdbnResNet:
    return TdbnResNet(default_config(arch, **{**SMALL[arch], **overrides}))


def randomize_bn(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Non-trivial running statistics and affine parameters, so folding really matters."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, TdBatchNorm):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(c, generator=gen) * 2.5 + 0.5)
                m.weight.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.3)


def spike_frames(model: TdbnResNet, steps: int, batch: int, gen: torch.Generator) -> torch.Tensor:
    cfg = model.config
    w, h = cfg.input_size
    return (torch.rand(steps, batch, cfg.in_channels, h, w, generator=gen) < 0.3).float()


def bn_reference(x: torch.Tensor, bn: TdBatchNorm) -> torch.Tensor:
    """tdBN with running statistics, written out (float64)."""
    shape = (1, -1, 1, 1)
    mean, var = bn.running_mean.double().reshape(shape), bn.running_var.double().reshape(shape)
    w, b = bn.weight.double().reshape(shape), bn.bias.double().reshape(shape)
    return bn.alpha * bn.v_th * (x.double() - mean) / torch.sqrt(var + bn.eps) * w + b


# --- neuron and surrogate ------------------------------------------------------------------


def test_lif_follows_the_equations_on_a_hand_computed_sequence() -> None:
    lif = TdLIF(tau_decay=0.5, threshold=1.0, surrogate_width=0.5)
    xs = [0.75, 0.75, 0.25, 2.0, 0.5, 1.0, 0.0, 1.5]
    # u_t = 0.5 * u_{t-1} * (1 - o_{t-1}) + x_t ;  o_t = u_t > 1 (u == Vth does not fire)
    u_expected = [0.75, 1.125, 0.25, 2.125, 0.5, 1.25, 0.0, 1.5]
    o_expected = [0, 1, 0, 1, 0, 1, 0, 1]
    lif.probe = ProbeSpec(spikes=True, vm=True, rate=True)
    us, os_ = [], []
    for x in xs:
        os_.append(lif.step(torch.tensor([[x]])).item())
        us.append(lif.record.vm.item())
    assert us == u_expected and os_ == o_expected
    seq = lif(torch.tensor(xs).reshape(-1, 1, 1))  # sequence mode, fresh state
    assert seq.flatten().tolist() == o_expected
    # u == Vth exactly does not fire, and the potential is kept: 1.0, 0.5 + 0.5, 0.5 + 0.75
    lif.reset()
    assert [lif.step(torch.tensor([[v]])).item() for v in (1.0, 0.5, 0.75)] == [0, 0, 1]


def test_threshold_scale_changes_firing() -> None:
    lif = TdLIF(tau_decay=0.5, threshold=1.0)
    lif.probe = ProbeSpec(vm=True)
    x = torch.full((1, 1), 0.75)
    lif.threshold_scale = 2.0  # effective threshold 2: u -> 0.75, 1.125, 1.3125, ... < 1.5
    out = [lif.step(x).item() for _ in range(6)]
    assert out == [0] * 6 and lif.record.vm.item() == pytest.approx(1.5 - 0.75 / 32)
    lif.reset()
    lif.threshold_scale = 1.0
    assert [lif.step(x).item() for _ in range(3)] == [0, 1, 0]

    gen = torch.Generator().manual_seed(3)
    model = small_model("resnet_small")
    randomize_bn(model, gen)
    model.eval()
    frames = spike_frames(model, 4, 2, gen)
    model.set_probes(ProbeSpec(spikes=False, rate=True))

    def mean_rate(scale: float) -> tuple[float, torch.Tensor]:
        for layer in model.spiking_layers().values():
            layer.threshold_scale = scale
        model.reset()
        with torch.inference_mode():
            rates, out = [], None
            for f in frames:
                out = model.step(f)
                rates += [r.record.rate.mean().item() for r in model.spiking_layers().values()]
        return float(np.mean(rates)), out

    base, out1 = mean_rate(1.0)
    high, _ = mean_rate(3.0)
    assert base > 0.05 and high < 0.5 * base
    _, out_back = mean_rate(1.0)
    assert torch.equal(out_back, out1)


def test_surrogate_gradient_is_the_rectangle() -> None:
    width, vth = 0.3, 0.2
    u_np = np.arange(-1.5, 1.5, 0.01) + 0.005 + vth  # never exactly on the rectangle's edge
    u = torch.tensor(u_np, dtype=torch.float32, requires_grad=True)
    spikes = rectangle_spike(u - vth, width)
    spikes.sum().backward()
    expected = np.where(np.abs(u_np - vth) < width, 1.0 / (2 * width), 0.0)
    np.testing.assert_allclose(u.grad.numpy(), expected, rtol=1e-6)
    np.testing.assert_array_equal(spikes.detach().numpy(), (u_np > vth).astype(np.float32))
    assert expected.max() > 0 and (expected == 0).any()

    # Through the neuron: d o_0 / d x_0 at the first step is the same rectangle.
    lif = TdLIF(tau_decay=0.25, threshold=vth, surrogate_width=width)
    x = torch.tensor(u_np, dtype=torch.float32).reshape(1, -1).requires_grad_()
    lif(x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy().ravel(), expected, rtol=1e-6)


def test_gradient_flows_through_the_reset_factor() -> None:
    """Beyond the first step: d o_1 / d x_0 goes through the reset factor (1 - o_0) as well as
    through u_0 (module docstring). With tau 0.5, Vth 1, a 0.5: x_0 = 1.2 fires (o_0 = 1, in
    the rectangle), x_1 = 0.9 gives u_1 = 0.9 (in the rectangle), so
    d o_1/d x_0 = s'(u_1) * tau * ((1 - o_0) - u_0 * s'(u_0)) = 1 * 0.5 * (0 - 1.2) = -0.6;
    a detached reset factor gives 0."""
    lif = TdLIF(tau_decay=0.5, threshold=1.0, surrogate_width=0.5)
    x = torch.tensor([1.2, 0.9], dtype=torch.float64).reshape(2, 1, 1).requires_grad_()
    out = lif(x)
    assert out.flatten().tolist() == [1.0, 0.0]
    out[1].sum().backward()
    assert x.grad is not None
    assert x.grad.flatten().tolist() == pytest.approx([-0.6, 1.0])


def test_neuron_defaults_are_the_documented_values() -> None:
    """tau 0.25, Vth 0.2, half-width 0.5 (module docstring: thiswinex/STBP-simple), written
    out here rather than read back from TDBN_NEURON_DEFAULTS."""
    assert TDBN_NEURON_DEFAULTS == {"tau_decay": 0.25, "threshold": 0.2, "surrogate_width": 0.5}
    lif = TdLIF()
    assert (lif.tau_decay, lif.threshold, lif.surrogate_width) == (0.25, 0.2, 0.5)
    doc = tdbn_module.__doc__ or ""
    assert "tau 0.25" in doc and "Vth 0.2" in doc and "half-width 0.5" in doc


# --- tdBN ----------------------------------------------------------------------------------


def test_tdbn_training_statistics_span_time_batch_and_space() -> None:
    gen = torch.Generator().manual_seed(0)
    t, b, c, h, w = 5, 3, 4, 6, 7
    offsets = torch.arange(t, dtype=torch.float32).reshape(t, 1, 1, 1, 1)  # moves with time
    x = (
        torch.randn(t, b, c, h, w, generator=gen)
        * torch.tensor([0.5, 1, 2, 3]).reshape(1, 1, c, 1, 1)
        + offsets
    )
    bn = TdBatchNorm(c, v_th=0.3, alpha=0.7)
    y = bn(x)

    xn = x.double().numpy()
    mean = xn.mean(axis=(0, 1, 3, 4)).reshape(1, 1, c, 1, 1)
    var = xn.var(axis=(0, 1, 3, 4)).reshape(1, 1, c, 1, 1)
    expected = 0.7 * 0.3 * (xn - mean) / np.sqrt(var + bn.eps)
    np.testing.assert_allclose(y.detach().numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(y.detach().double().std(dim=(0, 1, 3, 4), unbiased=False), 0.21,
                               rtol=1e-4)  # fmt: skip
    # Not a per-step BatchNorm: each step keeps its own offset.
    per_step_means = y.detach().mean(dim=(1, 2, 3, 4))
    assert (per_step_means[1:] > per_step_means[:-1]).all()

    n = t * b * h * w
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * mean.ravel(), rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * var.ravel() * n / (n - 1),
                               rtol=1e-5)  # fmt: skip

    # Learnable weight and bias apply after the alpha * Vth scale; [T*B, ...] input is the same.
    bn2 = TdBatchNorm(c, v_th=0.3, alpha=0.7)
    with torch.no_grad():
        bn2.weight.copy_(torch.tensor([1.0, 2.0, -1.0, 0.5]))
        bn2.bias.copy_(torch.tensor([0.1, -0.2, 0.3, 0.0]))
    y2 = bn2(x.flatten(0, 1)).unflatten(0, (t, b))
    wv, bv = bn2.weight.detach().numpy(), bn2.bias.detach().numpy()
    np.testing.assert_allclose(
        y2.detach().numpy(), expected * wv.reshape(1, 1, c, 1, 1) + bv.reshape(1, 1, c, 1, 1),
        atol=1e-5,
    )  # fmt: skip


def test_conv_unit_statistics_come_from_the_whole_sequence() -> None:
    gen = torch.Generator().manual_seed(1)
    unit = conv3x3_bn(2, 3, v_th=0.5)
    x = torch.rand(4, 2, 2, 8, 8, generator=gen)
    y = unit(x)  # training mode
    conv = torch.stack([F.conv2d(f, unit.conv.weight, padding=1) for f in x]).detach().double()
    mean = conv.mean(dim=(0, 1, 3, 4), keepdim=True)
    var = conv.var(dim=(0, 1, 3, 4), unbiased=False, keepdim=True)
    expected = 0.5 * (conv - mean) / torch.sqrt(var + unit.bn.eps)
    torch.testing.assert_close(y.detach().double(), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("layout", [1, 2])
def test_alpha_is_one_over_sqrt2_exactly_on_the_residual_branches(layout: int) -> None:
    """Both inputs of every add carry alpha = 1/sqrt(2): the residual branch's last tdBN and
    the shortcut's (projection, or in layout 2 the identity shortcut's own tdBN)."""
    for arch in RESNET_ARCHS:
        with torch.device("meta"):
            model = TdbnResNet(default_config(arch, layout=layout))
        residual = set()
        for stage in model.stage_names:
            for j, block in enumerate(getattr(model, stage)):
                residual.add(f"{stage}.{j}.conv2.bn")
                if block.downsample is not None:
                    residual.add(f"{stage}.{j}.downsample.bn")
                    assert block.shortcut is None
                elif layout == 2 and arch != "resnet_small":
                    assert isinstance(block.shortcut, TdShortcutBN), (arch, stage, j)
                    residual.add(f"{stage}.{j}.shortcut.bn")
                else:
                    assert block.shortcut is None  # the spikes themselves
        assert any("downsample" in n for n in residual), arch
        assert any("shortcut" in n for n in residual) == (layout == 2 and arch != "resnet_small")
        bns = {n: m for n, m in model.named_modules() if isinstance(m, TdBatchNorm)}
        assert residual <= set(bns)
        for name, bn in bns.items():
            assert bn.alpha == (1 / math.sqrt(2) if name in residual else 1.0), (arch, name)
            assert bn.v_th == TDBN_NEURON_DEFAULTS["threshold"]
    assert 1 / math.sqrt(2) == RESIDUAL_ALPHA


def test_residual_branches_are_scaled_to_alpha_vth_in_training() -> None:
    gen = torch.Generator().manual_seed(2)
    model = small_model("resnet19")
    block = model.layer2[0]  # has a projection shortcut
    x = (torch.rand(3, 2, 8, 16, 16, generator=gen) < 0.4).float()
    identity = block.downsample(x)
    residual = block.conv2(block.lif1(block.conv1(x)))
    vth = TDBN_NEURON_DEFAULTS["threshold"]
    # and an identity shortcut's own tdBN (layout 2)
    plain = model.layer1[0]
    assert plain.downsample is None and isinstance(plain.shortcut, TdShortcutBN)
    spikes = (torch.rand(3, 2, 8, 16, 16, generator=gen) < 0.3).float()
    for branch in (identity, residual, plain.shortcut(spikes)):
        std = branch.detach().double().std(dim=(0, 1, 3, 4), unbiased=False)
        torch.testing.assert_close(std, torch.full_like(std, vth / math.sqrt(2)), rtol=1e-3,
                                   atol=0)  # fmt: skip


# --- folding and the fold cache --------------------------------------------------------------


def test_folded_conv_equals_conv_then_tdbn_and_follows_weight_changes() -> None:
    gen = torch.Generator().manual_seed(4)
    unit = TdConvBN(3, 5, 3, stride=2, v_th=0.4, alpha=RESIDUAL_ALPHA)
    randomize_bn(unit, gen)
    unit.eval()
    x = torch.randn(2, 3, 3, 9, 9, generator=gen)

    def reference() -> torch.Tensor:
        conv = F.conv2d(x.flatten(0, 1), unit.conv.weight, stride=2, padding=1)
        return bn_reference(conv, unit.bn).float().unflatten(0, (2, 3))

    def check() -> None:
        ref = reference()
        with torch.inference_mode():
            torch.testing.assert_close(unit(x), ref, atol=1e-5, rtol=0)
            torch.testing.assert_close(unit.step(x[1]), ref[1], atol=1e-5, rtol=0)

    check()
    assert unit._fold_cache is not None
    with torch.no_grad():
        unit.bn.running_mean.add_(0.5)
    check()
    with torch.no_grad():
        unit.conv.weight.mul_(-2.0)
    check()
    other = TdConvBN(3, 5, 3, stride=2, v_th=0.4, alpha=RESIDUAL_ALPHA)
    randomize_bn(other, gen)
    unit.load_state_dict(other.state_dict())
    check()
    unit.train()
    assert unit._fold_cache is None


def test_shortcut_tdbn_folds_into_a_scale_and_shift_that_follows_its_statistics() -> None:
    gen = torch.Generator().manual_seed(14)
    unit = TdShortcutBN(5, v_th=0.4)
    assert unit.bn.alpha == RESIDUAL_ALPHA
    randomize_bn(unit, gen)
    unit.eval()
    x = (torch.rand(3, 2, 5, 6, 6, generator=gen) < 0.4).float()

    def check() -> None:
        ref = bn_reference(x.flatten(0, 1), unit.bn).float().unflatten(0, (3, 2))
        with torch.inference_mode():
            torch.testing.assert_close(unit(x), ref, atol=1e-6, rtol=0)
            for t in range(3):
                assert torch.equal(unit.step(x[t]), unit(x)[t])  # the same affine map

    check()
    assert unit._fold_cache is not None
    with torch.no_grad():
        unit.bn.running_var.mul_(3.0)
    check()
    unit.train()
    assert unit._fold_cache is None
    y = unit(x)  # training: statistics of this sequence
    mean = y.detach().double().mean(dim=(0, 1, 3, 4))
    torch.testing.assert_close(mean, unit.bn.bias.detach().double(), atol=1e-5, rtol=0)
    # step in training mode uses the running statistics (a frame has no sequence statistics)
    torch.testing.assert_close(unit.step(x[0]), unit.bn.infer(x[0]))


def test_fold_cached_in_inference_mode_is_usable_with_autograd() -> None:
    gen = torch.Generator().manual_seed(5)
    unit = conv3x3_bn(2, 4)
    randomize_bn(unit, gen)
    unit.eval().requires_grad_(False)
    x = torch.randn(1, 2, 6, 6, generator=gen)
    with torch.inference_mode():
        y0 = unit.step(x)
    x.requires_grad_()
    y = unit.step(x)
    y.sum().backward()
    assert x.grad is not None and torch.equal(y.detach(), y0)


# --- step / forward parity -----------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("arch", "layout"), [(arch, 2) for arch in RESNET_ARCHS] + [("resnet17", 1), ("resnet19", 1)]
)
def test_steps_equal_forward_in_eval_and_run_past_the_trained_t(
    arch: str, layout: int, device: str
) -> None:
    gen = torch.Generator().manual_seed(10)
    model = small_model(arch, layout=layout)
    randomize_bn(model, gen)
    model.eval().to(device)
    steps = 2 * model.config.time_steps  # free-running: twice the trained T
    frames = spike_frames(model, steps, 2, gen).to(device)
    model.set_probes(ProbeSpec(spikes=False, rate=True))
    with torch.inference_mode():
        seq = model(frames)
        model.reset()
        stepped, rates = [], []
        for f in frames:
            stepped.append(model.step(f))
            rates.append(
                [layer.record.rate.mean().item() for layer in model.spiking_layers().values()]
            )
    stepped = torch.stack(stepped)
    assert seq.shape == (steps, 2, model.config.num_classes)
    assert model.steps_taken == steps > model.config.time_steps
    assert (seq - stepped).abs().max().item() <= 1e-5
    rates = np.asarray(rates)
    assert (rates.mean(axis=0) > 0.02).all()  # every layer fires: the parity is not vacuous
    assert (rates < 1).all()


def test_forward_does_not_touch_the_stepping_state() -> None:
    gen = torch.Generator().manual_seed(11)
    model = small_model("resnet_small")
    randomize_bn(model, gen)
    model.eval()
    frames = spike_frames(model, 4, 1, gen)
    with torch.inference_mode():
        first = [model.step(f) for f in frames[:2]]
        model(frames)
        later = [model.step(f) for f in frames[2:]]
        model.reset()
        ref = [model.step(f) for f in frames]
    torch.testing.assert_close(torch.stack(first + later), torch.stack(ref), atol=0, rtol=0)
    model.reset()
    assert model.steps_taken == 0
    assert all(layer.v is None for layer in model.spiking_layers().values())


def test_step_outputs_carry_no_autograd_state_in_inference_mode() -> None:
    model = small_model("resnet_small").eval()
    x = torch.zeros(1, 2, 64, 64)
    with torch.inference_mode():
        y = model.step(x)
    assert not y.requires_grad and y.is_inference()
    assert all(not layer.v.requires_grad for layer in model.spiking_layers().values())


# --- training ------------------------------------------------------------------------------


def test_bptt_training_lowers_the_loss_and_reaches_every_parameter() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = small_model("resnet_small", width=8, input_size=(16, 16), num_classes=4)
    frames = spike_frames(model, 4, 8, gen)
    labels = torch.arange(8) % 4
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for i in range(12):
        opt.zero_grad()
        loss = F.cross_entropy(model(frames).mean(dim=0), labels)
        loss.backward()
        if i == 0:
            for name, p in model.named_parameters():
                assert p.grad is not None and torch.isfinite(p.grad).all(), name
                assert p.grad.abs().sum() > 0, name  # reaches the stem through every block
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses
    assert model.conv1.bn.num_batches_tracked.item() == 12


def test_eval_forward_is_differentiable_when_grad_is_on() -> None:
    gen = torch.Generator().manual_seed(6)
    model = small_model("resnet_small", width=8, input_size=(16, 16))
    model.eval()
    model(spike_frames(model, 3, 2, gen)).sum().backward()
    assert model.conv1.conv.weight.grad is not None
    assert model.conv1.conv.weight.grad.abs().sum() > 0


# --- probes --------------------------------------------------------------------------------


def test_probes_record_the_last_step_and_selected_neurons() -> None:
    gen = torch.Generator().manual_seed(7)
    model = small_model("resnet_small")
    randomize_bn(model, gen)
    model.eval()
    frames = spike_frames(model, 3, 2, gen)
    idx = [0, 5, 1000, 16 * 32 * 32 - 1]
    model.set_probes(ProbeSpec(spikes=True, rate=True))
    model.set_probes(ProbeSpec(spikes=True, vm=idx, rate=True), layers=["lif1"])  # indices: lif1's
    with torch.inference_mode():
        for f in frames:
            model.step(f)
        selected = {n: layer.record for n, layer in model.spiking_layers().items()}
        model.set_probes(ProbeSpec(spikes=True, vm=True, rate=True))
        model.reset()
        stem_vm = []
        for f in frames:
            model.step(f)
            stem_vm.append(model.lif1.record.vm)
        full = {n: layer.record for n, layer in model.spiking_layers().items()}

    assert full["lif1"].spikes.shape == (2, 16, 32, 32)
    assert full["layer3.0.lif2"].spikes.shape == (2, 64, 8, 8)
    assert full["lif_hidden"].spikes.shape == (2, 64)
    for name, rec in full.items():
        torch.testing.assert_close(rec.rate, rec.spikes.flatten(1).mean(1))
        assert rec.vm.shape == rec.spikes.shape
        torch.testing.assert_close(rec.spikes, (rec.vm > TDBN_NEURON_DEFAULTS["threshold"]).float())
        assert torch.equal(selected[name].spikes, rec.spikes), name
    sel = selected["lif1"]
    assert sel.vm.shape == (2, len(idx))
    torch.testing.assert_close(sel.vm, full["lif1"].vm.flatten(1)[:, idx], atol=0, rtol=0)

    # The stem's membrane, independently: u_t = tau * u_{t-1} * (1 - o_{t-1}) + tdBN(conv(x_t)).
    unit, tau, vth = (
        model.conv1,
        TDBN_NEURON_DEFAULTS["tau_decay"],
        TDBN_NEURON_DEFAULTS["threshold"],
    )
    u = None
    for f, got in zip(frames, stem_vm, strict=True):
        x = bn_reference(F.conv2d(f, unit.conv.weight, stride=2, padding=1), unit.bn)
        u = x if u is None else tau * u * (u <= vth) + x
        torch.testing.assert_close(got.double(), u, atol=1e-5, rtol=0)
    with torch.inference_mode():
        model.set_probes(None)
        model.step(frames[0])
    assert all(layer.record is None for layer in model.spiking_layers().values())


# --- layouts and builders -------------------------------------------------------------------


def _weighted_layers(model: TdbnResNet) -> list[str]:
    """Convs and linears on the main path (projection shortcuts excluded)."""
    return [
        n
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Conv2d | torch.nn.Linear) and "downsample" not in n
    ]


@pytest.mark.parametrize(
    ("builder", "depth", "stages", "hidden", "shapes"),
    [
        (resnet17, 17, [(64, 3), (128, 4)], 256,
         {"lif1": (64, 64, 64), "layer1.0.lif1": (64, 64, 64), "layer2.3.lif2": (128, 32, 32)}),
        (lambda: resnet17(layout=1), 17, [(64, 3), (128, 4)], 256,
         {"lif1": (64, 128, 128), "layer1.0.lif1": (64, 64, 64), "layer2.3.lif2": (128, 32, 32)}),
        (resnet19, 19, [(128, 3), (256, 3), (512, 2)], 256,
         {"lif1": (128, 48, 48), "layer2.0.lif1": (256, 24, 24), "layer3.1.lif2": (512, 12, 12)}),
        (resnet_small, 9, [(16, 1), (32, 1), (64, 1)], 64,
         {"lif1": (16, 32, 32), "layer2.0.lif2": (32, 16, 16), "layer3.0.lif2": (64, 8, 8)}),
    ],
)  # fmt: skip
def test_real_layouts(builder, depth: int, stages: list, hidden: int, shapes: dict) -> None:
    with torch.device("meta"):
        model = builder()
        cfg = model.config
        w, h = cfg.input_size
        model.set_probes(ProbeSpec(spikes=True))
        out = model.step(torch.zeros(1, cfg.in_channels, h, w))
    assert len(_weighted_layers(model)) == depth
    assert [(s[0].conv1.conv.out_channels, len(s)) for s in model.stages()] == stages
    assert model.fc_hidden.out_features == hidden and model.fc.in_features == hidden
    assert out.shape == (1, cfg.num_classes)
    for name, shape in shapes.items():
        assert model.spiking_layers()[name].record.spikes.shape == (1, *shape), name


def test_builder_defaults_and_overrides() -> None:
    with torch.device("meta"):
        m17, m19, small = resnet17(), resnet19(), resnet_small()
        cifar = resnet19(in_channels=3, input_size=(32, 32), time_steps=6, num_classes=100,
                         neuron={"threshold": 0.5})  # fmt: skip
    assert (m17.config.time_steps, m17.config.input_size, m17.config.num_classes) == (
        40, (128, 128), 11)  # fmt: skip
    assert (m19.config.time_steps, m19.config.in_channels, m19.config.width) == (10, 2, 128)
    assert (small.config.time_steps, small.config.input_size, small.config.width) == (
        16, (64, 64), 16)  # fmt: skip
    for m in (m17, m19, small):
        assert m.family == "tdbn" and m.config.neuron == TDBN_NEURON_DEFAULTS
    assert cifar.config.neuron == {**TDBN_NEURON_DEFAULTS, "threshold": 0.5}
    assert cifar.conv1.conv.in_channels == 3 and cifar.fc.out_features == 100
    assert all(layer.threshold == 0.5 for layer in cifar.spiking_layers().values())
    assert all(m.v_th == 0.5 for m in cifar.modules() if isinstance(m, TdBatchNorm))
    assert all(
        layer.tau_decay == TDBN_NEURON_DEFAULTS["tau_decay"]
        for layer in cifar.spiking_layers().values()
    )


def test_config_round_trip_rebuilds_the_same_model() -> None:
    gen = torch.Generator().manual_seed(8)
    model = small_model("resnet17", neuron={"tau_decay": 0.5})
    randomize_bn(model, gen)
    model.eval()
    clone = TdbnResNet(ModelConfig.from_dict(model.config.to_dict()))
    clone.load_state_dict(model.state_dict())
    clone.eval()
    frames = spike_frames(model, 3, 1, gen)
    with torch.inference_mode():
        torch.testing.assert_close(clone(frames), model(frames), atol=0, rtol=0)
    assert clone.config == model.config


def test_bad_configs_and_inputs_are_rejected() -> None:
    with pytest.raises(ValueError, match="unknown tdBN ResNet arch"):
        TdbnResNet(ModelConfig(arch="vgg11"))
    with pytest.raises(ValueError, match="unknown tdBN ResNet arch"):
        default_config("resnet50")
    with pytest.raises(ValueError, match="leak"):
        resnet_small(neuron={"leak": 0.9})
    model = small_model("resnet_small")
    with pytest.raises(ValueError, match=r"\[T, B, C, H, W\]"):
        model(torch.zeros(1, 2, 64, 64))
    with pytest.raises(ValueError, match=r"\[B, C, H, W\]"):
        model.step(torch.zeros(1, 3, 64, 64))


def test_without_normalisation_the_network_has_plain_convs_and_still_steps_like_forward() -> None:
    """``norm="none"``: the collapse demonstration model. No BN tensors at all, the same
    step/forward parity, a checkpointable config, and BNTT refuses it."""
    gen = torch.Generator().manual_seed(12)
    model = small_model("resnet_small", norm="none")
    assert not any(isinstance(m, TdBatchNorm) for m in model.modules())
    assert not any(".bn." in name for name in model.state_dict())
    assert ModelConfig.from_dict(model.config.to_dict()) == model.config
    model.eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0)  # strong enough that spikes reach the classifier
    frames = spike_frames(model, 6, 2, gen)
    with torch.inference_mode():
        seq = model(frames)
        model.reset()
        stepped = torch.stack([model.step(f) for f in frames])
    assert (seq - stepped).abs().max().item() <= 1e-5
    assert seq.abs().sum() > 0
    with pytest.raises(ValueError, match="norm"):
        small_model("resnet_small", norm="batch")
    from dvsapp.snn.vgg import vgg_small

    with pytest.raises(ValueError, match="per-step normalisation"):
        vgg_small(norm="none")
