"""NeuroBench's snnTorch DVS128 Gesture network (../shared/models/snntorch_dvs_gesture),
imported from its own class and state_dict: every step equals snnTorch stepping the same
network, and the shipped checkpoint is that import."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from dvsapp.snn.base import ProbeSpec
from dvsapp.snn.graph.importer import ImportOptions, import_framework

snntorch = pytest.importorskip("snntorch")


def _source(shared_models_dir: Path) -> tuple[Path, Path]:
    folder = shared_models_dir / "snntorch_dvs_gesture"
    return folder / "dvs_gesture_snn", folder / "snn.py"


def _their_net(code: Path, weights: Path) -> torch.nn.Module:
    spec = importlib.util.spec_from_file_location("neurobench_snn", code)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.Net()
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return net.eval()


def test_imported_network_equals_snntorch_per_step(shared_models_dir):
    weights, code = _source(shared_models_dir)
    ckpt = import_framework(
        weights, "snntorch", f"{code}:Net", ImportOptions(input_size=(32, 32), classes="dvsgesture")
    )
    ours = ckpt.model
    ours.set_probes(ProbeSpec(spikes=True, vm=True))
    assert list(ours.spiking_layers()) == ["lif1", "lif2", "lif3", "lif4"]
    net = _their_net(code, weights)
    for m in net.modules():
        if isinstance(m, snntorch.SpikingNeuron):
            m.reset_mem()
    g = torch.Generator().manual_seed(0)
    # event counts per 40 ms bin of a 32x32 downsampled DVS128 stream: up to a few per pixel
    x = torch.poisson(torch.full((120, 1, 2, 32, 32), 0.4), generator=g)
    ours.reset()
    fired = 0
    with torch.no_grad():
        for x_t in x:
            spk, mem = net(x_t)
            torch.testing.assert_close(ours.step(x_t), spk, rtol=0, atol=0)
            torch.testing.assert_close(
                ours.spiking_layers()["lif4"].record.vm, mem, atol=1e-5, rtol=0
            )
            fired += int(spk.sum())
    assert fired > 10


MODELS = Path(__file__).resolve().parents[1] / "models"


def test_shipped_checkpoint_is_that_import_with_neurobench_preprocessing(shared_models_dir):
    import json

    from dvsapp.snn.checkpoint import load_checkpoint

    card = json.loads((MODELS / "snntorch_dvs_gesture.import.json").read_text())
    shipped = load_checkpoint(MODELS / card["checkpoint"])
    b = shipped.binning
    assert (b.sensor_size, b.input_size, b.time_window_us, b.denoise_us) == (
        (128, 128), (32, 32), 40_000, 10_000,
    )  # fmt: skip
    assert shipped.time_steps == 150 and shipped.class_names[0] == "hand_clapping"
    assert (
        "DVS128 Gesture" in shipped.trained_on
        and shipped.extra["source"]["framework"] == "snntorch"
    )
    assert "Apache License" in (MODELS / "snntorch_dvs_gesture.LICENSE").read_text()
    assert (MODELS / "snntorch_dvs_gesture.md").read_text().startswith("# snntorch_dvs_gesture")
    weights, code = _source(shared_models_dir)
    fresh = import_framework(
        weights, "snntorch", f"{code}:Net", ImportOptions(input_size=(32, 32), classes="dvsgesture")
    )
    a, c = fresh.model.state_dict(), shipped.model.state_dict()
    assert a.keys() == c.keys() and all(torch.equal(a[k], c[k]) for k in a)
