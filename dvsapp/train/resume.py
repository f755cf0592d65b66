"""Training state without pickle: ``last.safetensors`` (the model, via ``save_checkpoint``),
``last.optim.safetensors`` (optimizer, LR scheduler and AMP scaler) and ``train_state.json``.

``last.optim.safetensors`` holds every tensor of ``optimizer.state_dict()["state"]`` as
``state.<param index>.<key>``; its ``__metadata__["dvsapp_train"]`` is JSON with the
optimizer's ``param_groups``, the non-tensor per-parameter state, and the scheduler's and
scaler's ``state_dict()`` (plain numbers). Loading rebuilds the state dicts exactly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from dvsapp.errors import ConfigError

OPTIM_FILE = "last.optim.safetensors"
MODEL_FILE = "last.safetensors"
STATE_FILE = "train_state.json"
BEST_FILE = "best.safetensors"


def _jsonable(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def save_training_state(
    path: str | os.PathLike[str],
    optimizer: torch.optim.Optimizer,
    scheduler: Any | None = None,
    scaler: Any | None = None,
) -> Path:
    """Write the optimizer/scheduler/scaler state to one safetensors file (atomically)."""
    from safetensors.torch import save_file

    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, state in sd["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[key] = _jsonable(value)
    meta = {
        "param_groups": _jsonable(sd["param_groups"]),
        "scalar_state": scalars,
        "scheduler": _jsonable(scheduler.state_dict()) if scheduler is not None else None,
        "scaler": _jsonable(scaler.state_dict()) if scaler is not None else None,
    }
    out = Path(path)
    tmp = out.with_name(f".{out.name}.tmp")
    save_file(tensors, str(tmp), metadata={"dvsapp_train": json.dumps(meta)})
    os.replace(tmp, out)
    return out


def load_training_state(
    path: str | os.PathLike[str],
    optimizer: torch.optim.Optimizer,
    scheduler: Any | None = None,
    scaler: Any | None = None,
) -> None:
    """Restore what :func:`save_training_state` wrote (tensors moved to the params' device)."""
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"--resume: {p} is missing")
    try:
        with safe_open(str(p), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["dvsapp_train"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except (KeyError, ValueError, OSError) as e:
        raise ConfigError(f"--resume: {p} is not a dvsapp training state: {e}") from None
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    for idx, values in meta["scalar_state"].items():
        state.setdefault(int(idx), {}).update(values)
    groups = meta["param_groups"]
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    if scheduler is not None and meta.get("scheduler") is not None:
        scheduler.load_state_dict(meta["scheduler"])
    if scaler is not None and meta.get("scaler"):
        scaler.load_state_dict(meta["scaler"])


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    out = Path(path)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    os.replace(tmp, out)


def read_state(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``train_state.json`` of a run folder (one-line errors when it is not one)."""
    d = Path(run_dir)
    p = d / STATE_FILE
    if not d.is_dir():
        raise ConfigError(f"--resume: {d} is not a directory")
    if not p.is_file() or not (d / MODEL_FILE).is_file():
        raise ConfigError(f"--resume: {d} holds no {STATE_FILE} and {MODEL_FILE} (not a run)")
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"--resume: {p} is unreadable: {e}") from None
