"""Checkpoints: one ``.safetensors`` file, our JSON in its header metadata. Never unpickles.

The file is a plain safetensors file (readable by any safetensors tool): the tensors are the
model's ``state_dict`` (CPU, contiguous), and the header's ``__metadata__`` holds one key,
``"dvsapp"``, whose value is a JSON object::

    {"format": "dvsapp-checkpoint", "version": 1,
     "architecture": "resnet17", "family": "tdbn", "config": {...ModelConfig.to_dict()...},
     "class_names": [...], "sensor_size": [w, h, polarities], "input_size": [w, h],
     "binning": {...BinningConfig.to_dict()...}, "time_steps": T, "neuron": {...},
     "trained_on": "...", "metrics": {...}, "extra": {...}, "tensors_sha256": "...",
     "dvsapp_version": "...", "created_utc": "..."}

``tensors_sha256`` (over names, dtypes, shapes and bytes) catches damaged tensor data, which
safetensors itself cannot: a file whose bytes changed but not its length loads otherwise.

:func:`load_checkpoint` reads and checks the header itself before safetensors touches the
file, so every failure is a one-line :class:`CheckpointError` naming the file: missing or
unreadable, a pickle or a ``torch.save`` zip (refused, never opened by pickle), not
safetensors, truncated or corrupt (checksum included), not ours, malformed metadata, an
unknown architecture, or tensors that do not fit the architecture (the first missing /
unexpected / shape-mismatched ones are named).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import os
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from dvsapp import __version__
from dvsapp.binning import BinningConfig
from dvsapp.errors import ConfigError, DvsappError
from dvsapp.snn.base import ModelConfig, SpikingModel

FORMAT = "dvsapp-checkpoint"
VERSION = 1
METADATA_KEY = "dvsapp"
#: safetensors' own limit on the JSON header.
MAX_HEADER_BYTES = 100_000_000
_REQUIRED = ("format", "version", "architecture", "config", "class_names", "sensor_size", "binning")
_DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1,
    "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1,
}  # fmt: skip
_SHOWN = 3  # tensor names listed per kind in a mismatch message


class CheckpointError(DvsappError):
    """A checkpoint that cannot be used: names the file and, where known, the byte offset."""

    def __init__(
        self, path: str | os.PathLike[str], message: str, offset: int | None = None
    ) -> None:
        self.path = os.fspath(path)
        self.message = " ".join(message.split())  # always one line
        self.offset = offset
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" (at byte {self.offset})" if self.offset is not None else ""
        return f"{self.path}: {self.message}{where}"


@dataclass
class Checkpoint:
    """A loaded checkpoint: the model (eval mode, on its device) and what it was trained for."""

    path: Path
    model: SpikingModel
    config: ModelConfig
    class_names: list[str]
    binning: BinningConfig
    sensor_size: tuple[int, int, int]
    trained_on: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)  # the raw JSON

    @property
    def arch(self) -> str:
        return self.config.arch

    @property
    def time_steps(self) -> int:
        return self.config.time_steps


# -- saving ----------------------------------------------------------------------------
def save_checkpoint(
    path: str | os.PathLike[str],
    model: SpikingModel,
    *,
    class_names: Sequence[str],
    binning: BinningConfig,
    sensor_size: Sequence[int],
    trained_on: str,
    metrics: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``model`` and its metadata to one ``.safetensors`` file (atomically); returns it.

    ``sensor_size`` is tonic's (width, height[, polarities]); it must equal the binning's.
    """
    from safetensors.torch import save_file

    out = Path(path)
    config = model.config
    sensor = _sensor(sensor_size)
    tensors = _host_tensors(model)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "architecture": config.arch,
        "family": model.family,
        "config": config.to_dict(),
        "class_names": [str(c) for c in class_names],
        "sensor_size": list(sensor) if sensor else sensor_size,
        "input_size": list(config.input_size),
        "binning": binning.to_dict(),
        "time_steps": config.time_steps,
        "neuron": dict(config.neuron),
        "trained_on": str(trained_on),
        "metrics": dict(metrics),
        "extra": dict(extra or {}),
        "tensors_sha256": tensors_digest(tensors),
        "dvsapp_version": __version__,
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    try:
        _parse_metadata(meta)
        text = json.dumps(meta, allow_nan=False)
    except (_Malformed, ValueError, TypeError) as e:
        raise CheckpointError(out, f"cannot save: {e}") from None
    if not out.parent.is_dir():
        raise CheckpointError(out, "cannot save: the folder does not exist")
    tmp = out.parent / f".{out.name}.{secrets.token_hex(4)}.part"
    try:
        save_file(tensors, str(tmp), metadata={METADATA_KEY: text})
        os.replace(tmp, out)
    except OSError as e:
        raise CheckpointError(out, f"cannot save: {e.strerror or e}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return out


def tensors_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors' names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().to("cpu").contiguous()
        h.update(f"{name}|{t.dtype}|{list(t.shape)}|".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def _host_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state_dict on the CPU, contiguous, with no two tensors sharing memory."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, value in model.state_dict().items():
        t = value.detach().to("cpu").contiguous()
        if t.numel():
            ptr = t.untyped_storage().data_ptr()
            if ptr in seen:
                t = t.clone()
            seen.add(t.untyped_storage().data_ptr())
        out[name] = t
    return out


# -- reading the header ----------------------------------------------------------------
class _Malformed(Exception):
    """Metadata that is not what version 1 promises (message says what)."""


def _refuse_foreign(path: Path, head: bytes) -> None:
    """Name the common wrong files; pickles are recognised by their first bytes only."""
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise CheckpointError(
            path, "a Python pickle, not a safetensors checkpoint: refused (dvsapp never unpickles)"
        )
    if head.startswith(b"PK\x03\x04"):
        raise CheckpointError(
            path,
            "a zip archive (a torch.save .pt file?), not a safetensors checkpoint: refused "
            "(dvsapp never unpickles)",
        )


def _read_header(path: Path) -> tuple[dict[str, Any], int]:
    """The safetensors JSON header and the file size, checked against the file's length."""
    if not path.exists():
        raise CheckpointError(path, "no such file")
    if path.is_dir():
        raise CheckpointError(path, "is a directory, not a checkpoint file")
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little") if size >= 8 else -1
            plausible = 0 <= n <= min(size - 8, MAX_HEADER_BYTES)
            raw = f.read(n) if plausible else b""
    except OSError as e:
        raise CheckpointError(path, f"cannot read: {e.strerror or e}") from None
    if not raw.startswith(b"{"):  # not safetensors: say what it is where we can tell
        _refuse_foreign(path, head)
    if size < 8:
        raise CheckpointError(path, f"not a safetensors file: only {size} bytes")
    if not plausible:
        raise CheckpointError(
            path,
            f"not a safetensors file, or truncated: its first 8 bytes announce a "
            f"{n}-byte header but the file has {size} bytes",
        )
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise CheckpointError(path, "not a safetensors file: its header is not JSON", 8) from None
    if not isinstance(header, dict):
        raise CheckpointError(path, "not a safetensors file: its header is not a JSON object", 8)
    _check_extent(path, header, size - 8 - n, 8 + n)
    return header, size


def _check_extent(path: Path, header: dict[str, Any], data_bytes: int, data_start: int) -> None:
    """Every tensor's byte range lies inside the file (else: truncated or corrupt)."""
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            begin, stop = (int(v) for v in info["data_offsets"])
            numel = math.prod(int(d) for d in info["shape"])
            itemsize = _DTYPE_BYTES.get(str(info["dtype"]))
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(path, f"corrupt safetensors header: entry {name!r}", 8) from None
        if itemsize is not None and stop - begin != numel * itemsize:
            raise CheckpointError(path, f"corrupt safetensors header: tensor {name!r} size", 8)
        end = max(end, stop)
    if end > data_bytes:
        raise CheckpointError(
            path,
            f"truncated: the tensors need {end} bytes of data, the file holds {data_bytes}",
            data_start + data_bytes,
        )


def _metadata_json(path: Path, header: dict[str, Any]) -> dict[str, Any]:
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or METADATA_KEY not in meta:
        raise CheckpointError(
            path,
            f"a safetensors file without dvsapp metadata (no {METADATA_KEY!r} key): "
            "not a dvsapp checkpoint",
        )
    try:
        data = json.loads(meta[METADATA_KEY])
    except (TypeError, ValueError):
        raise CheckpointError(path, "malformed metadata: the dvsapp entry is not JSON") from None
    if not isinstance(data, dict):
        raise CheckpointError(path, "malformed metadata: the dvsapp entry is not a JSON object")
    return data


# -- metadata --------------------------------------------------------------------------
@dataclass
class _Meta:
    config: ModelConfig
    class_names: list[str]
    binning: BinningConfig
    sensor_size: tuple[int, int, int]
    trained_on: str
    metrics: dict[str, Any]
    extra: dict[str, Any]


def _sensor(value: Any) -> tuple[int, int, int] | None:
    """tonic's (w, h, polarities) from 2 or 3 positive ints (polarities default 2)."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        return None
    ints = all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value)
    if len(value) not in (2, 3) or not ints or min(value) <= 0:
        return None
    return int(value[0]), int(value[1]), int(value[2]) if len(value) == 3 else 2


def _parse_metadata(data: dict[str, Any]) -> _Meta:
    """Validate version-1 metadata; raise :class:`_Malformed` with the first problem."""
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise _Malformed(f"incomplete metadata: no {', '.join(missing)}")
    if data["format"] != FORMAT:
        raise _Malformed(f"metadata format is {data['format']!r}, not {FORMAT!r}")
    if data["version"] != VERSION:
        raise _Malformed(
            f"checkpoint format version {data['version']!r}; this dvsapp reads {VERSION}"
        )
    try:
        config = ModelConfig.from_dict(data["config"])
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
        raise _Malformed(f"malformed metadata: config ({type(e).__name__}: {e})") from None
    if data["architecture"] != config.arch:
        raise _Malformed(
            f"malformed metadata: architecture {data['architecture']!r} but config {config.arch!r}"
        )
    names = data["class_names"]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise _Malformed("malformed metadata: class_names is not a list of strings")
    if len(names) != config.num_classes:
        raise _Malformed(f"{len(names)} class names for a {config.num_classes}-class model")
    try:
        binning = BinningConfig.from_dict(data["binning"])
    except (ConfigError, TypeError) as e:
        raise _Malformed(f"malformed metadata: {e}") from None
    if binning.input_size != config.input_size or binning.channels != config.in_channels:
        raise _Malformed(
            f"binning makes {binning.channels}x{binning.input_size} frames but the model takes "
            f"{config.in_channels}x{config.input_size}"
        )
    sensor = _sensor(data["sensor_size"])
    if sensor is None or sensor[:2] != binning.sensor_size:
        raise _Malformed(
            f"sensor_size {data['sensor_size']!r} does not match the binning's "
            f"{list(binning.sensor_size)}"
        )
    metrics, extra = data.get("metrics", {}), data.get("extra", {})
    if not isinstance(metrics, dict) or not isinstance(extra, dict):
        raise _Malformed("malformed metadata: metrics and extra must be JSON objects")
    return _Meta(config, names, binning, sensor, str(data.get("trained_on", "")), metrics, extra)


def _metadata(path: Path, header: dict[str, Any]) -> tuple[dict[str, Any], _Meta]:
    data = _metadata_json(path, header)
    try:
        return data, _parse_metadata(data)
    except _Malformed as e:
        raise CheckpointError(path, str(e)) from None


# -- loading ---------------------------------------------------------------------------
def _names(names: list[str]) -> str:
    more = f" (+{len(names) - _SHOWN} more)" if len(names) > _SHOWN else ""
    return ", ".join(names[:_SHOWN]) + more


def tensor_mismatch(expected: Mapping[str, torch.Tensor], found: Mapping[str, Any]) -> str:
    """'' when ``found`` has exactly ``expected``'s names and shapes, else what differs."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    shapes = [
        f"{k} is {list(found[k].shape)} in the file, {list(expected[k].shape)} in the model"
        for k in expected
        if k in found and tuple(found[k].shape) != tuple(expected[k].shape)
    ]
    parts = []
    if missing:
        parts.append(f"missing {_names(missing)}")
    if unexpected:
        parts.append(f"unexpected {_names(unexpected)}")
    if shapes:
        parts.append(f"shape mismatch: {_names(shapes)}")
    return "; ".join(parts)


def _build(path: Path, config: ModelConfig) -> SpikingModel:
    from dvsapp.snn.registry import build_model

    try:
        return build_model(config)
    except ConfigError as e:
        raise CheckpointError(path, str(e)) from None


def _mismatch_with(arch: str, config: ModelConfig, tensors: Mapping[str, torch.Tensor]) -> str:
    """How ``tensors`` differ from ``arch`` built at ``config``'s sizes (its own neuron
    defaults); '' when that arch cannot be built at all."""
    from dvsapp.snn.registry import build_model, default_config

    sizes = dataclasses.asdict(config)
    for key in ("arch", "neuron", "graph"):
        sizes.pop(key)
    try:
        model = build_model(default_config(arch, **sizes))
    except ConfigError:
        return ""
    return tensor_mismatch(model.state_dict(), tensors)


def _load_tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as e:  # safetensors raises its own error types on corrupt data
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(path, f"corrupt safetensors file: {msg}") from None


def load_checkpoint(
    path: str | os.PathLike[str],
    device: str | torch.device = "cpu",
    *,
    expect_arch: str | None = None,
) -> Checkpoint:
    """Read a checkpoint and rebuild its model (eval mode, on ``device``; "auto" allowed).

    ``expect_arch``: refuse a checkpoint of any other architecture (naming the tensors that
    do not fit the expected one).
    """
    from dvsapp.snn.stepper import resolve_device

    p = Path(path)
    header, _ = _read_header(p)
    data, meta = _metadata(p, header)
    config = meta.config
    tensors = _load_tensors(p)
    if expect_arch is not None and expect_arch != config.arch:
        diff = _mismatch_with(expect_arch, config, tensors)
        why = f": its tensors do not fit {expect_arch}: {diff}" if diff else ""
        raise CheckpointError(p, f"holds a {config.arch!r} model, expected {expect_arch!r}{why}")
    model = _build(p, config)
    diff = tensor_mismatch(model.state_dict(), tensors)
    if diff:
        raise CheckpointError(p, f"tensors do not fit architecture {config.arch!r}: {diff}")
    digest = data.get("tensors_sha256")
    if digest is not None and digest != tensors_digest(tensors):
        raise CheckpointError(p, "corrupt: the tensor data does not match its SHA-256 checksum")
    try:
        model.load_state_dict(tensors, strict=True)
        dev = resolve_device(device)
    except (RuntimeError, ConfigError) as e:
        raise CheckpointError(p, f"cannot load: {str(e).splitlines()[0]}") from None
    model.to(dev).eval()
    return Checkpoint(
        path=p,
        model=model,
        config=config,
        class_names=meta.class_names,
        binning=meta.binning,
        sensor_size=meta.sensor_size,
        trained_on=meta.trained_on,
        metrics=meta.metrics,
        extra=meta.extra,
        metadata=data,
    )


def inspect_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint's metadata (checked), plus ``file_bytes``, ``tensors`` and
    ``parameters`` (elements), read from the header alone: no model is built."""
    p = Path(path)
    header, size = _read_header(p)
    data, _ = _metadata(p, header)
    shapes = [info["shape"] for name, info in header.items() if name != "__metadata__"]
    return {
        **data,
        "file": str(p),
        "file_bytes": size,
        "tensors": len(shapes),
        "parameters": sum(math.prod(s) for s in shapes),
    }
