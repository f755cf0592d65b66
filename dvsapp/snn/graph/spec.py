"""The graph spec: a JSON-safe description of a graph model's nodes and edges.

It is what a checkpoint stores in ``ModelConfig.graph`` next to the tensors, so a graph model
is rebuilt from metadata alone (no pickle, no code from the network's source)::

    {"nodes": [{"name": "0", "type": "Conv2d", "params": {"stride": [2, 2], ...},
                "tensors": {"weight": [16, 2, 5, 5], "bias": [16]},
                "shape": [16, 16, 16]}, ...],
     "edges": [["input", "0"], ...],
     "input_shape": [2, 34, 34], "dt": 0.0001, "readout": "spike_count",
     "source": {"framework": "nir", "file": "cnn.nir", ...}}

``shape`` is the node's output shape without the batch dimension. Node names are the source
graph's (nested subgraphs flattened as ``sub.node``); ``tensors`` gives each parameter's
shape (the values live in the safetensors data under ``nodes.<key>.<param>``).

:func:`execution_order` orders the nodes for one step: a depth-first walk from the input,
where an edge that closes a cycle (a recurrent connection) carries the previous step's
output of its source.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dvsapp.errors import ConfigError

#: Node types a graph model steps (NIR's names).
NODE_TYPES: tuple[str, ...] = (
    "Input", "Output", "Affine", "Linear", "Scale", "Conv1d", "Conv2d", "Flatten",
    "SumPool2d", "AvgPool2d", "Threshold", "I", "LI", "IF", "LIF", "CubaLI", "CubaLIF", "Delay",
    "Identity",  # a nested graph's Input and Output, once flattened; a residual add
    "Discrete", "MaxPool2d",  # networks imported from their framework (graph/discrete.py)
    "GlobalAvgPool2d", "SnnTorchAlpha",
    "StepAffine",  # per-step tables (BNTT), graph/stepwise.py
)  # fmt: skip
#: Node types whose output is a spike train (their layers show in rasters and rates).
SPIKING_TYPES: frozenset[str] = frozenset(
    {"IF", "LIF", "CubaLIF", "Threshold", "Discrete", "SnnTorchAlpha"}
)
#: Node types without state (a recurrent edge from one of them carries its response to
#: silence into the first step, e.g. a W_rec bias).
STATELESS_TYPES: frozenset[str] = frozenset(
    {"Affine", "Linear", "Scale", "Conv1d", "Conv2d", "Flatten", "SumPool2d", "AvgPool2d"}
    | {"MaxPool2d", "Identity", "GlobalAvgPool2d"}
)
#: How a window's class and probabilities come from the output (see dvsapp.snn.stepper).
READOUTS: tuple[str, ...] = ("spike_count", "mean_softmax")
#: What a spiking node does after a spike: NIR's reset to ``v_reset``, or subtract threshold.
RESETS: tuple[str, ...] = ("to_v_reset", "subtract", "none")


@dataclass
class NodeSpec:
    """One node: its type, scalar parameters, tensor shapes and output shape."""

    name: str
    type: str
    params: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, list[int]] = field(default_factory=dict)
    shape: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "params": dict(self.params),
            "tensors": {k: list(v) for k, v in self.tensors.items()},
            "shape": list(self.shape),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> NodeSpec:
        node = cls(
            name=str(d["name"]),
            type=str(d["type"]),
            params=dict(d.get("params", {})),
            tensors={str(k): [int(s) for s in v] for k, v in d.get("tensors", {}).items()},
            shape=[int(s) for s in d.get("shape", [])],
        )
        if node.type not in NODE_TYPES:
            raise ConfigError(f"graph node {node.name!r}: unknown type {node.type!r}")
        return node


@dataclass
class GraphSpec:
    """The whole graph (see the module docstring)."""

    nodes: list[NodeSpec]
    edges: list[tuple[str, str]]
    input_shape: list[int]
    dt: float
    readout: str = "spike_count"
    source: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.readout not in READOUTS:
            raise ConfigError(f"graph readout must be one of {READOUTS}, got {self.readout!r}")
        if not (isinstance(self.dt, int | float) and math.isfinite(self.dt) and self.dt > 0):
            raise ConfigError(f"graph dt must be a positive number of seconds, got {self.dt!r}")

    @property
    def by_name(self) -> dict[str, NodeSpec]:
        return {n.name: n for n in self.nodes}

    def node_of_type(self, type_: str) -> NodeSpec:
        """The one node of ``type_`` (Input or Output)."""
        found = [n for n in self.nodes if n.type == type_]
        if len(found) != 1:
            raise ConfigError(f"graph needs exactly one {type_} node, has {len(found)}")
        return found[0]

    @property
    def output_shape(self) -> list[int]:
        return self.node_of_type("Output").shape

    def to_dict(self) -> dict[str, Any]:
        return {
            "nodes": [n.to_dict() for n in self.nodes],
            "edges": [list(e) for e in self.edges],
            "input_shape": list(self.input_shape),
            "dt": float(self.dt),
            "readout": self.readout,
            "source": dict(self.source),
        }

    @classmethod
    def from_dict(cls, d: Any) -> GraphSpec:
        if not isinstance(d, Mapping):
            raise ConfigError("graph spec must be a JSON object")
        try:
            return cls(
                nodes=[NodeSpec.from_dict(n) for n in d["nodes"]],
                edges=[(str(a), str(b)) for a, b in d["edges"]],
                input_shape=[int(s) for s in d["input_shape"]],
                dt=float(d["dt"]),
                readout=str(d.get("readout", "spike_count")),
                source=dict(d.get("source", {})),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"malformed graph spec ({type(e).__name__}: {e})") from None


@dataclass(frozen=True)
class Step:
    """One node's place in a step: its inputs this step and its inputs from the last step."""

    name: str
    inputs: tuple[str, ...]
    recurrent: tuple[str, ...]


def execution_order(
    names: Sequence[str], edges: Sequence[tuple[str, str]], input_name: str
) -> list[Step]:
    """Every node reachable from ``input_name``, in an order where each node's same-step
    inputs come first. Edges that close a cycle (found by a depth-first walk that follows
    edges in the order given) are recurrent: they deliver the source's previous output.

    Raises ConfigError naming a node that the input does not reach or an edge to an
    unknown node.
    """
    known = set(names)
    succ: dict[str, list[str]] = {n: [] for n in names}
    for a, b in edges:
        for end in (a, b):
            if end not in known:
                raise ConfigError(f"edge {a!r} -> {b!r} names a node {end!r} that does not exist")
        succ[a].append(b)
    back: set[tuple[str, str]] = set()
    post: list[str] = []
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[tuple[str, int]] = [(input_name, 0)]
    state[input_name] = 1
    while stack:  # iterative DFS (graphs can be deep)
        node, i = stack[-1]
        if i < len(succ[node]):
            stack[-1] = (node, i + 1)
            nxt = succ[node][i]
            if state.get(nxt) == 1:
                back.add((node, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, 0))
        else:
            state[node] = 2
            post.append(node)
            stack.pop()
    unreached = [n for n in names if n not in state]
    if unreached:
        raise ConfigError(f"node {unreached[0]!r} is not reachable from the input {input_name!r}")
    order = post[::-1]
    preds: dict[str, list[str]] = {n: [] for n in names}
    recs: dict[str, list[str]] = {n: [] for n in names}
    for a, b in edges:
        (recs if (a, b) in back else preds)[b].append(a)
    return [Step(n, tuple(preds[n]), tuple(recs[n])) for n in order]
