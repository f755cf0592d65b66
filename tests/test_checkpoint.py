"""Checkpoints: a safetensors round trip that restores the model and its metadata, and a
one-line CheckpointError naming the file for every way a file can be wrong."""

from __future__ import annotations

import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from toy_snn import REAL_SMALL, make_toy, single_thread, small_real_model, toy_architectures

from dvsapp.binning import BinningConfig
from dvsapp.errors import DvsappError
from dvsapp.snn.checkpoint import (
    CheckpointError,
    inspect_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from dvsapp.snn.registry import ARCHITECTURES, build_model, default_config, known_architectures

BINNING = BinningConfig(sensor_size=(16, 16), time_window_us=10_000, input_size=(8, 8))
CLASSES = ["off", "on", "quiet"]


@pytest.fixture(autouse=True)
def _toys() -> Iterator[None]:
    with toy_architectures(), single_thread():
        yield


def _save(path: Path, arch: str = "toy", **kwargs: object) -> Path:
    model = kwargs.pop("model", None) or make_toy(arch)
    args: dict = {
        "class_names": CLASSES,
        "binning": BINNING,
        "sensor_size": (16, 16, 2),
        "trained_on": "synthetic polarity set",
        "metrics": {"accuracy": 0.875, "time_steps": 4},
        "extra": {"note": "test"},
    }
    args.update(kwargs)
    return save_checkpoint(path, model, **args)  # type: ignore[arg-type]


def _rewrite(src: Path, dst: Path, meta: dict | None, drop: str | None = None) -> Path:
    """Copy of a checkpoint with other metadata (None: none at all) or a tensor dropped."""
    tensors = load_file(str(src))
    if drop is not None:
        tensors.pop(drop)
    save_file(tensors, str(dst), metadata=None if meta is None else {"dvsapp": json.dumps(meta)})
    return dst


def _meta(path: Path) -> dict:
    return {
        k: v
        for k, v in inspect_checkpoint(path).items()
        if k not in ("file", "file_bytes", "tensors", "parameters")
    }


def _assert_one_line(err: pytest.ExceptionInfo[CheckpointError], path: Path, *words: str) -> None:
    msg = str(err.value)
    assert "\n" not in msg
    assert str(path) in msg
    assert isinstance(err.value, DvsappError)
    for w in words:
        assert w in msg, msg


# -- round trip ---------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["toy", "toy_bntt"])
def test_round_trip_gives_the_same_outputs_and_metadata(tmp_path: Path, arch: str) -> None:
    model = make_toy(arch, seed=3).eval()
    path = _save(tmp_path / "m.safetensors", arch, model=model)
    ckpt = load_checkpoint(path)
    x = (torch.rand(4, 2, 2, 8, 8) * 3).round()
    with torch.no_grad():
        assert torch.equal(ckpt.model(x), model(x))
    assert not ckpt.model.training
    assert type(ckpt.model) is type(model)
    assert ckpt.config == model.config
    assert ckpt.class_names == CLASSES
    assert ckpt.binning == BINNING
    assert ckpt.sensor_size == (16, 16, 2)
    assert ckpt.metrics == {"accuracy": 0.875, "time_steps": 4}
    assert ckpt.trained_on == "synthetic polarity set"
    assert ckpt.extra == {"note": "test"}
    assert ckpt.metadata["family"] == model.family


def test_the_file_is_plain_safetensors_with_our_json(tmp_path: Path) -> None:
    model = make_toy()
    path = _save(tmp_path / "m.safetensors", model=model)
    tensors = load_file(str(path))
    assert tensors.keys() == model.state_dict().keys()
    meta = _meta(path)
    assert meta["format"] == "dvsapp-checkpoint" and meta["version"] == 1
    assert meta["architecture"] == "toy"
    assert meta["config"] == model.config.to_dict()
    assert meta["input_size"] == [8, 8]
    assert meta["time_steps"] == 4
    assert meta["neuron"] == {"threshold": 1.0, "tau": 0.5}
    assert BinningConfig.from_dict(meta["binning"]) == BINNING
    info = inspect_checkpoint(path)
    assert info["tensors"] == len(tensors)
    assert info["parameters"] == sum(t.numel() for t in tensors.values())
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_saving_inconsistent_metadata_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    with pytest.raises(CheckpointError) as err:
        _save(path, class_names=["a", "b"])
    _assert_one_line(err, path, "2 class names")
    with pytest.raises(CheckpointError) as err:
        _save(path, binning=BinningConfig(sensor_size=(16, 16), time_window_us=1000))
    _assert_one_line(err, path, "frames")
    assert not path.exists()


# -- refusals ------------------------------------------------------------------------------
def test_missing_file_and_directory(tmp_path: Path) -> None:
    for path, words in ((tmp_path / "nope.safetensors", "no such file"), (tmp_path, "directory")):
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(path)
        _assert_one_line(err, path, words)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "only 0 bytes"),
        (b"\x01\x02", "only 2 bytes"),
        (bytes(range(256)) * 4, "not a safetensors file"),
        (b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!", "not JSON"),
        (b"\x02\x00\x00\x00\x00\x00\x00\x00[]", "not a JSON object"),
    ],
)
def test_not_a_safetensors_file(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    _assert_one_line(err, path, words)


@pytest.mark.parametrize("cut", [1, 100, "header"])
def test_truncated_checkpoint(tmp_path: Path, cut: int | str) -> None:
    path = _save(tmp_path / "m.safetensors")
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    path.write_bytes(data[: 8 + n // 2] if cut == "header" else data[: -int(cut)])
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    _assert_one_line(err, path, "truncated")


def test_corrupt_header_entry(tmp_path: Path) -> None:
    path = _save(tmp_path / "m.safetensors")
    data = bytearray(path.read_bytes())
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + n])
    name = next(k for k in header if k != "__metadata__")
    header[name]["shape"] = [10**6]
    raw = json.dumps(header).encode()
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + n :])
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    _assert_one_line(err, path, "corrupt", name)


def test_damaged_tensor_data_fails_its_checksum(tmp_path: Path) -> None:
    path = _save(tmp_path / "m.safetensors")
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # same length, one byte of the last tensor changed
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    _assert_one_line(err, path, "corrupt", "checksum")


def test_safetensors_file_that_is_not_ours(tmp_path: Path) -> None:
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(path), metadata={"format": "pt"})
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    _assert_one_line(err, path, "not a dvsapp checkpoint")
    with pytest.raises(CheckpointError):
        inspect_checkpoint(path)


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda m: m.pop("binning"), "no binning"),
        (lambda m: m.pop("config"), "no config"),
        (lambda m: m.update(format="something-else"), "format"),
        (lambda m: m.update(version=7), "version 7"),
        (lambda m: m["config"].pop("width"), "config"),
        (lambda m: m.update(class_names="abc"), "class_names"),
        (lambda m: m.update(class_names=["a"]), "1 class names"),
        (lambda m: m["binning"].update(mode="sideways"), "mode"),
        (lambda m: m.update(sensor_size=[32, 32, 2]), "sensor_size"),
        (lambda m: m.update(architecture="toy_bntt"), "architecture"),
    ],
)
def test_malformed_or_incomplete_metadata(tmp_path: Path, edit, words: str) -> None:
    good = _save(tmp_path / "good.safetensors")
    meta = _meta(good)
    edit(meta)
    path = _rewrite(good, tmp_path / "bad.safetensors", meta)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    _assert_one_line(err, path, words)


def test_metadata_that_is_not_json(tmp_path: Path) -> None:
    good = _save(tmp_path / "good.safetensors")
    path = tmp_path / "bad.safetensors"
    save_file(load_file(str(good)), str(path), metadata={"dvsapp": "{not json"})
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    _assert_one_line(err, path, "malformed metadata")


def test_unknown_architecture(tmp_path: Path) -> None:
    good = _save(tmp_path / "good.safetensors")
    meta = _meta(good)
    meta["architecture"] = meta["config"]["arch"] = "resnet9000"
    path = _rewrite(good, tmp_path / "bad.safetensors", meta)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    _assert_one_line(err, path, "unknown architecture 'resnet9000'", "resnet17")
    assert inspect_checkpoint(path)["architecture"] == "resnet9000"  # inspect builds nothing


def test_missing_tensor_is_named(tmp_path: Path) -> None:
    good = _save(tmp_path / "good.safetensors")
    path = _rewrite(good, tmp_path / "bad.safetensors", _meta(good), drop="fc.weight")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    _assert_one_line(err, path, "do not fit", "missing fc.weight")


def test_tensors_of_another_architecture(tmp_path: Path) -> None:
    good = _save(tmp_path / "good.safetensors")
    meta = _meta(good)
    meta["architecture"] = meta["config"]["arch"] = "toy_wide"
    path = _rewrite(good, tmp_path / "bad.safetensors", meta)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    _assert_one_line(err, path, "'toy_wide'", "missing extra.weight, extra.bias")
    bntt = _save(tmp_path / "bntt.safetensors", "toy_bntt")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(bntt, expect_arch="toy")
    _assert_one_line(err, bntt, "expected 'toy'", "unexpected gamma")


def test_shape_mismatch_is_named(tmp_path: Path) -> None:
    model = make_toy(width=8)
    model.config = make_toy(width=16).config  # the metadata now claims width 16
    path = _save(tmp_path / "m.safetensors", model=model)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    _assert_one_line(err, path, "shape mismatch: conv.weight is [8, 2, 1, 1] in the file")


class _Marker:
    """Unpickling this creates a file: proof that something unpickled it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


def test_pickles_are_refused_without_unpickling(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled.txt"
    raw = tmp_path / "model.pkl"
    raw.write_bytes(pickle.dumps({"state_dict": _Marker(marker)}, protocol=4))
    pt = tmp_path / "model.pt"
    torch.save({"state_dict": _Marker(marker)}, pt)
    assert not marker.exists()
    for path, words in ((raw, "pickle"), (pt, "torch.save")):
        with pytest.raises(CheckpointError) as err:
            load_checkpoint(path)
        _assert_one_line(err, path, words, "never unpickles")
        with pytest.raises(CheckpointError):
            inspect_checkpoint(path)
    assert not marker.exists()
    pickle.loads(raw.read_bytes())["state_dict"].close()  # the trap is real: it makes the file
    assert marker.exists()


def _header_length(path: Path) -> int:
    return int.from_bytes(path.read_bytes()[:8], "little")


def test_a_header_length_that_looks_like_a_pickle_opcode_still_loads(tmp_path: Path) -> None:
    # A header of 0x380 bytes starts the file with b"\x80\x03", a pickle's first two bytes.
    path = tmp_path / "m.safetensors"
    base = _header_length(_save(path, extra={"note": ""}))
    target = next(t for t in (0x280, 0x380, 0x480, 0x580, 0x1280, 0x1380) if t > base + 16)
    for pad in range(target - base - 16, target - base + 16):
        _save(path, extra={"note": "x" * pad})
        if _header_length(path) == target:
            break
    assert path.read_bytes()[:2] == bytes([0x80, target >> 8])
    assert load_checkpoint(path).extra["note"] == "x" * pad


def test_a_missing_model_family_gives_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from dvsapp.snn import registry

    monkeypatch.setitem(registry._BUILTIN, "vgg9", ("dvsapp.snn.no_such_family", "BnttVGG"))
    config = registry.ModelConfig(arch="vgg9")
    with pytest.raises(
        DvsappError, match=r"model family dvsapp\.snn\.no_such_family is unavailable"
    ):
        build_model(config)
    with pytest.raises(DvsappError, match="architecture 'resnet_small': unknown tdBN neuron"):
        build_model(registry.ModelConfig(arch="resnet_small", neuron={"leak": 0.9}))


def test_registry_knows_the_shipped_architectures() -> None:
    assert set(ARCHITECTURES) == {
        "resnet17",
        "resnet19",
        "resnet_small",
        "vgg9",
        "vgg11",
        "vgg_small",
    }
    assert "toy" in known_architectures()
    with pytest.raises(DvsappError, match="unknown architecture 'nope'"):
        build_model(make_toy().config.__class__(arch="nope"))


# -- the shipped architectures ---------------------------------------------------------------
REAL_BINNING = BinningConfig(sensor_size=(32, 32), time_window_us=5_000, input_size=(16, 16))


def _save_real(path: Path, arch: str) -> tuple[Path, torch.nn.Module]:
    model = small_real_model(arch)
    return _save(path, model=model, binning=REAL_BINNING, sensor_size=(32, 32)), model


@pytest.mark.parametrize("arch", sorted(REAL_SMALL))
def test_shipped_architectures_round_trip(tmp_path: Path, arch: str) -> None:
    path, model = _save_real(tmp_path / f"{arch}.safetensors", arch)
    ckpt = load_checkpoint(path, expect_arch=arch)
    x = torch.randint(0, 4, (4, 1, 2, 16, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x.float())
        assert torch.equal(ckpt.model(x.float()), expected)
    assert expected.std() > 0  # the model is alive: a wrong weight would show
    assert type(ckpt.model) is type(model) and ckpt.config == model.config
    assert ckpt.metadata["family"] == ("tdbn" if arch.startswith("resnet") else "bntt")


def test_a_checkpoint_of_the_other_family_names_the_tensors(tmp_path: Path) -> None:
    path, _ = _save_real(tmp_path / "vgg.safetensors", "vgg_small")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path, expect_arch="resnet_small")
    _assert_one_line(
        err,
        path,
        "holds a 'vgg_small' model, expected 'resnet_small'",
        "missing conv1.",
        "unexpected fc1.bntt.",
    )
    meta = _meta(path)
    meta["architecture"] = meta["config"]["arch"] = "vgg9"  # same family, other layout
    bad = _rewrite(path, tmp_path / "bad.safetensors", meta)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(bad)
    _assert_one_line(err, bad, "do not fit architecture 'vgg9'")


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_default_config_matches_the_builders(arch: str) -> None:
    import importlib

    module = importlib.import_module(
        "dvsapp.snn.resnet" if arch.startswith("resnet") else "dvsapp.snn.vgg"
    )
    built = getattr(module, arch)(num_classes=5, width=4)
    assert default_config(arch, num_classes=5, width=4) == built.config
