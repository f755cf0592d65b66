"""tdBN ResNet layout revisions (``ModelConfig.layout``): the builders make the tdBN paper's
layout (revision 2: a stride-2 encoding layer in ``resnet17``, a tdBN on identity shortcuts);
a config without the field is revision 1, and a checkpoint written with it loads and computes
exactly what the code before the revisions computed (golden values recorded from that code)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from dvsapp.binning import BinningConfig
from dvsapp.snn.base import ModelConfig, ProbeSpec
from dvsapp.snn.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from dvsapp.snn.registry import default_config as registry_default_config
from dvsapp.snn.resnet import (
    CURRENT_LAYOUT,
    LAYOUTS,
    ORIGINAL_LAYOUT,
    RESNET_ARCHS,
    TdbnResNet,
    TdShortcutBN,
    default_config,
    resnet17,
    resnet19,
    resnet_small,
)
from dvsapp.snn.tdbn import RESIDUAL_ALPHA, TDBN_NEURON_DEFAULTS, TdBatchNorm

#: What ``ModelConfig.to_dict`` wrote before the layout field existed.
OLD_CONFIG_KEYS = {"arch", "num_classes", "in_channels", "input_size", "width", "time_steps",
                   "neuron", "norm"}  # fmt: skip
BINNING = BinningConfig(sensor_size=(16, 16), time_window_us=10_000, input_size=(16, 16))

#: Recorded with the code before layout revisions (git HEAD def0c8a, ``golden_model`` below):
#: spikes per layer (all of the batch) and the batch-summed logits, per step.
GOLDEN: dict[str, dict] = {
    "resnet17": {
        "counts": [
            [611, 245, 148, 261, 281, 126, 474, 78, 123, 64, 125, 60, 162, 90, 194, 13],
            [639, 249, 179, 268, 324, 126, 480, 101, 123, 61, 130, 61, 173, 106, 198, 13],
            [639, 253, 188, 265, 321, 124, 485, 85, 126, 65, 129, 63, 169, 101, 198, 13],
            [615, 245, 175, 262, 324, 125, 479, 100, 128, 60, 130, 59, 171, 98, 202, 14],
            [612, 245, 203, 259, 337, 120, 489, 87, 129, 64, 133, 63, 171, 101, 198, 13],
            [632, 253, 186, 260, 331, 124, 480, 96, 126, 58, 131, 60, 175, 102, 202, 13],
        ],
        "logits": [
            [-0.9897, -0.43258, -0.24101], [-0.9897, -0.43258, -0.24101],
            [-0.9897, -0.43258, -0.24101], [-0.79453, -0.56014, -0.46939],
            [-0.9897, -0.43258, -0.24101], [-0.9897, -0.43258, -0.24101],
        ],
        "stem_stride": 1,
        "tensors": 106,
    },
    "resnet19": {
        "counts": [
            [711, 329, 1202, 209, 1287, 483, 1287, 6, 384, 368, 988, 272, 988, 222, 248, 188,
             306, 4],
            [769, 398, 1259, 357, 1360, 487, 1360, 11, 384, 514, 924, 280, 924, 276, 264, 212,
             312, 4],
            [756, 364, 1257, 356, 1335, 484, 1335, 11, 384, 380, 994, 326, 990, 226, 254, 204,
             300, 4],
            [755, 420, 1252, 318, 1342, 482, 1341, 10, 384, 514, 924, 280, 924, 278, 268, 216,
             314, 4],
            [737, 390, 1226, 320, 1326, 477, 1326, 13, 384, 368, 990, 292, 990, 228, 250, 212,
             302, 4],
            [762, 386, 1249, 335, 1339, 488, 1339, 10, 384, 526, 922, 280, 922, 274, 266, 216,
             310, 4],
        ],
        "logits": [[0.30197, 0.63828, -0.41888]] * 6,
        "stem_stride": 1,
        "tensors": 118,
    },
    "resnet_small": {
        "counts": [
            [54, 50, 182, 81, 65, 36, 48, 10], [98, 49, 226, 80, 65, 36, 52, 10],
            [86, 56, 214, 84, 62, 37, 52, 11], [87, 55, 216, 80, 64, 35, 51, 11],
            [80, 57, 208, 80, 64, 35, 51, 10], [85, 50, 213, 82, 62, 38, 51, 12],
        ],
        "logits": [
            [-0.84777, 1.54205, 0.48394], [-0.84777, 1.54205, 0.48394],
            [-0.76962, 1.33166, 0.52164], [-0.76962, 1.33166, 0.52164],
            [-0.84777, 1.54205, 0.48394], [-0.69146, 1.12126, 0.55935],
        ],
        "stem_stride": 2,
        "tensors": 58,
    },
}  # fmt: skip


def golden_model(arch: str, **fields: object) -> tuple[TdbnResNet, torch.Tensor]:
    """The recorded network: seeded init, random tdBN statistics, 6 frames of spikes. A
    ``ModelConfig`` built without ``layout``, exactly as the code before the field did."""
    torch.manual_seed(1234)
    cfg = ModelConfig(arch=arch, num_classes=3, in_channels=2, input_size=(16, 16), width=4,
                      time_steps=4, neuron=dict(TDBN_NEURON_DEFAULTS), **fields)  # fmt: skip
    model = TdbnResNet(cfg)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, TdBatchNorm):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=gen) * 0.5)
                m.running_var.copy_(torch.rand(c, generator=gen) * 2.5 + 0.5)
                m.weight.copy_(torch.rand(c, generator=gen) * 1.5 + 0.5)
                m.bias.copy_(torch.randn(c, generator=gen) * 0.3)
    frames = (torch.rand(6, 2, 2, 16, 16, generator=gen) < 0.3).float()
    return model.eval(), frames


def run_steps(model: TdbnResNet, frames: torch.Tensor) -> tuple[list, list]:
    model.reset()
    model.set_probes(ProbeSpec(spikes=True, rate=False))
    counts, logits = [], []
    with torch.inference_mode():
        for f in frames:
            logits.append(model.step(f).sum(0).tolist())
            counts.append([int(la.record.spikes.sum()) for la in model.spiking_layers().values()])
    model.set_probes(None)
    return counts, logits


def save(path: Path, model: TdbnResNet) -> Path:
    return save_checkpoint(path, model, class_names=["a", "b", "c"], binning=BINNING,
                           sensor_size=(16, 16, 2), trained_on="test", metrics={})  # fmt: skip


def saved_config(path: Path) -> dict:
    header = path.read_bytes()
    n = int.from_bytes(header[:8], "little")
    return json.loads(json.loads(header[8 : 8 + n])["__metadata__"]["dvsapp"])["config"]


# -- the config field -------------------------------------------------------------------------
def test_a_config_without_layout_is_the_original_layout_and_builders_make_the_papers() -> None:
    old = {"arch": "resnet17", "num_classes": 11, "in_channels": 2, "input_size": [128, 128],
           "width": 64, "time_steps": 40, "neuron": dict(TDBN_NEURON_DEFAULTS),
           "norm": "default"}  # fmt: skip
    cfg = ModelConfig.from_dict(old)
    assert cfg.layout == ORIGINAL_LAYOUT == 1
    assert cfg.to_dict() == old  # written back exactly as before: no new key
    assert ModelConfig(arch="resnet17").layout == ORIGINAL_LAYOUT
    assert CURRENT_LAYOUT == 2 and set(LAYOUTS) == {1, 2}
    for arch in RESNET_ARCHS:
        new = default_config(arch)
        assert new.layout == CURRENT_LAYOUT, arch
        assert registry_default_config(arch).layout == CURRENT_LAYOUT, arch
        assert new.to_dict()["layout"] == CURRENT_LAYOUT
        assert ModelConfig.from_dict(new.to_dict()) == new
        assert default_config(arch, layout=1).layout == 1
    with torch.device("meta"):
        built = [resnet17(), resnet19(), resnet_small(), resnet17(layout=1)]
    assert [m.config.layout for m in built] == [2, 2, 2, 1]


def test_an_unknown_layout_is_refused_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="layout revision 3"):
        TdbnResNet(ModelConfig(arch="resnet_small", layout=3))
    model, _ = golden_model("resnet_small")
    path = save(tmp_path / "m.safetensors", model)
    tensors = load_file(str(path))
    header = path.read_bytes()
    n = int.from_bytes(header[:8], "little")
    meta = json.loads(json.loads(header[8 : 8 + n])["__metadata__"]["dvsapp"])
    meta["config"]["layout"] = 3
    future = tmp_path / "future.safetensors"
    save_file(tensors, str(future), metadata={"dvsapp": json.dumps(meta)})
    with pytest.raises(CheckpointError, match="layout revision 3") as err:
        load_checkpoint(future)
    assert "\n" not in str(err.value) and str(future) in str(err.value)


# -- old checkpoints --------------------------------------------------------------------------
@pytest.mark.parametrize("arch", RESNET_ARCHS)
def test_an_original_layout_checkpoint_loads_and_computes_as_before(
    tmp_path: Path, arch: str
) -> None:
    model, frames = golden_model(arch)
    path = save(tmp_path / f"{arch}.safetensors", model)
    assert set(saved_config(path)) == OLD_CONFIG_KEYS  # the file an older dvsapp wrote
    ckpt = load_checkpoint(path)
    loaded = ckpt.model
    assert isinstance(loaded, TdbnResNet) and ckpt.config.layout == ORIGINAL_LAYOUT
    gold = GOLDEN[arch]
    assert len(loaded.state_dict()) == gold["tensors"]
    assert not any("shortcut" in k for k in loaded.state_dict())
    assert loaded.conv1.conv.stride == (gold["stem_stride"],) * 2
    assert all(b.shortcut is None for s in loaded.stages() for b in s)
    counts, logits = run_steps(loaded, frames)
    # Recorded on one CPU; another may round a membrane potential across the threshold
    # somewhere, so a spike or two per layer may move. Here they are equal.
    for t, (got, want) in enumerate(zip(counts, gold["counts"], strict=True)):
        assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= 2, (t, got, want)
        if got[-1] == want[-1]:  # the same hidden spikes: the same logits
            torch.testing.assert_close(torch.tensor(logits[t]), torch.tensor(gold["logits"][t]),
                                       atol=2e-5, rtol=0)  # fmt: skip


def test_resnet_small_is_the_same_network_in_both_revisions() -> None:
    """Ours, not the paper's, and what the shipped models and ``--init`` from them are: its
    stem already downsamples; it gains no shortcut tdBN (the module docstring says why)."""
    with torch.device("meta"):
        old, new = resnet_small(layout=1), resnet_small()
    assert new.config.layout == CURRENT_LAYOUT
    assert {k: v.shape for k, v in old.state_dict().items()} == {
        k: v.shape for k, v in new.state_dict().items()
    }
    assert str(old) == str(new)
    assert LAYOUTS[1]["resnet_small"] == LAYOUTS[2]["resnet_small"]


def test_the_shipped_resnet_small_checkpoints_keep_the_original_layout() -> None:
    """resnet_small's layout is the same in every revision (no shortcut tdBN), so the shipped
    checkpoints, saved as revision 1 or 2, hold the original network and `--init` from them
    works in either."""
    models = Path(__file__).resolve().parents[1] / "models"
    for name in ("resnet_small_synth", "resnet_small_synth_nonorm_collapsed"):
        path = models / f"{name}.safetensors"
        ckpt = load_checkpoint(path)
        assert saved_config(path).get("layout", ORIGINAL_LAYOUT) == ckpt.config.layout
        assert ckpt.config.layout in LAYOUTS
        original = LAYOUTS[ORIGINAL_LAYOUT]["resnet_small"]
        assert LAYOUTS[ckpt.config.layout]["resnet_small"] == original
        assert all(b.shortcut is None for s in ckpt.model.stages() for b in s)


# -- the paper's layout -----------------------------------------------------------------------
def test_the_papers_resnet17_downsamples_in_its_encoding_layer() -> None:
    with torch.device("meta"):
        new, old = resnet17(), resnet17(layout=1)
        new.set_probes(ProbeSpec(spikes=True))
        old.set_probes(ProbeSpec(spikes=True))
        x = torch.zeros(1, 2, 128, 128)
        new.step(x)
        old.step(x)
    shapes = {n: tuple(la.record.spikes.shape[1:]) for n, la in new.spiking_layers().items()}
    assert new.conv1.conv.stride == (2, 2) and shapes["lif1"] == (64, 64, 64)
    assert old.conv1.conv.stride == (1, 1)
    assert old.spiking_layers()["lif1"].record.spikes.shape[1:] == (64, 128, 128)
    # then channels double whenever the map halves: 64 channels at 64x64, 128 at 32x32
    assert all(shapes[f"layer1.{j}.lif2"] == (64, 64, 64) for j in range(3))
    assert all(shapes[f"layer2.{j}.lif2"] == (128, 32, 32) for j in range(4))
    assert [b.conv1.conv.stride[0] for b in new.layer1] == [1, 1, 1]
    assert new.layer2[0].conv1.conv.stride == (2, 2) and new.layer2[0].downsample is not None
    # the shortcut tdBN: every block without a projection has one, alpha 1/sqrt(2) as conv2's
    for block in [*new.layer1, *new.layer2[1:]]:
        assert block.downsample is None and isinstance(block.shortcut, TdShortcutBN)
        assert block.shortcut.bn.alpha == block.conv2.bn.alpha == RESIDUAL_ALPHA
        assert block.shortcut.bn.alpha == 1 / math.sqrt(2)
        assert block.shortcut.bn.v_th == TDBN_NEURON_DEFAULTS["threshold"]
    assert new.layer2[0].downsample.bn.alpha == RESIDUAL_ALPHA
    assert new.layer2[0].shortcut is None


def test_a_papers_layout_checkpoint_round_trips(tmp_path: Path) -> None:
    model, frames = golden_model("resnet17", layout=CURRENT_LAYOUT)
    assert model.conv1.conv.stride == (2, 2)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, TdShortcutBN):  # away from the identity map, so it must be loaded
                m.bn.weight.mul_(1.5)
                m.bn.bias.add_(0.05)
    path = save(tmp_path / "paper.safetensors", model)
    assert saved_config(path)["layout"] == CURRENT_LAYOUT
    ckpt = load_checkpoint(path)
    assert ckpt.config == model.config and any("shortcut" in k for k in ckpt.model.state_dict())
    assert run_steps(ckpt.model, frames) == run_steps(model, frames)
    counts, _ = run_steps(model, frames)
    assert all(c > 0 for c in counts[-1][:-1])  # every hidden layer fires: not vacuous
