"""Nodes whose parameters change with the time step: ``StepAffine``, the per-step
normalisation of BNTT (Batch Normalization Through Time, Kim & Panda 2020), as SpikingJelly's
``layer.BatchNormThroughTime1d/2d`` computes it at inference.

``StepAffine`` holds tables ``scale`` and ``shift`` of shape ``[T, C]`` (one row per trained
time step, one value per channel) and its own step counter ``t`` (0 after ``reset()``)::

    y = x * scale[t] + shift[t]    (broadcast over the channel dimension of x; t += 1)

A BN of step t folds into row t: ``scale = gamma_t / sqrt(var_t + eps)``, ``shift = beta_t -
mean_t * scale`` (BNTT's BNs have no beta). Beyond the trained T the counter is clamped to the
last row (the last step's statistics go on being used); SpikingJelly itself raises there, so
a stream that should match it step for step resets every T steps. The counter is a Python
int: a CUDA-graph replay does not advance it (graphs are captured per step index).
"""

from __future__ import annotations

import torch

from dvsapp.snn.graph.nodes import GraphNode
from dvsapp.snn.graph.spec import NodeSpec


class StepAffine(GraphNode):
    """The ``StepAffine`` node (module docstring)."""

    tensor_names = ("scale", "shift")

    def __init__(self, spec: NodeSpec, dt: float) -> None:
        super().__init__(spec, dt)
        #: Steps taken since the last reset (the row used next, before clamping).
        self.state: int = 0

    def reset(self) -> None:
        self.state = 0

    @property
    def steps(self) -> int:
        """T: the number of per-step rows."""
        return int(self.scale.shape[0])

    def step(self, x: torch.Tensor) -> torch.Tensor:
        t = min(int(self.state or 0), self.steps - 1)
        self.state = int(self.state or 0) + 1
        view = (1, -1, *([1] * (x.dim() - 2)))
        return x * self.scale[t].view(view) + self.shift[t].view(view)
