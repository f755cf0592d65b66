"""``dvsapp train --init CKPT``: start from another checkpoint's weights (fine-tuning).

Typical use: start a real DVS128 Gesture run from the shipped synthetic-gesture model, or
retrain a model at another T. Every tensor whose name and shape match is copied; the rest
keep their fresh initialisation and are listed, e.g. the classifier when the number of
classes differs, or BNTT's per-step tables when T grows (when T shrinks, its first t tables
are taken, as in IIR). A checkpoint of another architecture, or one sharing no tensor, is a
one-line error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from dvsapp.errors import ConfigError
from dvsapp.snn.base import SpikingModel


def copy_matching(model: SpikingModel, source: Mapping[str, torch.Tensor]) -> list[str]:
    """Copy every tensor of ``source`` (a state dict) whose name and shape match ``model``'s
    into it; BNTT's per-step tables give their first t steps when they have more. Returns
    the names of ``model``'s tensors that were left as they were."""
    from dvsapp.snn.bntt import BnttNorm

    per_step = {n for n, m in model.named_modules() if isinstance(m, BnttNorm)}
    kept: list[str] = []
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            src = source.get(name)
            if src is not None and name.rpartition(".")[0] in per_step:
                src = src[: tensor.shape[0]]  # BNTT: the first t per-step tables
            if src is None or src.shape != tensor.shape:
                kept.append(name)
                continue
            tensor.copy_(src.to(tensor.dtype))
    return kept


def init_from_checkpoint(model: SpikingModel, path: str | os.PathLike[str]) -> list[str]:
    """Copy ``path``'s matching tensors into ``model``; returns the names left as they were."""
    from dvsapp.snn.checkpoint import load_checkpoint

    source = load_checkpoint(path, torch.device("cpu")).model
    if source.config.arch != model.config.arch:
        raise ConfigError(
            f"{os.fspath(path)}: --init needs a {model.config.arch} checkpoint, "
            f"this one is {source.config.arch}"
        )
    kept = copy_matching(model, source.state_dict())
    if len(kept) == len(model.state_dict()):
        raise ConfigError(f"{os.fspath(path)}: --init shares no tensor with the model")
    return kept
