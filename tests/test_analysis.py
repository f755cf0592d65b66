"""The in-depth probes (dvsapp.snn.analysis.Analyzer) against independent references: Vm
histograms against numpy.histogram of the recorded Vm maps, channel activity against the
recorded spike maps, synaptic operations and activation sparsity against the neurobench
package (its metrics on the snnTorch original of the NeuroBench DVS Gesture network; its
per-layer counter on our tdBN ResNet, whose folded convolutions its hooks cannot see), and a
model stepping bit for bit as before once the probes are removed.

Every test runs twice: with the compiled CPU kernels (numba, the default on a CPU) and with
the torch/numpy path that other devices and dtypes take."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dvsapp.snn.analysis import Analyzer as _Analyzer
from dvsapp.snn.analysis import vm_edges
from dvsapp.snn.analysis.records import NEAR_FRACTION
from dvsapp.snn.base import ProbeSpec, SpikingModel
from dvsapp.snn.registry import build_model, default_config

torch.set_num_threads(1)

_COMPILED = [True]


@pytest.fixture(autouse=True, params=[True, False], ids=["compiled", "torch"])
def _path(request):
    """Run the test with the compiled kernels, then without."""
    if request.param:
        pytest.importorskip("numba")
    _COMPILED[0] = request.param
    yield request.param
    _COMPILED[0] = True


def Analyzer(*args, **kwargs) -> _Analyzer:
    """The analyzer on this run's path (:func:`_path`)."""
    an = _Analyzer(*args, compiled=_COMPILED[0], **kwargs)
    return an


def _model(**overrides) -> SpikingModel:
    torch.manual_seed(0)
    model = build_model(default_config("resnet_small", input_size=(32, 32), **overrides))
    return model.eval()


def _shapes(model: SpikingModel, frame: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Each spiking layer's per-sample map shape, from one probed step."""
    saved = {n: lay.probe for n, lay in model.spiking_layers().items()}
    model.set_probes(ProbeSpec(spikes=True, vm=False, rate=False))
    with torch.inference_mode():
        model.step(frame)
    shapes = {n: tuple(lay.record.spikes.shape[1:]) for n, lay in model.spiking_layers().items()}
    for n, lay in model.spiking_layers().items():
        lay.probe = saved[n]
    model.reset()
    return shapes


def _frames(n: int, shape: tuple[int, ...], rate: float = 0.3, seed: int = 0) -> torch.Tensor:
    """Poisson event counts (up to a few per pixel: not binary)."""
    g = torch.Generator().manual_seed(seed)
    return torch.poisson(torch.full((n, 1, *shape), rate), generator=g)


def test_vm_histograms_match_numpy_and_follow_the_threshold_scale():
    model = _model()
    x = _frames(4, (2, 32, 32), rate=0.5)
    model.set_probes(ProbeSpec(spikes=True, vm=True))
    an = Analyzer(model, _shapes(model, x[0]), torch.device("cpu"))
    an.install()
    layers = model.spiking_layers()
    layers["layer1.0.lif1"].threshold_scale = 0.5
    with torch.inference_mode():
        for t, x_t in enumerate(x, start=1):
            model.step(x_t)
            res = an.collect(t)
            assert set(res.vm) == set(layers)
            for name, layer in layers.items():
                st = res.vm[name]
                vm = layer.record.vm.double().numpy().reshape(-1)
                edges = vm_edges(layer.threshold)
                ref, _ = np.histogram(vm, bins=np.concatenate(([-np.inf], edges, [np.inf])))
                assert st.counts.sum() == st.neurons == vm.size
                # float32 rounding may move a Vm within 1e-4 bin widths of an edge (a tie)
                tie = 1e-4 * (edges[1] - edges[0])
                ties = int((np.abs(vm[:, None] - edges[None, :]) <= tie).any(1).sum())
                assert np.abs(st.counts - ref).sum() <= 2 * ties, name
                now = layer.threshold * layer.threshold_scale
                assert st.threshold_now == pytest.approx(now)
                near = np.abs(vm - now) <= NEAR_FRACTION * abs(now)
                band = now + np.array([-1, 1]) * NEAR_FRACTION * abs(now)
                ties += int((np.abs(vm[:, None] - band[None, :]) <= tie).any(1).sum())
                assert abs(st.near - near.mean()) * vm.size <= ties + 1e-6
                assert st.mean == pytest.approx(vm.mean(), abs=1e-6)
                assert st.std == pytest.approx(vm.std(), abs=1e-5)
                assert (st.min, st.max) == (vm.min(), vm.max())
    assert res.vm["layer1.0.lif1"].threshold_now == pytest.approx(0.5 * 0.2)
    assert res.vm["lif1"].threshold_now == pytest.approx(0.2)
    assert res.vm["lif1"].near > 0  # the data exercises the near count


def test_silent_and_saturated_channels_match_the_spike_maps():
    model = _model(norm="none")
    with torch.no_grad():  # dead channels: no weights into them (and no bias without norm)
        model.conv1.conv.weight[:5] = 0
        model.fc_hidden.weight.zero_()  # a silent 1-D last layer is no channel of the one before
        model.fc_hidden.bias.zero_()
    x = _frames(12, (2, 32, 32), rate=0.8, seed=1)
    model.set_probes(ProbeSpec(spikes=True))
    an = Analyzer(model, _shapes(model, x[0]), torch.device("cpu"))
    an.install()
    window = 5
    maps: dict[str, list[np.ndarray]] = {}
    with torch.inference_mode():
        for i, x_t in enumerate(x):
            step = i % window + 1
            if step == 1:
                maps = {}
            model.step(x_t)
            res = an.collect(step)
            for name, layer in model.spiking_layers().items():
                if layer.record.spikes.dim() != 4:
                    assert name not in res.channels
                    continue
                maps.setdefault(name, []).append(layer.record.spikes[0].numpy())
                stack = np.stack(maps[name])  # [t, C, H, W]
                now = stack[-1].mean((1, 2))
                rates = stack.mean((0, 2, 3))
                ch = res.channels[name]
                np.testing.assert_allclose(ch.rates, now, atol=1e-6)
                np.testing.assert_allclose(ch.window_rates, rates, atol=1e-6)
                assert ch.silent == int((stack.sum((0, 2, 3)) == 0).sum()), name
                assert ch.saturated == int((rates >= 0.9).sum())
            assert res.channels["lif1"].silent >= 5


def test_synaptic_operations_and_sparsity_of_our_resnet_equal_neurobench_per_layer():
    """NeuroBench's hooks cannot count this model's convolutions (the tdBN ResNet runs its
    conv units' folded weights through ``F.conv2d``, never calling the ``nn.Conv2d``
    modules its hooks sit on), so the reference is NeuroBench's own per-layer counter,
    ``single_layer_MACs``, on each layer's actual input of the step (the frame, a spiking
    layer's map, or the pooled map for ``fc_hidden``). Activation sparsity: NeuroBench's
    ``ActivationSparsity`` with our neuron class added as an activation module, over
    ``model.forward`` on the same frames."""
    pytest.importorskip("neurobench")
    pytest.importorskip("snntorch")  # neurobench.models imports it
    from neurobench.metrics.utils.layers import single_layer_MACs
    from neurobench.metrics.workload import ActivationSparsity
    from neurobench.models import TorchModel

    from dvsapp.snn.base import SpikingNeuron
    from dvsapp.snn.checkpoint import load_checkpoint

    models = Path(__file__).resolve().parents[1] / "models"
    model = load_checkpoint(models / "resnet_small_synth.safetensors").model.eval()
    with torch.no_grad():
        model.layer1[0].conv1.conv.weight[:, :, 0, 0] = 0  # zero weights cost nothing
    x = _frames(5, (2, 64, 64), rate=0.6, seed=2)
    x[2] = (x[2] > 0).float()  # a binary frame: the stem's operations are ACs then
    model.set_probes(ProbeSpec(spikes=True))
    an = Analyzer(model, _shapes(model, x[0]), torch.device("cpu"))
    an.install()
    assert an.synaptic_layers[:3] == ["conv1", "layer1.0.conv1", "layer1.0.conv2"]
    sources = {  # each synaptic layer's input: the frame or a spiking layer's output
        "conv1": None,
        "layer1.0.conv1": "lif1",
        "layer1.0.conv2": "layer1.0.lif1",
        "layer2.0.conv1": "layer1.0.lif2",
        "layer2.0.downsample": "layer1.0.lif2",
        "layer2.0.conv2": "layer2.0.lif1",
        "layer3.0.conv1": "layer2.0.lif2",
        "layer3.0.downsample": "layer2.0.lif2",
        "layer3.0.conv2": "layer3.0.lif1",
        "fc_hidden": "layer3.0.lif2",
        "fc": "lif_hidden",
    }
    assert sorted(an.synaptic_layers) == sorted(sources)
    modules = dict(model.named_modules())
    kinds = set()
    sparsity = []
    with torch.inference_mode():
        for t, x_t in enumerate(x, start=1):
            model.step(x_t)
            res = an.collect(t)
            sparsity.append(res.sparsity)
            for name, src in sources.items():
                inp = x_t if src is None else model.spiking_layers()[src].record.spikes
                if name == "fc_hidden":
                    inp = inp.mean(dim=(-2, -1))
                layer = modules[name]
                layer = getattr(layer, "conv", layer)  # the conv of a conv unit
                ops, spiking = single_layer_MACs(inp.clone(), layer)
                dense, _ = single_layer_MACs(inp.clone(), layer, total=True)
                got = res.synops[name]
                assert (got.ops, got.kind, got.dense) == (ops, "AC" if spiking else "MAC", dense)
                kinds.add((name, got.kind))
    assert ("conv1", "AC") in kinds and ("conv1", "MAC") in kinds and ("fc_hidden", "MAC") in kinds
    an.remove()
    nb = TorchModel(model)
    nb.add_activation_module(SpikingNeuron)
    nb.register_hooks()
    with torch.no_grad():
        preds = nb(x)
    ref = ActivationSparsity()(nb, preds, (x, None))
    nb.cleanup_hooks()
    assert np.mean(sparsity) == pytest.approx(ref, abs=1e-9)


def test_the_inputs_binary_test_and_count_equal_neurobench_for_any_values():
    """The stem's input: {-1, 0, 1} (AC), halves and event counts (MAC, counted as non-zero
    inputs), against NeuroBench's ``single_layer_MACs``."""
    pytest.importorskip("neurobench")
    pytest.importorskip("snntorch")
    from neurobench.metrics.utils.layers import single_layer_MACs

    model = _model()
    x = _frames(4, (2, 32, 32), rate=0.8, seed=8)  # event counts, up to a few
    x[1] = torch.sign(x[1]) * torch.where(torch.rand(x[1].shape) < 0.5, -1.0, 1.0)
    x[2] = (x[2] > 1).float() * 0.5
    x[3] = x[3].clamp(max=1.0)
    an = Analyzer(model, _shapes(model, x[0]), torch.device("cpu"))
    an.install()
    conv = model.conv1.conv
    kinds = []
    with torch.inference_mode():
        for t, x_t in enumerate(x, start=1):
            model.step(x_t)
            got = an.collect(t).synops["conv1"]
            ops, spiking = single_layer_MACs(x_t.clone(), conv)
            assert (got.ops, got.kind) == (ops, "AC" if spiking else "MAC")
            kinds.append(got.kind)
    assert kinds == ["MAC", "AC", "MAC", "AC"]


def _their_gesture_net(shared_models_dir: Path) -> torch.nn.Module:
    folder = shared_models_dir / "snntorch_dvs_gesture"
    spec = importlib.util.spec_from_file_location("neurobench_snn", folder / "snn.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.Net()
    weights = folder / "dvs_gesture_snn"
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return net.eval()


def test_neurobench_gesture_network_synops_and_sparsity_equal_neurobench(shared_models_dir):
    """NeuroBench's SynapticOperations and ActivationSparsity on the snnTorch original of its
    DVS Gesture network, against ours on the shipped import stepped over the same frames:
    totals, and per layer against NeuroBench's hooks' inputs."""
    pytest.importorskip("neurobench")
    pytest.importorskip("snntorch")
    from neurobench.metrics.utils.layers import single_layer_MACs
    from neurobench.metrics.workload import ActivationSparsity, SynapticOperations
    from neurobench.models import SNNTorchModel

    from dvsapp.snn.checkpoint import load_checkpoint

    models = Path(__file__).resolve().parents[1] / "models"
    ours = load_checkpoint(models / "snntorch_dvs_gesture.safetensors").model.eval()
    T = 12
    x = _frames(T, (2, 32, 32), rate=0.5, seed=3)
    x[4] = (x[4] > 0).float()
    nb = SNNTorchModel(_their_gesture_net(shared_models_dir))
    nb.register_hooks()
    data = x.transpose(0, 1)  # NeuroBench's [batch, time, ...]
    with torch.no_grad():
        preds = nb(data)
    syn = SynapticOperations()
    per_layer = [  # NeuroBench's counter on what its hooks saw, before its metric runs
        [single_layer_MACs(inp[0].clone(), hook.layer) for inp in hook.inputs]
        for hook in nb.connection_hooks
    ]
    ref_ops = syn(nb, preds, (data, None))
    ref_sparsity = ActivationSparsity()(nb, preds, (data, None))
    nb.cleanup_hooks()

    ours.set_probes(None)
    an = Analyzer(ours, _shapes(ours, x[0]), torch.device("cpu"))
    an.install()
    assert an.synaptic_layers == ["conv1", "conv2", "conv3", "linear1"]
    totals = {"AC": 0.0, "MAC": 0.0}
    dense = 0.0
    sparsity = []
    ours.reset()
    with torch.inference_mode():
        for t, x_t in enumerate(x):
            ours.step(x_t)
            res = an.collect(t + 1)
            for kind, ops in res.total_ops.items():
                totals[kind] += ops
            dense += sum(s.dense for s in res.synops.values())
            sparsity.append(res.sparsity)
            for name, counts in zip(an.synaptic_layers, per_layer, strict=True):
                ops, spiking = counts[t]
                assert (res.synops[name].ops, res.synops[name].kind) == (
                    ops,
                    "AC" if spiking else "MAC",
                ), (t, name)
    assert totals["AC"] == ref_ops["Effective_ACs"] > 0
    assert totals["MAC"] == ref_ops["Effective_MACs"] > 0
    assert dense == ref_ops["Dense"]
    assert np.mean(sparsity) == pytest.approx(ref_sparsity, abs=1e-9)


def test_remove_restores_the_model_bit_for_bit():
    x = _frames(6, (2, 32, 32), rate=0.5, seed=4)
    plain, probed = _model(), _model()
    tap = {n: ProbeSpec(spikes=True, vm=[0, 5]) for n in probed.spiking_layers()}
    tap["lif_hidden"] = None
    for n, lay in probed.spiking_layers().items():
        lay.probe = tap[n]
    an = Analyzer(probed, _shapes(probed, x[0]), torch.device("cpu"))
    an.install()
    assert all(lay.probe.vm_stats for lay in probed.spiking_layers().values())
    with torch.inference_mode():
        for t, x_t in enumerate(x[:3], start=1):
            assert torch.equal(probed.step(x_t), plain.step(x_t))
            an.collect(t)
    an.remove()
    for n, lay in probed.spiking_layers().items():
        assert lay.probe is tap[n]
    for m in probed.modules():
        assert not m._forward_pre_hooks and "step" not in m.__dict__ and "forward" not in m.__dict__
    with torch.inference_mode():
        for x_t in x[3:]:
            assert torch.equal(probed.step(x_t), plain.step(x_t))
            rec = probed.spiking_layers()["lif1"].record
            assert rec.vm_stats is None and rec.vm.shape == (1, 2)


@pytest.mark.parametrize("batch", [1, 3])
def test_layer_rates_equal_torch_mean_and_stand_in_for_the_layers_own(batch):
    """``layer_rates`` are the float32 figures torch's mean gives (over the batch); with
    ``install(rates=True)`` the layers skip their own rate reduction, and ``remove`` gives
    it back."""
    model = _model()
    x = _frames(6, (2, 32, 32), rate=0.5, seed=3).expand(6, batch, 2, 32, 32).contiguous()
    model.set_probes(ProbeSpec(spikes=True, vm=False, rate=True))
    an = Analyzer(model, _shapes(model, x[0]), torch.device("cpu"))
    an.install(rates=True)
    layers = model.spiking_layers()
    with torch.inference_mode():
        for t, x_t in enumerate(x, start=1):
            model.step(x_t)
            res = an.collect(t)
            assert res.layer_rates is not None and res.layer_rates.dtype == np.float32
            want = [lay.record.spikes.float().mean() for lay in layers.values()]
            assert torch.equal(torch.from_numpy(res.layer_rates), torch.stack(want))
            assert all(lay.record.rate is None for lay in layers.values())
            assert float(res.layer_rates.max()) > 0
    an.remove()
    with torch.inference_mode():
        model.step(x[0])
    assert all(lay.record.rate is not None for lay in layers.values())


def test_vm_every_skips_the_histograms_between():
    model = _model()
    x = _frames(5, (2, 32, 32), seed=5)
    an = Analyzer(model, _shapes(model, x[0]), torch.device("cpu"), vm_every=2)
    an.install()
    got = []
    with torch.inference_mode():
        for t, x_t in enumerate(x, start=1):
            model.step(x_t)
            got.append(bool(an.collect(t).vm))
    assert got == [True, False, True, False, True]


def test_vm_layers_computes_the_chosen_layers_only_and_the_same_figures():
    """``vm_layers``: Vm statistics for a chosen subset (changeable between steps), equal to
    those of the same layers when all are computed; the other figures are unchanged."""
    x = _frames(4, (2, 32, 32), rate=0.5, seed=7)
    full, part = _model(), _model()
    shapes = _shapes(full, x[0])
    a_full = Analyzer(full, shapes, torch.device("cpu"))
    a_part = Analyzer(part, shapes, torch.device("cpu"), vm_layers="layer2.0.lif1")
    assert a_part.vm_layers == {"layer2.0.lif1"}
    a_full.install()
    a_part.install()
    chosen = [{"layer2.0.lif1"}, {"lif1", "lif_hidden"}, {"lif1", "lif_hidden"}, set()]
    with torch.inference_mode():
        for t, (x_t, pick) in enumerate(zip(x, chosen, strict=True), start=1):
            a_part.vm_layers = frozenset(pick)
            full.step(x_t)
            part.step(x_t)
            got, ref = a_part.collect(t), a_full.collect(t)
            assert set(got.vm) == pick
            for name in pick:
                g, r = got.vm[name], ref.vm[name]
                np.testing.assert_array_equal(g.counts, r.counts)
                assert (g.neurons, g.near, g.min, g.max) == (r.neurons, r.near, r.min, r.max)
                assert g.mean == pytest.approx(r.mean, abs=1e-6)
                assert g.std == pytest.approx(r.std, abs=1e-5)
            assert got.synops == ref.synops and got.sparsity == ref.sparsity
            for name, ch in ref.channels.items():
                np.testing.assert_array_equal(got.channels[name].window_rates, ch.window_rates)


@pytest.mark.parametrize("sizes", [(3000,) * 4, (3000, 1001, 2048, 7)])
def test_vm_plan_bins_and_near_bands_for_any_threshold_sign_and_scale(sizes):
    """The batched binning against numpy for positive, negative and scaled thresholds (the
    near band read from two bins at scale 1, computed otherwise), with NaN and infinities
    in the under- and overflow bins; moments from rows covering every layer, and from
    layers taken alone."""
    from dvsapp.snn.analysis.vm import VmPlan

    g = torch.Generator().manual_seed(6)
    thresholds, now = [0.2, -0.5, 1.0, 0.3], [0.2, -0.5, 1.5, 0.3]
    maps = [
        torch.randn(1, s, generator=g) * abs(t) * 1.5 + t
        for s, t in zip(sizes, thresholds, strict=True)
    ]
    maps[3][0, :3] = torch.tensor([math.nan, math.inf, -math.inf])
    plan = VmPlan([m.numel() for m in maps], thresholds, now, maps[0])
    parts = plan.reduce(maps)
    rest = torch.cat([p.double().reshape(-1) for p in parts[1:]]).numpy()
    assert plan.lead == (4 if sizes[1] == 3000 else 0)
    counts2, near, sums, squares, lows, highs = plan.unpack(parts[0].numpy(), rest)
    for i, (m, thr, live) in enumerate(zip(maps, thresholds, now, strict=True)):
        vm = m.double().numpy().reshape(-1)
        finite = vm[np.isfinite(vm)]
        if finite.size == vm.size:
            assert sums[i] == pytest.approx(vm.sum(), rel=1e-5)
            assert squares[i] == pytest.approx((vm * vm).sum(), rel=1e-5)
            assert (lows[i], highs[i]) == (vm.min(), vm.max())
        edges = vm_edges(thr)
        finite = np.nan_to_num(vm, nan=-np.inf)  # NaN counts as underflow
        ref, _ = np.histogram(finite, bins=np.concatenate(([-np.inf], edges, [np.inf])))
        np.testing.assert_array_equal(counts2[i].sum(0), ref)
        band = np.abs(vm - live) <= NEAR_FRACTION * abs(live)
        assert near[i] == band.sum()
    assert plan.near_bins == [(40, 41), (20, 21), None, (40, 41)]
