"""Small helpers for the graph-model tests: open a .nir file as a stepping model."""

from __future__ import annotations

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
