"""CudaGraphStep: the static-state step equals plain ``model.step`` (on the CPU, every arch,
across resets, BNTT's per-step BN and its beyond-T clamp, probes, thresholds), and on a GPU
the graphed step equals eager steps within 1e-5."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from dvsapp.snn.base import ModelConfig, ProbeSpec, SpikingModel, SpikingNeuron
from dvsapp.snn.bntt import BeyondTrainedStepsError, BnttNorm
from dvsapp.snn.cuda_graph import CudaGraphStep, graphed_step
from dvsapp.snn.resnet import TdbnResNet
from dvsapp.snn.resnet import default_config as resnet_config
from dvsapp.snn.tdbn import TdBatchNorm
from dvsapp.snn.vgg import BnttVGG
from dvsapp.snn.vgg import default_config as vgg_config

T = 4
#: Every arch with its real layout, at small widths and inputs.
SMALL: dict[str, dict] = {
    "resnet17": {"width": 8, "input_size": (32, 32)},
    "resnet19": {"width": 8, "input_size": (16, 16)},
    "resnet_small": {"width": 8, "input_size": (32, 32)},
    "vgg9": {"width": 4, "input_size": (16, 16)},
    "vgg11": {"width": 4, "input_size": (16, 16)},
    "vgg_small": {"width": 4, "input_size": (16, 16)},
}
ARCHS = tuple(SMALL)
needs_cuda = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA GPU on this machine: graph capture untested"
)


def build(arch: str, seed: int = 0, **overrides) -> SpikingModel:
    """An eval-mode model with non-trivial BN statistics and per-step gammas."""
    torch.manual_seed(seed)
    fields = {**SMALL[arch], "time_steps": T, **overrides}
    beyond_t = fields.pop("beyond_t", "clamp")
    if arch.startswith("resnet"):
        model: SpikingModel = TdbnResNet(resnet_config(arch, **fields))
    else:
        model = BnttVGG(vgg_config(arch, preset=None, **fields), beyond_t=beyond_t)
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, TdBatchNorm):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.3)
                m.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(c, generator=gen) * 2 + 1.0)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.2)
            elif isinstance(m, BnttNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(m.weight.shape, generator=gen) * 1.5 + 0.25)
    return model.eval()


def frames(model: SpikingModel, n: int, seed: int = 0, batch: int = 2) -> torch.Tensor:
    """Event-count frames ``[n, B, C, H, W]`` (small non-negative integers)."""
    cfg = model.config
    gen = torch.Generator().manual_seed(seed)
    shape = (n, batch, cfg.in_channels, cfg.input_size[1], cfg.input_size[0])
    return torch.poisson(torch.full(shape, 0.8), generator=gen)


def eager_run(model: SpikingModel, xs: torch.Tensor) -> tuple[list[torch.Tensor], list]:
    """Plain ``model.step`` from a fresh state: outputs, and every layer's (v, o) after."""
    model.reset()
    with torch.inference_mode():
        outs = [model.step(x) for x in xs]
    state = [(la.v.clone(), la.o.clone()) for la in model.spiking_layers().values()]
    return outs, state


def runner_state(model: SpikingModel) -> list:
    return [(la.v.clone(), la.o.clone()) for la in model.spiking_layers().values()]


def assert_same(a: list[torch.Tensor], b: list[torch.Tensor], atol: float = 0.0) -> None:
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        torch.testing.assert_close(x, y, rtol=0, atol=atol, msg=f"step {i}")


def n_steps(model: SpikingModel) -> int:
    return T + 3  # past the trained T: BNTT's clamp, tdBN free-running


@pytest.mark.parametrize("arch", ARCHS)
def test_static_state_path_equals_model_step(arch: str) -> None:
    model = build(arch)
    xs = frames(model, n_steps(model))
    ref, ref_state = eager_run(model, xs)
    assert any(o.sum() > 0 for _, o in ref_state), "the test network never fired"
    runner = CudaGraphStep(model, batch_size=2, use_graph=False)
    outs = [runner.step(x) for x in xs]
    assert_same(outs, ref)
    assert runner.steps_taken == model.steps_taken == len(xs)
    for (v, o), (rv, ro) in zip(runner_state(model), ref_state, strict=True):
        assert torch.equal(v, rv) and torch.equal(o, ro)


@pytest.mark.parametrize("arch", ARCHS)
def test_reset_restarts_like_a_fresh_model(arch: str) -> None:
    model = build(arch)
    first, second = frames(model, n_steps(model), seed=1), frames(model, T, seed=2)
    ref2, _ = eager_run(model, second)
    runner = CudaGraphStep(model, batch_size=2, use_graph=False)
    for x in first:
        runner.step(x)
    runner.reset()
    assert runner.steps_taken == 0
    assert all(la.record is None for la in model.spiking_layers().values())
    assert_same([runner.step(x) for x in second], ref2)


def test_bntt_uses_the_bn_of_each_step_and_clamps_beyond_t() -> None:
    model = build("vgg_small")
    xs = frames(model, T + 3, seed=3)
    ref, _ = eager_run(model, xs)
    # Same frame every step: the outputs differ step to step only through BN_t and the state.
    runner = CudaGraphStep(model, batch_size=2, use_graph=False)
    keys = [runner.graph_key(t) for t in range(T + 3)]
    assert [k[0] for k in keys] == [0, 1, 2, 3, 3, 3, 3]
    assert_same([runner.step(x) for x in xs], ref)
    # A model whose per-step gammas differ gives different outputs than one with BN_0 only.
    flat = build("vgg_small")
    with torch.no_grad():
        for m in flat.modules():
            if isinstance(m, BnttNorm):
                for name in ("weight", "running_mean", "running_var"):
                    getattr(m, name)[1:] = getattr(m, name)[0]
    other, _ = eager_run(flat, xs)
    assert not all(torch.equal(a, b) for a, b in zip(other[1:], ref[1:], strict=True))


def test_bntt_error_policy_raises_where_the_model_does() -> None:
    model = build("vgg_small", beyond_t="error")
    runner = CudaGraphStep(model, batch_size=2, use_graph=False)
    xs = frames(model, T + 1)
    for x in xs[:T]:
        runner.step(x)
    with pytest.raises(BeyondTrainedStepsError):
        runner.step(xs[T])
    assert runner.steps_taken == T
    runner.reset()
    runner.step(xs[0])  # a reset window runs again


def test_tdbn_is_one_graph_for_every_step() -> None:
    runner = CudaGraphStep(build("resnet_small"), use_graph=False)
    assert len({runner.graph_key(t) for t in range(100)}) == 1


def test_graph_key_follows_threshold_and_probes() -> None:
    model = build("resnet_small")
    runner = CudaGraphStep(model, use_graph=False)
    base = runner.graph_key()
    lif = model.lif1
    lif.threshold_scale = 2.0
    scaled = runner.graph_key()
    assert scaled != base
    model.set_probes(ProbeSpec(spikes=True, vm=True, rate=True))
    assert runner.graph_key() not in (base, scaled)
    whole = runner.graph_key()
    model.set_probes(ProbeSpec(vm=[0, 5, 7]), layers=["lif1"])
    selected = runner.graph_key()  # selected neurons are captured too, keyed by the selection
    assert selected is not None and selected not in (base, scaled, whole)
    model.set_probes(ProbeSpec(vm=[0, 5, 8]), layers=["lif1"])
    assert runner.graph_key() not in (selected, None)
    model.set_probes(ProbeSpec(vm=(0, 5, 7)), layers=["lif1"])
    assert runner.graph_key() == selected
    model.set_probes(None)
    lif.threshold_scale = 1.0
    assert runner.graph_key() == base


@pytest.mark.parametrize("arch", ["resnet_small", "vgg_small"])
def test_probe_records_and_threshold_changes_match(arch: str) -> None:
    def run(model: SpikingModel, stepper) -> list:
        recs = []
        for t, x in enumerate(frames(model, T + 2, seed=5)):
            model.spiking_layers()[names[1]].threshold_scale = 0.5 if t >= 2 else 1.0
            stepper(x)
            recs.append({n: la.record for n, la in model.spiking_layers().items() if la.record})
        return recs

    model = build(arch)
    names = list(model.spiking_layers())
    model.set_probes(ProbeSpec(spikes=True, vm=True, rate=True))
    model.set_probes(ProbeSpec(spikes=False, vm=[3, 1, 10**9], rate=True), layers=names[:1])
    model.reset()
    with torch.inference_mode():
        ref = run(model, model.step)
    ref = [{n: (r.spikes, r.vm, r.rate, r.vm_index) for n, r in d.items()} for d in ref]
    runner = CudaGraphStep(model, batch_size=2, use_graph=False)
    got = run(model, runner.step)
    for d_ref, d_got in zip(ref, got, strict=True):
        assert d_ref.keys() == d_got.keys() == set(names)
        for n, r in d_got.items():
            for a, b in zip(d_ref[n], (r.spikes, r.vm, r.rate, r.vm_index), strict=True):
                assert (a is None and b is None) or torch.equal(a, b)


def test_external_model_reset_and_eager_steps_are_followed() -> None:
    model = build("resnet_small")
    xs = frames(model, 6, seed=7)
    ref, _ = eager_run(model, xs)
    runner = CudaGraphStep(model, batch_size=2, use_graph=False)
    runner.step(xs[0])
    model.reset()  # behind the runner's back
    out = [runner.step(x) for x in xs[:3]]
    with torch.inference_mode():
        out += [model.step(x) for x in xs[3:5]]  # eager steps, then the runner again
    out.append(runner.step(xs[5]))
    assert_same(out, ref)
    assert runner.steps_taken == 6


class OffsetLIF(SpikingNeuron):
    """A neuron whose fresh state is not zero: it starts with a potential of 10."""

    def dynamics(self, x, v, o):  # type: ignore[override]
        u = x + 10.0 if v is None else 0.5 * v * (1 - o) + x
        spikes = (u > self.effective_threshold).to(x.dtype)
        return spikes, u, u


class OffsetNet(SpikingModel):
    family = "tdbn"

    def __init__(self) -> None:
        super().__init__(ModelConfig("offset", num_classes=3, in_channels=1,
                                     input_size=(4, 4), width=2, time_steps=3))  # fmt: skip
        self.conv = nn.Conv2d(1, 2, 1)
        self.lif = OffsetLIF(1.0)
        self.fc = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.lif(self.conv(x.flatten(0, 1)).unflatten(0, x.shape[:2])).flatten(2))

    def step(self, x_t: torch.Tensor) -> torch.Tensor:
        self.steps_taken += 1
        return self.fc(self.lif.step(self.conv(x_t)).flatten(1))


def test_neurons_whose_zero_state_is_not_fresh_step_from_none_after_reset() -> None:
    torch.manual_seed(0)
    model = OffsetNet().eval()
    xs = torch.rand(4, 1, 1, 4, 4)
    ref, _ = eager_run(model, xs)
    runner = CudaGraphStep(model, use_graph=False)
    assert not runner.zero_state_is_fresh
    for _ in range(2):
        assert_same([runner.step(x) for x in xs], ref)
        runner.reset()
    wrong = CudaGraphStep(model, use_graph=False, zero_state_is_fresh=True)
    assert not torch.equal(wrong.step(xs[0]), ref[0])


def test_refuses_training_mode_and_cpu_graphs() -> None:
    model = build("vgg_small")
    with pytest.raises(ValueError, match="CUDA"):
        CudaGraphStep(model, use_graph=True, device="cpu")
    runner = CudaGraphStep(model, use_graph=False)
    with pytest.raises(ValueError, match="shape"):
        runner.step(torch.zeros(1, 2, 8, 8))
    model.train()
    with pytest.raises(RuntimeError, match="eval"):
        runner.step(torch.zeros(1, 2, 16, 16))
    with pytest.raises(ValueError, match="eval"):
        CudaGraphStep(model, use_graph=False)


# -- on a GPU -------------------------------------------------------------------------------


@needs_cuda
@pytest.mark.parametrize("arch", ARCHS)
def test_graphed_step_equals_eager_steps(arch: str) -> None:
    model = build(arch).cuda()
    xs = frames(model, n_steps(model), seed=11).cuda()
    ref, ref_state = eager_run(model, xs)
    runner = graphed_step(model, xs[0])
    assert runner.n_graphs == (1 if arch.startswith("resnet") else T)
    for _ in range(2):  # and again after a reset
        assert_same([runner.step(x) for x in xs], ref, atol=1e-5)
        for (v, o), (rv, ro) in zip(runner_state(model), ref_state, strict=True):
            torch.testing.assert_close(v, rv, rtol=0, atol=1e-5)
            torch.testing.assert_close(o, ro, rtol=0, atol=0)
        runner.reset()
    assert runner.stats.replays == 2 * len(xs) and runner.stats.eager_steps == 0
    # model.reset() and eager steps behind the runner's back are followed by the graphs.
    runner.step(xs[0])
    model.reset()
    out = [runner.step(x) for x in xs[:2]]
    with torch.inference_mode():
        out.append(model.step(xs[2]))
    out += [runner.step(x) for x in xs[3:]]
    assert_same(out, ref, atol=1e-5)


@needs_cuda
@pytest.mark.parametrize("arch", ["resnet_small", "vgg_small"])
def test_graphed_probes_thresholds_and_weight_changes(arch: str) -> None:
    model = build(arch).cuda()
    xs = frames(model, T + 2, seed=12).cuda()
    model.set_probes(ProbeSpec(spikes=True, vm=True, rate=True))
    lif = next(iter(model.spiking_layers().values()))

    def run(stepper) -> list:
        out = []
        for t, x in enumerate(xs):
            lif.threshold_scale = 1.5 if t >= 2 else 1.0
            y = stepper(x)
            rec = lif.record
            out.append((y, rec.spikes.clone(), rec.vm.clone(), rec.rate.clone()))
        return out

    model.reset()
    with torch.inference_mode():
        ref = run(model.step)
    runner = CudaGraphStep(model, batch_size=2)
    got = run(runner.step)
    for a, b in zip(ref, got, strict=True):
        for x, y in zip(a, b, strict=True):
            torch.testing.assert_close(x, y, rtol=0, atol=1e-5)
    assert runner.stats.captures >= 2 and runner.stats.eager_steps == 0
    # In-place weight change (as load_state_dict does): the graphs follow.
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.9)
    runner.reset()
    model.set_probes(None)
    lif.threshold_scale = 1.0
    ref, _ = eager_run(model, xs)
    runner.reset()
    assert_same([runner.step(x) for x in xs], ref, atol=1e-5)
    assert runner.stats.invalidations >= 1


@needs_cuda
@pytest.mark.parametrize("arch", ["resnet_small", "vgg_small"])
def test_graphed_selected_neuron_vm_probes(arch: str) -> None:
    """The app traces chosen neurons' Vm on every step: those steps replay graphs too (the
    index tensor is built by the warm-up), and a new selection gets its own graph."""
    model = build(arch).cuda()
    xs = frames(model, T + 2, seed=13).cuda()
    names = list(model.spiking_layers())

    def run(stepper, selection: list[int]) -> list:
        model.set_probes(ProbeSpec(spikes=True, rate=True))
        model.set_probes(ProbeSpec(spikes=True, vm=selection, rate=True), layers=names[:2])
        out = []
        for x in xs:
            y = stepper(x)
            rec = model.spiking_layers()[names[1]].record
            out.append((y, rec.vm.clone(), rec.vm_index.clone(), rec.spikes.clone()))
        return out

    runner = CudaGraphStep(model, batch_size=2)
    for selection in ([3, 1, 10**9], [2, 4]):
        model.reset()
        with torch.inference_mode():
            ref = run(model.step, selection)
        runner.reset()
        got = run(runner.step, selection)
        for a, b in zip(ref, got, strict=True):
            for x, y in zip(a, b, strict=True):
                torch.testing.assert_close(x, y, rtol=0, atol=1e-5)
    assert runner.stats.eager_steps == 0 and runner.stats.replays == 2 * len(xs)
    assert runner.n_graphs == (2 if arch.startswith("resnet") else 2 * T)
