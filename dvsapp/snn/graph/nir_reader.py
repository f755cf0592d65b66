"""Read a ``.nir`` file (the Neuromorphic Intermediate Representation, Pedersen et al. 2024)
into a :class:`~dvsapp.snn.graph.spec.GraphSpec` and its tensors.

``nir.read`` parses the HDF5 file (the ``nir`` package, never our own HDF5 walking); this
module then flattens nested subgraphs (``sub.node`` names), normalises each node's
parameters, propagates shapes from the input through every node with the very modules that
will step it (so "shapes that do not chain" is found by the same code that runs), and checks
what a graph model cannot honour. Every refusal is a one-line :class:`NirError` naming the
file and the node: not HDF5, truncated, an unknown node type, an edge to a missing node,
shapes that do not chain, non-finite or non-positive parameters, a Delay that is not a whole
number of steps, Euler steps that would be unstable (``dt/tau > 1``).

The discretisation (``dt``, default 1e-4 s) is described in :mod:`dvsapp.snn.graph.nodes`.
Writers disagree on time: snnTorch writes and reads with dt = 1e-4 s, Norse with 1e-3 s, and
sinabs writes time constants in steps (``--dt 1``). IF and I nodes integrate ``r * x`` per
step whatever ``dt`` is.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dvsapp.errors import ConfigError, DvsappError
from dvsapp.snn.graph.assemble import assemble
from dvsapp.snn.graph.spec import (
    RESETS,
    SPIKING_TYPES,
    GraphSpec,
    NodeSpec,
)

#: One step in seconds unless ``--dt`` says otherwise (snnTorch's convention).
DEFAULT_DT = 1e-4
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

#: NIR node type -> its tensor parameters (those a graph model keeps) and scalar parameters.
_TENSORS: dict[str, tuple[str, ...]] = {
    "Affine": ("weight", "bias"),
    "Linear": ("weight",),
    "Scale": ("scale",),
    "Conv1d": ("weight", "bias"),
    "Conv2d": ("weight", "bias"),
    "Threshold": ("threshold",),
    "I": ("r",),
    "LI": ("tau", "r", "v_leak"),
    "IF": ("r", "v_threshold", "v_reset"),
    "LIF": ("tau", "r", "v_leak", "v_threshold", "v_reset"),
    "CubaLI": ("tau_syn", "tau_mem", "r", "v_leak", "w_in"),
    "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"),
    "Delay": ("delay",),
}
_SCALARS: dict[str, tuple[str, ...]] = {
    "Conv1d": ("stride", "padding", "dilation", "groups"),
    "Conv2d": ("stride", "padding", "dilation", "groups"),
    "Flatten": ("start_dim", "end_dim"),
    "SumPool2d": ("kernel_size", "stride", "padding"),
    "AvgPool2d": ("kernel_size", "stride", "padding"),
}
#: Parameters that must be > 0 (time constants).
_POSITIVE = ("tau", "tau_syn", "tau_mem")


class NirError(DvsappError):
    """A NIR file that dvsapp cannot step: one line naming the file and, where known, the
    node."""

    def __init__(self, path: str | os.PathLike[str], message: str) -> None:
        self.path = os.fspath(path)
        self.message = " ".join(str(message).split())
        super().__init__(f"{self.path}: {self.message}")


def read_nir(
    path: str | os.PathLike[str],
    *,
    dt: float | None = None,
    reset: str | None = None,
    readout: str | None = None,
) -> tuple[GraphSpec, dict[str, torch.Tensor]]:
    """The graph of a ``.nir`` file and its tensors (state-dict names of the model).

    ``dt``: seconds per step (default :data:`DEFAULT_DT`); ``reset``: override every spiking
    node's reset (``"to_v_reset"``, NIR's, by default; ``"subtract"``; ``"none"``);
    ``readout``: ``"spike_count"`` or ``"mean_softmax"`` (default: spike count when the
    output comes from a spiking node, else the softmax of the mean output).
    """
    p = Path(path)
    dt = DEFAULT_DT if dt is None else float(dt)
    if not (math.isfinite(dt) and dt > 0):
        raise NirError(p, f"dt must be a positive number of seconds, got {dt!r}")
    if reset is not None and reset not in RESETS:
        raise NirError(p, f"reset must be one of {RESETS}, got {reset!r}")
    graph = _read_graph(p)
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    try:
        _flatten(graph, "", nodes, edges)
        return _convert(p, nodes, edges, dt, reset, readout)
    except ConfigError as e:
        raise NirError(p, str(e)) from None


def _read_graph(p: Path) -> Any:
    """``nir.read`` with every failure as one line (not HDF5, truncated, unknown node)."""
    try:
        with open(p, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise NirError(p, "no such file") from None
    except IsADirectoryError:
        raise NirError(p, "is a directory, not a NIR file") from None
    except OSError as e:
        raise NirError(p, f"cannot read: {e.strerror or e}") from None
    if head != HDF5_MAGIC:
        raise NirError(p, "not a NIR file: NIR graphs are HDF5 files and this one is not")
    try:
        import nir
    except ImportError:
        raise NirError(p, "reading NIR needs the nir package: pip install nir") from None
    try:
        graph = nir.read(p, type_check=False)
    except OSError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise NirError(p, f"truncated or corrupt HDF5 file ({first})") from None
    except Exception as e:  # nir raises KeyError/ValueError/AssertionError/... on what it
        unknown = _unknown_node_type(p)  # cannot parse: name the node where we can
        raise NirError(p, unknown or f"not a readable NIR graph: {_nir_problem(e)}") from None
    if not isinstance(graph, nir.NIRGraph):
        raise NirError(p, f"holds a single {type(graph).__name__} node, not a graph")
    return graph


def _unknown_node_type(p: Path) -> str | None:
    """'node X has the unknown type Y' for the first node nir has no class for, or None."""
    import h5py
    import nir

    known = {name for name in dir(nir) if isinstance(getattr(nir, name), type)}

    def walk(group: Any, prefix: str) -> str | None:
        for name, node in group.get("nodes", {}).items():
            kind = node["type"][()] if "type" in node else b""
            kind = kind.decode() if isinstance(kind, bytes) else str(kind)
            if kind not in known:
                return (
                    f"node {prefix}{name!r} has the node type {kind!r}, which NIR does not define"
                )
            if kind == "NIRGraph":
                found = walk(node, f"{prefix}{name}.")
                if found:
                    return found
        return None

    try:
        with h5py.File(p, "r") as f:
            return walk(f["node"], "") if "node" in f else None
    except Exception:  # the file is damaged beyond naming a node
        return None


def _nir_problem(e: Exception) -> str:
    text = str(e).splitlines()[0] if str(e) else ""
    if isinstance(e, KeyError):
        return f"missing or unknown entry {text} (an unknown node type or a damaged file?)"
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def _flatten(graph: Any, prefix: str, nodes: dict[str, Any], edges: list[tuple[str, str]]) -> None:
    """Nested NIRGraphs become their nodes (``sub.node``); edges into a subgraph go to its
    Input node, edges out of it leave from its Output node."""
    import nir

    inner: dict[str, tuple[str, str]] = {}  # subgraph name -> (its input, its output)
    for name, node in graph.nodes.items():
        full = f"{prefix}{name}"
        if isinstance(node, nir.NIRGraph):
            ins = [k for k, n in node.nodes.items() if isinstance(n, nir.Input)]
            outs = [k for k, n in node.nodes.items() if isinstance(n, nir.Output)]
            if len(ins) != 1 or len(outs) != 1:
                raise ConfigError(
                    f"subgraph {full!r} needs one Input and one Output node "
                    f"(has {len(ins)} and {len(outs)})"
                )
            _flatten(node, f"{full}.", nodes, edges)
            inner[name] = (f"{full}.{ins[0]}", f"{full}.{outs[0]}")
            nodes[f"{full}.{ins[0]}"] = ("Identity", nodes[f"{full}.{ins[0]}"][1])
            nodes[f"{full}.{outs[0]}"] = ("Identity", nodes[f"{full}.{outs[0]}"][1])
        else:
            nodes[full] = (type(node).__name__, node)
    for a, b in graph.edges:
        a, b = str(a), str(b)
        src = inner[a][1] if a in inner else f"{prefix}{a}"  # "sub.node" names stay valid
        dst = inner[b][0] if b in inner else f"{prefix}{b}"
        edges.append((src, dst))


def _convert(
    p: Path,
    raw: dict[str, Any],
    edges: list[tuple[str, str]],
    dt: float,
    reset: str | None,
    readout: str | None,
) -> tuple[GraphSpec, dict[str, torch.Tensor]]:
    inputs = [n for n, (t, _) in raw.items() if t == "Input"]
    outputs = [n for n, (t, _) in raw.items() if t == "Output"]
    if len(inputs) != 1 or len(outputs) != 1:
        raise ConfigError(
            f"dvsapp feeds one event stream to one readout: the graph has {len(inputs)} "
            f"Input and {len(outputs)} Output nodes at its top level"
        )
    in_shape = _input_shape(inputs[0], raw[inputs[0]][1])
    specs: dict[str, NodeSpec] = {}
    values: dict[str, dict[str, np.ndarray]] = {}
    steppable = {*_TENSORS, *_SCALARS, "Input", "Output", "Identity"}
    for name, (type_, node) in raw.items():
        if type_ not in steppable:
            raise ConfigError(
                f"node {name!r} ({type_}): dvsapp cannot step this node type "
                f"(it steps {', '.join(sorted({*_TENSORS, *_SCALARS}))}, Input, Output "
                "and nested graphs)"
            )
        params = {k: _scalar(name, type_, k, getattr(node, k)) for k in _SCALARS.get(type_, ())}
        values[name] = {k: _array(name, type_, k, node) for k in _TENSORS.get(type_, ())}
        values[name] = {k: v for k, v in values[name].items() if v is not None}
        if type_ in SPIKING_TYPES - {"Threshold"}:
            params["reset"] = reset or "to_v_reset"
        specs[name] = NodeSpec(name=name, type=type_, params=params)

    def check(name: str, shape: tuple[int, ...]) -> None:
        _check_declared(name, raw[name][1], shape)

    source = {"framework": "nir", "file": p.name}
    return assemble(
        specs, values, edges, inputs[0], outputs[0], in_shape, dt, readout, source, check
    )


def _input_shape(name: str, node: Any) -> tuple[int, ...]:
    types = getattr(node, "input_type", None) or getattr(node, "output_type", None) or {}
    shape = next(iter(types.values()), None) if isinstance(types, dict) else None
    if shape is None or np.asarray(shape).size == 0:
        raise ConfigError(f"input node {name!r} does not declare its shape")
    out = tuple(int(s) for s in np.asarray(shape).reshape(-1))
    if min(out) < 1:
        raise ConfigError(f"input node {name!r} declares the shape {list(out)}")
    return out


def _scalar(name: str, type_: str, key: str, value: Any) -> Any:
    """A scalar NIR parameter as JSON (ints, lists of ints, or 'same'/'valid')."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        if value not in ("same", "valid"):
            raise ConfigError(f"node {name!r} ({type_}): {key} {value!r} is not understood")
        return value
    arr = np.asarray(value).reshape(-1)
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
        raise ConfigError(f"node {name!r} ({type_}): {key} {value!r} is not a whole number")
    ints = [int(v) for v in arr]
    if key in ("groups", "start_dim", "end_dim"):
        return ints[0]
    return ints


def _array(name: str, type_: str, key: str, node: Any) -> np.ndarray | None:
    value = getattr(node, key, None)
    if value is None:
        if key == "bias":
            return None
        raise ConfigError(f"node {name!r} ({type_}): no {key}")
    arr = np.asarray(value, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"node {name!r} ({type_}): {key} has NaN or infinite values")
    if key in _POSITIVE and np.any(arr <= 0):
        raise ConfigError(f"node {name!r} ({type_}): {key} must be > 0, found {arr.min():g}")
    if key == "bias" and not np.any(arr):  # an all-zero bias of any shape: none at all
        return None
    return arr


def _check_declared(name: str, node: Any, shape: tuple[int, ...]) -> None:
    """A declared output type that differs from what the node computes is refused."""
    types = getattr(node, "output_type", None)
    if not isinstance(types, dict) or not types:
        return
    declared = next(iter(types.values()))
    if declared is None:
        return
    arr = np.asarray(declared).reshape(-1)
    if arr.size == 0 or np.any(arr < 0):
        return
    if tuple(int(s) for s in arr) != shape:
        raise ConfigError(
            f"node {name!r}: shapes do not chain: it declares the output {arr.tolist()} but "
            f"computes {list(shape)} from its input"
        )
