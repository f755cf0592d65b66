"""GraphModel: a network from elsewhere (a NIR graph, ...) as a dvsapp :class:`SpikingModel`.

Built from ``ModelConfig.graph`` (a :class:`~dvsapp.snn.graph.spec.GraphSpec` as JSON) alone:
the tensors come from the checkpoint's safetensors data, nothing is unpickled and no code
from the network's source runs. Each ``step`` runs the nodes once in
:func:`~dvsapp.snn.graph.spec.execution_order`; a node's inputs are summed (NIR's rule), and
a recurrent edge delivers its source's output of the previous step (nothing at step 0).

The spiking nodes (IF, LIF, CubaLIF) are :class:`~dvsapp.snn.base.SpikingNeuron` layers
named by their graph node names, so rasters, Vm, rates, health and the threshold scale work
as on the ResNets and VGGs. ``readout`` says how the stepper turns outputs into a class and
probabilities: ``"spike_count"`` (the class with most output spikes; probabilities are each
class's share of the output spikes so far, uniform before the first) or ``"mean_softmax"``
(a non-spiking readout: softmax of the mean output, as for our own models).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from dvsapp.errors import ConfigError
from dvsapp.snn.base import ModelConfig, SpikingModel, SpikingNeuron
from dvsapp.snn.graph.nodes import GraphNeuron, GraphNode, build_node
from dvsapp.snn.graph.spec import STATELESS_TYPES, GraphSpec, Step, execution_order


def module_key(name: str) -> str:
    """A torch module name for a graph node name (torch forbids '.' and '')."""
    return name.replace(".", ":") or "_"


class GraphModel(SpikingModel):
    """A stepped graph of NIR-style nodes (module docstring)."""

    family = "graph"

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        if config.graph is None:
            raise ValueError("a graph model needs config.graph")
        spec = GraphSpec.from_dict(config.graph)
        self.spec = spec
        self.readout = spec.readout
        inp = spec.node_of_type("Input")
        out = spec.node_of_type("Output")
        keys = [module_key(n.name) for n in spec.nodes]
        if len(set(keys)) != len(keys):
            raise ValueError("graph node names collide once '.' is replaced by ':'")
        self.nodes = nn.ModuleDict({module_key(n.name): build_node(n, spec.dt) for n in spec.nodes})
        order = execution_order([n.name for n in spec.nodes], spec.edges, inp.name)
        if out.name not in {s.name for s in order}:
            raise ValueError(f"the output node {out.name!r} is not reachable from the input")
        index = {s.name: i for i, s in enumerate(order)}
        self._program = [
            (
                index[s.name],
                self.nodes[module_key(s.name)],
                tuple(index[a] for a in s.inputs),
                tuple(index[a] for a in s.recurrent),
            )
            for s in order[1:]  # order[0] is the input
        ]

        self._out = index[out.name]
        self._n = len(order)
        self._recurrent = any(p[3] for p in self._program)
        self._prev: list[torch.Tensor | None] = [None] * self._n
        #: Recurrent sources that are stateless maps (a W_rec Affine, ...): before the first
        #: step they deliver their response to silence (a bias), as they would to the zero
        #: spikes of a fresh state; stateful sources deliver nothing.
        by_name = spec.by_name
        self._rec_init = {
            index[a]: (self.nodes[module_key(a)], tuple(by_name[_first_input(order, a)].shape))
            for s in order
            for a in s.recurrent
            if by_name[a].type in STATELESS_TYPES
        }
        self._input_shape = tuple(spec.input_shape)
        self._names = {module_key(n.name): n.name for n in spec.nodes}
        self.register_load_state_dict_post_hook(lambda module, _keys: module.refresh())

    # -- structure -------------------------------------------------------------------------
    def spiking_layers(self) -> dict[str, SpikingNeuron]:
        """The spiking nodes in execution order, by their graph node names."""
        cache = self.__dict__.get("_spiking_layers")
        if cache is None:
            cache = {
                self._names[_key_of(self.nodes, m)]: m
                for _, m, _, _ in self._program
                if isinstance(m, GraphNeuron)
            }
            self.__dict__["_spiking_layers"] = cache
        return cache

    def refresh(self) -> None:
        """Recompute every node's derived constants (after new tensors were loaded)."""
        for m in self.nodes.values():
            m.refresh()

    # -- stepping --------------------------------------------------------------------------
    def _adapt(self, x: torch.Tensor) -> torch.Tensor:
        """A ``[B, C, H, W]`` frame as the graph's input (flattened for a 1-D input, the
        height dropped for a ``[C, L]`` input)."""
        if tuple(x.shape[1:]) == self._input_shape:
            return x
        if x.shape[1:].numel() == math.prod(self._input_shape):
            return x.reshape(x.shape[0], *self._input_shape)
        raise ConfigError(
            f"frame of shape {list(x.shape[1:])} for a graph taking {list(self._input_shape)}"
        )

    def step(self, x_t: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> this step's output ``[B, K]``; the state persists."""
        outs: list[Any] = [None] * self._n
        outs[0] = self._adapt(x_t)
        prev = self._prev
        if self._rec_init and prev[next(iter(self._rec_init))] is None:
            prev = self._silent_responses(outs[0])
        for i, node, inputs, recurrent in self._program:
            s = outs[inputs[0]]  # every node but the input has a same-step input (DFS tree)
            for j in inputs[1:]:
                s = s + outs[j]
            for j in recurrent:
                if prev[j] is not None:
                    s = s + prev[j]
            outs[i] = node.step(s)
        if self._recurrent:
            self._prev = outs
        self.steps_taken += 1
        return outs[self._out].flatten(1)

    def _silent_responses(self, x: torch.Tensor) -> list[torch.Tensor | None]:
        prev: list[torch.Tensor | None] = [None] * self._n
        for j, (node, shape) in self._rec_init.items():
            prev[j] = node.step(x.new_zeros((x.shape[0], *shape)))
        return prev

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[T, B, C, H, W]`` -> ``[T, B, K]`` from a fresh state; the streaming state is
        kept (saved and restored around the sequence)."""
        saved = self._save_state()
        self.reset()
        try:
            return torch.stack([self.step(x_t) for x_t in x])
        finally:
            self._restore_state(saved)

    def _reset_extra(self) -> None:
        for m in self.nodes.values():
            if isinstance(m, GraphNode):
                m.reset()
        self._prev = [None] * self._n

    def _save_state(self) -> dict[str, Any]:
        return {
            "neurons": [(m.v, m.o) for m in self.spiking_layers().values()],
            "nodes": [
                (m, dict(m.__dict__)) for m in self.nodes.values() if isinstance(m, GraphNode)
            ],
            "prev": self._prev,
            "steps": self.steps_taken,
        }

    def _restore_state(self, saved: dict[str, Any]) -> None:
        for m, (v, o) in zip(self.spiking_layers().values(), saved["neurons"], strict=True):
            m.v, m.o = v, o
        for m, d in saved["nodes"]:
            for k in ("state", "buffer"):
                if k in d:
                    setattr(m, k, d[k])
        self._prev = saved["prev"]
        self.steps_taken = saved["steps"]


def _first_input(order: list[Step], name: str) -> str:
    """The first same-step input of node ``name`` (whose shape is the node's input shape)."""
    return next(s.inputs[0] for s in order if s.name == name)


def _key_of(modules: nn.ModuleDict, module: nn.Module) -> str:
    return next(k for k, m in modules.items() if m is module)
