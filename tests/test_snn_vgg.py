"""BNTT VGG family: neuron equations, surrogate, per-step BN, step/forward parity, the
official forward loop as reference, the beyond-T policy, gamma early exit, BPTT, probes."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from dvsapp.snn.base import ModelConfig, ProbeSpec
from dvsapp.snn.bntt import (
    BeyondTrainedStepsError,
    BnttLIF,
    BnttNorm,
    mean_gamma_per_step,
    temporal_exit_step,
    triangle_spike,
)
from dvsapp.snn.vgg import VGG_ARCHS, BnttVGG, default_config, vgg9, vgg11, vgg_small

BUILDERS = {"vgg9": vgg9, "vgg11": vgg11, "vgg_small": vgg_small}
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here"),
    ),
]


def tiny(arch: str, time_steps: int = 5, **kw) -> BnttVGG:
    """A narrow member of ``arch`` on 2x16x16 frames (fast on a small CPU)."""
    torch.manual_seed(0)
    args = dict(in_channels=2, num_classes=5, input_size=(16, 16), width=4)
    args.update(kw)
    return BUILDERS[arch](preset=None, time_steps=time_steps, **args)


def frames(model: BnttVGG, steps: int, batch: int = 2, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c, h, w = model.config.in_channels, model.config.input_size[1], model.config.input_size[0]
    return (torch.rand(steps, batch, c, h, w, generator=g) < 0.3).float()


def norms(model: torch.nn.Module) -> list[BnttNorm]:
    return [m for m in model.modules() if isinstance(m, BnttNorm)]


def randomize_bn(model: BnttVGG, x: torch.Tensor, seed: int = 2) -> BnttVGG:
    """Running stats from one batch (momentum 1), then jittered; gammas random per step."""
    g = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for m in norms(model):
            m.momentum = 1.0
        model(x)
        for m in norms(model):
            m.momentum = 0.1
            m.running_var.mul_(torch.empty_like(m.running_var).uniform_(0.5, 2.0, generator=g))
            noise = torch.randn(m.running_mean.shape, generator=g)
            m.running_mean.add_(0.3 * m.running_var.sqrt() * noise)
            m.weight.uniform_(0.5, 2.5, generator=g)
    return model.eval()


def run_steps(model: BnttVGG, x: torch.Tensor) -> torch.Tensor:
    model.reset()
    return torch.stack([model.step(x_t) for x_t in x])


# ---------------------------------------------------------------- neuron and surrogate


def test_lif_follows_equations_on_hand_computed_sequence() -> None:
    lif = BnttLIF(leak=0.5, threshold=1.0)
    inputs = [0.6, 0.6, 0.9, 0.0, 2.5, 0.0]
    # u = 0.5 u + x; spike when u > 1; soft reset subtracts 1 (a hard reset would zero).
    charged = [0.6, 0.9, 1.35, 0.175, 2.5875, 0.79375]
    spikes = [0, 0, 1, 0, 1, 0]
    after = [0.6, 0.9, 0.35, 0.175, 1.5875, 0.79375]
    lif.probe = ProbeSpec(spikes=True, vm=True, rate=True)
    for x, u, s, v in zip(inputs, charged, spikes, after, strict=True):
        out = lif.step(torch.tensor([[x]]))
        assert out.item() == s
        assert lif.record is not None and lif.record.vm is not None
        assert lif.record.vm.item() == pytest.approx(u, abs=1e-6)
        assert lif.v is not None and lif.v.item() == pytest.approx(v, abs=1e-6)
    seq = lif(torch.tensor(inputs).view(-1, 1, 1))  # multi-step from a fresh state
    assert seq.flatten().tolist() == spikes


def test_lif_fires_strictly_above_the_effective_threshold() -> None:
    lif = BnttLIF(leak=0.9, threshold=1.0)
    x = torch.tensor([0.5, 1.0, 1.0001, 1.5, 2.5])
    assert lif.dynamics(x, None, None)[0].tolist() == [0, 0, 1, 1, 1]
    lif.threshold_scale = 2.0
    s, _, v = lif.dynamics(x, None, None)
    assert s.tolist() == [0, 0, 0, 0, 1]
    assert v[-1].item() == pytest.approx(0.5)  # soft reset by the effective threshold


def test_surrogate_is_the_triangle_with_factor_0_3() -> None:
    x = torch.linspace(-2.0, 2.0, 41, requires_grad=True)
    y = triangle_spike(x, 0.3)
    assert torch.equal(y.detach(), (x > 0).float())
    y.sum().backward()
    expected = 0.3 * torch.clamp(1.0 - x.detach().abs(), min=0.0)
    torch.testing.assert_close(x.grad, expected)
    assert x.grad[20].item() == pytest.approx(0.3)  # peak at the threshold, zero past +-1


def test_lif_gradient_follows_the_official_chain() -> None:
    """Official: spike_fn(u / Vth - 1), so d o / d u = 0.3 / Vth * max(0, 1 - |u / Vth - 1|)."""
    for vth in (1.0, 2.0):
        u = torch.linspace(-1.0, 5.0, 61, requires_grad=True)
        s, _, _ = BnttLIF(leak=0.95, threshold=vth).dynamics(u, None, None)
        s.sum().backward()
        ud = u.detach()
        expected = 0.3 / vth * torch.clamp(1.0 - (ud / vth - 1.0).abs(), min=0.0)
        torch.testing.assert_close(u.grad, expected)


def test_soft_reset_carries_no_gradient() -> None:
    x = torch.tensor([1.5], requires_grad=True)
    lif = BnttLIF(leak=1.0, threshold=1.0, surrogate_factor=0.3)
    _, _, v = lif.dynamics(x, None, None)
    v.sum().backward()
    assert x.grad is not None and x.grad.item() == pytest.approx(1.0)


# ---------------------------------------------------------------- per-step BN


def test_bntt_norm_sequence_equals_one_batchnorm_per_step() -> None:
    torch.manual_seed(3)
    norm = BnttNorm(3, time_steps=4)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    y = torch.randn(3, 5, 3, 4, 4) * 2 + 1  # three of the four steps
    out = norm(y)
    ref_bns = [torch.nn.BatchNorm2d(3, eps=1e-4, momentum=0.1) for _ in range(3)]
    for t, bn in enumerate(ref_bns):
        with torch.no_grad():
            bn.weight.copy_(norm.weight[t])
            bn.bias.zero_()
        torch.testing.assert_close(out[t], bn(y[t]), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(norm.running_mean[t], bn.running_mean)
        torch.testing.assert_close(norm.running_var[t], bn.running_var)
    assert torch.equal(norm.running_mean[3], torch.zeros(3))  # step 3 untouched
    assert "bias" not in dict(norm.named_parameters())
    norm.eval()
    for t, bn in enumerate(ref_bns):
        bn.eval()
        torch.testing.assert_close(norm.step(y[t], t), bn(y[t]), atol=1e-5, rtol=1e-5)


def test_eval_fold_cache_follows_weight_changes_and_mode() -> None:
    torch.manual_seed(4)
    norm = BnttNorm(2, time_steps=2).eval()
    y = torch.randn(3, 2, 5)
    with torch.inference_mode():
        first = norm.step(y, 1)
    with torch.no_grad():
        norm.weight.mul_(3.0)  # in place: bumps the version counter
        assert torch.allclose(norm.step(y, 1), 3.0 * first, atol=1e-6)
        norm.running_mean[1].fill_(0.5)
        expected = 3.0 * (y - 0.5) / torch.sqrt(torch.tensor(1.0 + 1e-4))
        torch.testing.assert_close(norm.step(y, 1), expected)
    # With a gradient wanted, eval BN is differentiable in gamma (no cached constants).
    norm.step(y, 1).sum().backward()
    assert norm.weight.grad is not None and norm.weight.grad[1].abs().sum() > 0
    assert torch.equal(norm.weight.grad[0], torch.zeros(2))


@pytest.mark.parametrize("arch", VGG_ARCHS)
def test_step_t_uses_bn_t(arch: str) -> None:
    model = tiny(arch)
    x = frames(model, 5)
    randomize_bn(model, x)
    with torch.no_grad():
        before = model(x)
        for m in norms(model):
            m.running_mean[3].add_(0.5)
            m.weight[3].mul_(1.7)
        after = model(x)
        stepped = run_steps(model, x)
    assert torch.equal(before[:3], after[:3])
    assert not torch.allclose(before[3], after[3])
    assert torch.equal(stepped, after)


def test_training_forward_step_t_gets_only_its_own_gamma_and_stats() -> None:
    model = tiny("vgg_small").train()
    x = frames(model, 3)
    out = model(x)  # 3 of 5 steps: BN_3, BN_4 keep their initial statistics
    out[:2].sum().backward()  # outputs of steps 0 and 1 only
    for m in norms(model):
        assert m.weight.grad is not None
        assert torch.equal(m.weight.grad[2:], torch.zeros_like(m.weight.grad[2:]))
        assert torch.equal(m.running_mean[3:], torch.zeros_like(m.running_mean[3:]))
        assert torch.equal(m.running_var[3:], torch.ones_like(m.running_var[3:]))
        assert (m.running_mean[:3] != 0).any()
    assert any(m.weight.grad[:2].abs().sum() > 0 for m in norms(model))


# ---------------------------------------------------------------- parity and reference


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("arch", VGG_ARCHS)
def test_eval_steps_equal_forward(arch: str, device: str) -> None:
    model = tiny(arch)
    x = frames(model, 5, batch=2)
    randomize_bn(model, x)
    model.to(device)
    x = x.to(device)
    model.set_probes(ProbeSpec(spikes=False, vm=False, rate=True))
    fired = {name: 0.0 for name in model.spiking_layers()}
    with torch.no_grad():
        seq = model(x)
    with torch.inference_mode():
        model.reset()
        outs = []
        for x_t in x:
            outs.append(model.step(x_t))
            for name, layer in model.spiking_layers().items():
                assert layer.record is not None and layer.record.rate is not None
                fired[name] += float(layer.record.rate.sum())
        stepped = torch.stack(outs)
    assert seq.shape == (5, 2, 5)
    assert (seq - stepped).abs().max().item() <= 1e-5
    assert seq.abs().max() > 0
    assert all(v > 0 for v in fired.values()), fired  # every layer spiked: a real check


def test_forward_leaves_the_streaming_state_alone() -> None:
    model = tiny("vgg_small")
    x = frames(model, 5)
    randomize_bn(model, x)
    with torch.no_grad():
        whole = run_steps(model, x)
        model.reset()
        first = [model.step(x[0]), model.step(x[1])]
        model(x)  # a sequence forward in the middle of a stream
        rest = [model.step(x_t) for x_t in x[2:]]
    assert torch.equal(torch.stack(first + rest), whole)


#: The official networks' conv channels, pool after each conv ("A" 2x2, "G" global, "" none)
#: and hidden fc width, transcribed from SNN_VGG9_BNTT / SNN_VGG11_BNTT.
OFFICIAL = {
    "vgg9": ([64, 64, 128, 128, 256, 256, 256], ["", "A", "", "A", "", "", "A"], 1024),
    "vgg11": (
        [64, 128, 256, 256, 512, 512, 512, 512],
        ["A", "A", "", "A", "", "A", "", "G"],
        4096,
    ),
}


def official_forward(model: BnttVGG, x: torch.Tensor, training: bool) -> torch.Tensor:
    """The official BNTT forward loop (frames instead of Poisson coding), on the model's
    tensors: returns mem_fc2 / num_steps; running statistics live in copies."""
    channels, pools, hidden = OFFICIAL[model.config.arch]
    leak, vth = model.config.neuron["leak"], model.config.neuron["threshold"]
    convs = [b.conv.weight for b in model.features]
    assert [w.shape[0] for w in convs] == channels
    assert model.fc1.fc.weight.shape[0] == hidden
    bn_layers = [b.bntt for b in model.features] + [model.fc1.bntt]
    stats = [
        ([m.running_mean[t].clone() for t in range(len(x))],
         [m.running_var[t].clone() for t in range(len(x))])
        for m in bn_layers
    ]  # fmt: skip

    def bn(i: int, t: int, y: torch.Tensor) -> torch.Tensor:
        rm, rv = stats[i]
        return F.batch_norm(y, rm[t], rv[t], bn_layers[i].weight[t], None, training, 0.1, 1e-4)

    batch = x.shape[1]
    mem: list[torch.Tensor | float] = [0.0] * (len(convs) + 1)
    mem_fc2 = torch.zeros(batch, model.config.num_classes)
    for t in range(len(x)):
        out_prev = x[t]
        for i, w in enumerate(convs):
            mem[i] = leak * mem[i] + bn(i, t, F.conv2d(out_prev, w, padding=1))
            mem_thr = mem[i] / vth - 1.0
            out_prev = (mem_thr > 0).float()
            mem[i] = mem[i] - (mem_thr > 0).float() * vth
            if pools[i] == "A":
                out_prev = F.avg_pool2d(out_prev, 2)
            elif pools[i] == "G":
                out_prev = F.adaptive_avg_pool2d(out_prev, 1)
        out_prev = out_prev.reshape(batch, -1)
        j = len(convs)
        mem[j] = leak * mem[j] + bn(j, t, F.linear(out_prev, model.fc1.fc.weight))
        mem_thr = mem[j] / vth - 1.0
        out = (mem_thr > 0).float()
        mem[j] = mem[j] - out * vth
        mem_fc2 = mem_fc2 + F.linear(out, model.fc2.weight)
    stats_after = [(torch.stack(rm), torch.stack(rv)) for rm, rv in stats]
    model._reference_stats = stats_after  # type: ignore[attr-defined]
    return mem_fc2 / len(x)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("arch", ["vgg9", "vgg11"])
def test_matches_the_official_forward_loop(arch: str, training: bool) -> None:
    model = tiny(arch, time_steps=3, width=64, num_classes=10)
    x = frames(model, 3, batch=4)
    randomize_bn(model, x)
    model.train(training)
    with torch.no_grad():
        ref = official_forward(model, x, training)
        ours = model(x)
    assert ours.shape == (3, 4, 10)
    torch.testing.assert_close(ours.mean(0), ref, atol=1e-5, rtol=1e-5)
    assert ref.abs().max() > 0
    if training:  # running statistics updated per step as the official BNs do
        for m, (rm, rv) in zip(norms(model), model._reference_stats, strict=True):
            torch.testing.assert_close(m.running_mean, rm, atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(m.running_var, rv, atol=1e-6, rtol=1e-5)


# ---------------------------------------------------------------- beyond the trained T


def test_beyond_t_clamp_equals_repeating_the_last_bn() -> None:
    short = tiny("vgg_small", time_steps=3)
    x = frames(short, 6)
    randomize_bn(short, x[:3])
    long = tiny("vgg_small", time_steps=6)
    sd = short.state_dict()
    for k, v in sd.items():
        if k.endswith(("bntt.weight", "bntt.running_mean", "bntt.running_var")):
            sd[k] = torch.cat([v, v[-1:].expand(3, -1)])
    long.load_state_dict(sd)
    long.eval()
    assert short.beyond_t == "clamp"
    with torch.no_grad():
        ref = long(x)
        torch.testing.assert_close(short(x), ref, atol=0, rtol=0)
        torch.testing.assert_close(run_steps(short, x), ref, atol=0, rtol=0)


def test_beyond_t_error_raises_clearly() -> None:
    model = tiny("vgg_small", time_steps=3, beyond_t="error").eval()
    x = frames(model, 4)
    with torch.no_grad():
        for x_t in x[:3]:
            model.step(x_t)
        with pytest.raises(BeyondTrainedStepsError, match="T=3"):
            model.step(x[3])
        with pytest.raises(BeyondTrainedStepsError):
            model(x)
        model.reset()
        model.step(x[0])  # a reset restarts the window
    model.beyond_t = "clamp"
    model.train()
    with pytest.raises(BeyondTrainedStepsError, match="training"):
        model(x)  # no statistics to train for step 4
    with pytest.raises(ValueError):
        model.beyond_t = "wrap"


# ---------------------------------------------------------------- temporal early exit


def test_gamma_exit_from_a_hand_made_state_dict() -> None:
    sd = {
        "features.0.conv.weight": torch.ones(2, 2, 3, 3),
        "features.0.bntt.weight": torch.tensor([[1.0, 1.0], [0.5, 0.5], [0.3, 0.1]]),
        "features.0.bntt.running_var": torch.full((3, 2), 9.0),
        "fc1.bntt.weight": torch.tensor([[1.0, 1.0, 1.0], [0.3, 0.3, 0.3], [0.0, 0.0, 0.0]]),
        "fc2.weight": torch.zeros(5, 3),
    }
    torch.testing.assert_close(mean_gamma_per_step(sd), torch.tensor([1.0, 0.4, 0.1]))
    assert temporal_exit_step(sd, 0.5) == 2  # step 2 is the first below 0.5
    assert temporal_exit_step(sd, 0.4) == 3  # 0.4 is not below 0.4
    assert temporal_exit_step(sd, 2.0) == 1
    assert temporal_exit_step(sd, 0.05) == 3  # never: run all T
    with pytest.raises(ValueError):
        mean_gamma_per_step({"fc2.weight": torch.zeros(5, 3)})


def test_gamma_exit_from_a_model_equals_from_its_state_dict() -> None:
    model = tiny("vgg9", time_steps=4)
    with torch.no_grad():
        for i, m in enumerate(norms(model)):
            m.weight.copy_(torch.tensor([1.0, 0.8, 0.4, 0.2]).unsqueeze(1) + 0.01 * i)
    gamma = mean_gamma_per_step(model)
    torch.testing.assert_close(gamma, mean_gamma_per_step(model.state_dict()))
    assert temporal_exit_step(model, 0.5) == temporal_exit_step(model.state_dict(), 0.5) == 3


# ---------------------------------------------------------------- training and probes


def test_bptt_training_lowers_the_loss() -> None:
    model = tiny("vgg_small", time_steps=4).train()
    x = frames(model, 4, batch=8, seed=5)
    labels = torch.randint(0, 5, (8,), generator=torch.Generator().manual_seed(6))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = F.cross_entropy(model(x).mean(0), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_probes_record_spikes_vm_and_rate() -> None:
    model = tiny("vgg_small")
    x = frames(model, 2, batch=3)
    randomize_bn(model, x)
    model.set_probes(ProbeSpec(spikes=True, vm=True, rate=True))
    layers = model.spiking_layers()
    assert list(layers) == ["features.0.lif", "features.1.lif", "features.2.lif", "fc1.lif"]
    shapes = [(3, 4, 16, 16), (3, 8, 8, 8), (3, 8, 4, 4), (3, 32)]
    block0 = model.features[0]
    with torch.no_grad():
        model.reset()
        model.step(x[0])
        rec0 = layers["features.0.lif"].record
        assert rec0 is not None and rec0.vm is not None and rec0.spikes is not None
        bn0 = block0.bntt
        u0 = F.batch_norm(
            F.conv2d(x[0], block0.conv.weight, padding=1), bn0.running_mean[0],
            bn0.running_var[0], bn0.weight[0], None, False, 0.1, 1e-4,
        )  # fmt: skip
        torch.testing.assert_close(rec0.vm, u0, atol=1e-5, rtol=1e-5)
        s0 = rec0.spikes
        model.step(x[1])  # step 1: leak the reset state and use BN_1
        u1 = 0.95 * (u0 - s0) + F.batch_norm(
            F.conv2d(x[1], block0.conv.weight, padding=1), bn0.running_mean[1],
            bn0.running_var[1], bn0.weight[1], None, False, 0.1, 1e-4,
        )  # fmt: skip
    rec = layers["features.0.lif"].record
    assert rec is not None and rec.vm is not None and rec.spikes is not None
    torch.testing.assert_close(rec.vm, u1, atol=1e-5, rtol=1e-5)
    assert torch.equal(rec.spikes, (rec.vm > 1.0).float())
    for (name, layer), shape in zip(layers.items(), shapes, strict=True):
        r = layer.record
        assert r is not None and r.spikes is not None and r.vm is not None and r.rate is not None
        assert tuple(r.spikes.shape) == shape == tuple(r.vm.shape), name
        torch.testing.assert_close(r.rate, r.spikes.flatten(1).mean(1))
    model.set_probes(ProbeSpec(spikes=False, vm=[0, 17, 31], rate=False), ["fc1.lif"])
    with torch.no_grad():
        model.step(x[0])
    r = layers["fc1.lif"].record
    assert r is not None and r.vm is not None and r.spikes is None and r.rate is None
    assert tuple(r.vm.shape) == (3, 3)
    model.set_probes(None)
    with torch.no_grad():
        model.step(x[0])
    assert all(layer.record is None for layer in layers.values())


# ---------------------------------------------------------------- builders and config


def test_builders_defaults_and_official_sizes() -> None:
    m = vgg9(preset="cifar10")
    assert (m.config.in_channels, m.config.input_size, m.config.time_steps) == (3, (32, 32), 25)
    assert m.config.num_classes == 10 and m.family == "bntt"
    assert m.config.neuron == {"leak": 0.95, "threshold": 1.0, "surrogate_factor": 0.3}
    assert m.fc1.fc.in_features == (32 // 8) ** 2 * 256  # official (img_size//8)**2 * 256
    convs = 3 * 64 + 64 * 64 + 64 * 128 + 128 * 128 + 128 * 256 + 2 * 256 * 256
    weights = 9 * convs + 4096 * 1024 + 1024 * 10
    gammas = 25 * (64 + 64 + 128 + 128 + 3 * 256 + 1024)
    assert sum(p.numel() for p in m.parameters()) == weights + gammas
    assert vgg9().config.time_steps == 20 and vgg9().config.in_channels == 2
    small = vgg_small(neuron={"leak": 0.99})
    assert small.config.neuron["leak"] == 0.99 and small.features[0].lif.leak == 0.99
    assert (small.config.in_channels, small.config.input_size) == (2, (32, 32))
    with pytest.raises(ValueError, match="unknown BNTT neuron"):
        vgg_small(neuron={"tau": 2.0})
    with pytest.raises(ValueError, match="arch"):
        BnttVGG(ModelConfig(arch="resnet19"))
    with pytest.raises(ValueError, match="at least 16"):
        vgg11(input_size=(8, 8))


@pytest.mark.parametrize("arch", VGG_ARCHS)
def test_default_config_is_what_the_builder_builds(arch: str) -> None:
    kw = {"num_classes": 7, "neuron": {"leak": 0.99}, "beyond_t": "error"}
    for preset in (None, "cifar10"):
        config = default_config(arch, preset=preset, **kw)
        model = BUILDERS[arch](preset=preset, **kw)
        assert config == model.config and model.beyond_t == "error"
        assert config.neuron == {"leak": 0.99, "threshold": 1.0, "surrogate_factor": 0.3}
    assert default_config(arch) == BUILDERS[arch]().config
    with pytest.raises(ValueError, match="preset"):
        default_config(arch, preset="imagenet")


def test_config_round_trip_rebuilds_the_same_network() -> None:
    model = tiny("vgg11", input_size=(32, 16))
    x = frames(model, 5)
    randomize_bn(model, x)
    clone = BnttVGG(ModelConfig.from_dict(model.config.to_dict()))
    clone.load_state_dict(model.state_dict())
    clone.eval()
    with torch.no_grad():
        assert torch.equal(clone(x), model(x))
    with pytest.raises(ValueError, match="expected frames"):
        model.step(x[0, :, :, :8])
    assert copy.deepcopy(model).beyond_t == "clamp"
