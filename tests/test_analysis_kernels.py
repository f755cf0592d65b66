"""The compiled CPU kernels of the in-depth probes (dvsapp.snn.analysis.cpu_kernels): Vm
statistics against numpy, and every figure against the torch/numpy path on the same steps
(tests/test_analysis.py checks both paths against NeuroBench and numpy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dvsapp.snn.analysis import Analyzer, vm_edges
from dvsapp.snn.analysis.records import NEAR_FRACTION
from tests.test_analysis import _frames, _model, _shapes

pytest.importorskip("numba")
torch.set_num_threads(1)


@pytest.mark.parametrize("sizes", [(3000, 1001, 2048, 7, 64)])
def test_compiled_vm_statistics_equal_numpy(sizes):
    """The compiled kernel's histograms, near fractions and moments against numpy, for any
    threshold sign and scale, a silent (all-zero) layer, sizes no unrolling divides, and NaN
    and infinities (NaN: underflow, and NaN extremes)."""
    from dvsapp.snn.analysis.vm import VmPlan

    g = torch.Generator().manual_seed(9)
    thresholds, now = [0.2, -0.5, 1.0, 0.3, 0.2], [0.2, -0.5, 1.5, 0.3, 0.1]
    maps = [
        torch.randn(1, s, generator=g) * abs(t) * 1.5 + t
        for s, t in zip(sizes, thresholds, strict=True)
    ]
    maps[3][0, :3] = torch.tensor([math.nan, math.inf, -math.inf])
    maps[4].zero_()
    plan = VmPlan([m.numel() for m in maps], thresholds, now, maps[0])
    assert plan.compiled
    counts, stats = plan.host_statistics(maps)
    for i, (m, thr, live) in enumerate(zip(maps, thresholds, now, strict=True)):
        vm = m.double().numpy().reshape(-1)
        n, near, mean, std, lo, hi = stats[i]
        edges = vm_edges(thr)
        ref, _ = np.histogram(
            np.nan_to_num(vm, nan=-np.inf), bins=np.concatenate(([-np.inf], edges, [np.inf]))
        )
        np.testing.assert_array_equal(counts[i], ref)
        assert n == vm.size
        assert near * vm.size == (np.abs(vm - live) <= NEAR_FRACTION * abs(live)).sum()
        if np.isnan(vm).any():
            assert math.isnan(lo) and math.isnan(hi)
        else:
            assert (lo, hi) == (vm.min(), vm.max())
            assert mean == pytest.approx(vm.mean(), abs=1e-9)
            assert std == pytest.approx(vm.std(), abs=1e-7)


def test_compiled_and_torch_paths_give_the_same_figures():
    """The compiled CPU kernels against the torch/numpy path, step by step on two copies of
    one model: the same histograms, near fractions, moments, channel figures, operations
    (kinds included) and sparsity; the compiled analyzer did use its kernels."""
    x = _frames(6, (2, 32, 32), rate=0.6, seed=11)
    x[3] = (x[3] > 0).float()  # a binary frame: the stem's operations are ACs
    a, b = _model(), _model()
    shapes = _shapes(a, x[0])
    fast = Analyzer(a, shapes, torch.device("cpu"), compiled=True)
    slow = Analyzer(b, shapes, torch.device("cpu"), compiled=False)
    fast.install()
    slow.install()
    b.spiking_layers()["layer2.0.lif1"].threshold_scale = 0.7
    a.spiking_layers()["layer2.0.lif1"].threshold_scale = 0.7
    kinds = set()
    with torch.inference_mode():
        for t, x_t in enumerate(x, start=1):
            a.step(x_t)
            b.step(x_t)
            got, ref = fast.collect((t - 1) % 4 + 1), slow.collect((t - 1) % 4 + 1)
            assert fast._plan.kernel is not None and fast._vplan.compiled
            assert slow._plan.kernel is None and not slow._vplan.compiled
            assert set(got.vm) == set(ref.vm)
            for name, r in ref.vm.items():
                g = got.vm[name]
                # a Vm within float rounding of a bin edge may land either side (a tie)
                assert np.abs(g.counts - r.counts).sum() <= 2, name
                assert (g.neurons, g.threshold_now, g.min, g.max) == (
                    r.neurons,
                    r.threshold_now,
                    r.min,
                    r.max,
                )
                assert g.near == pytest.approx(r.near, abs=2 / g.neurons)
                assert g.mean == pytest.approx(r.mean, abs=1e-6)
                assert g.std == pytest.approx(r.std, abs=1e-5)
            assert got.synops == ref.synops
            kinds |= {s.kind for s in got.synops.values()}
            assert got.sparsity == pytest.approx(ref.sparsity, abs=1e-12)
            assert set(got.channels) == set(ref.channels)
            for name, r in ref.channels.items():
                g = got.channels[name]
                np.testing.assert_array_equal(g.rates, r.rates)
                np.testing.assert_array_equal(g.window_rates, r.window_rates)
                assert (g.silent, g.saturated) == (r.silent, r.saturated)
    assert kinds == {"AC", "MAC"}


@pytest.mark.parametrize(
    "name",
    [
        "resnet_small_synth",
        "vgg_small_synth",
        "snntorch_dvs_gesture",
        "cnn_sinabs_nmnist",
    ],
)
def test_every_shipped_family_takes_the_compiled_path_with_the_same_figures(name):
    """A BNTT VGG and two graph models (NIR imports) as well as the tdBN ResNet: the
    compiled route is taken (no silent fallback) and gives the torch path's figures."""
    from pathlib import Path

    from dvsapp.snn.base import ProbeSpec
    from dvsapp.snn.checkpoint import load_checkpoint

    path = Path(__file__).resolve().parents[1] / "models" / f"{name}.safetensors"
    fast_model, slow_model = (load_checkpoint(path).model.eval() for _ in range(2))
    cfg = load_checkpoint(path).config
    x = _frames(6, (cfg.in_channels, *cfg.input_size), rate=0.4, seed=12)
    for m in (fast_model, slow_model):
        m.set_probes(ProbeSpec(spikes=True, vm=False))
    shapes = _shapes(fast_model, x[0])
    fast = Analyzer(fast_model, shapes, torch.device("cpu"), compiled=True)
    slow = Analyzer(slow_model, shapes, torch.device("cpu"), compiled=False)
    fast.install()
    slow.install()
    with torch.inference_mode():
        for t, x_t in enumerate(x):
            fast_model.step(x_t)
            slow_model.step(x_t)
            got, ref = fast.collect(t % 3 + 1), slow.collect(t % 3 + 1)
            assert fast._plan.kernel is not None and fast._vplan.compiled
            assert got.synops == ref.synops
            assert got.sparsity == pytest.approx(ref.sparsity, abs=1e-12)
            assert set(got.vm) == set(ref.vm) and set(got.channels) == set(ref.channels)
            for layer, r in ref.vm.items():
                assert np.abs(got.vm[layer].counts - r.counts).sum() <= 2, layer
                assert (got.vm[layer].min, got.vm[layer].max) == (r.min, r.max)
            for layer, r in ref.channels.items():
                np.testing.assert_array_equal(got.channels[layer].window_rates, r.window_rates)
                assert got.channels[layer].silent == r.silent
