"""Small helpers for the graph-model tests: open a .nir file as a stepping model."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import torch

from dvsapp.snn.graph.importer import ImportOptions, import_nir
from dvsapp.snn.graph.model import GraphModel


def nir_model(path: Path, **options: Any) -> GraphModel:
    """The graph model of a .nir file (eval mode, CPU); 1-D inputs fed as 1xN frames."""
    ckpt = import_nir(path, ImportOptions(**options))
    assert isinstance(ckpt.model, GraphModel)
    return ckpt.model


def step_all(model: GraphModel, x: torch.Tensor) -> torch.Tensor:
    """``[T, B, ...]`` stepped from a fresh state -> ``[T, B, K]``."""
    model.reset()
    with torch.no_grad():
        return torch.stack([model.step(x_t) for x_t in x])


def build_from_code(code_file: Path, name: str) -> torch.nn.Module:
    """``name()`` from a model file, the way ``dvsapp import --code`` runs it (the module is
    registered, so that torch.save can pickle what it defines)."""
    spec = importlib.util.spec_from_file_location(f"{code_file.stem}_{name}", code_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return getattr(module, name)()


def spike_frames(
    t: int, shape: tuple[int, ...], seed: int = 1, density: float = 0.2
) -> torch.Tensor:
    """``[t, 1, *shape]`` random spike frames of value 2 (two events per pixel)."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((t, 1, *shape), generator=g) < density).float() * 2.0
