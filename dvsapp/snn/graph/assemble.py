"""Assemble a graph spec from converted nodes: propagate shapes from the input through every
node with the very modules that will step it (so "shapes that do not chain" is found by the
code that runs), shape per-neuron parameters, check stability, choose the readout.

Shared by the NIR reader and the framework importers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from dvsapp.errors import ConfigError
from dvsapp.snn.graph.model import module_key
from dvsapp.snn.graph.nodes import build_node
from dvsapp.snn.graph.spec import SPIKING_TYPES, GraphSpec, NodeSpec, execution_order

#: Per-neuron parameters (broadcast over the node's map; everything else keeps its shape).
PER_NEURON = (
    "tau", "r", "v_leak", "v_threshold", "v_reset", "tau_syn", "tau_mem", "w_in", "threshold",
    "delay", "decay", "gain", "rest", "syn_decay", "min_v",
)  # fmt: skip


def assemble(
    specs: dict[str, NodeSpec],
    values: dict[str, dict[str, np.ndarray]],
    edges: list[tuple[str, str]],
    input_name: str,
    output_name: str,
    in_shape: tuple[int, ...],
    dt: float,
    readout: str | None,
    source: dict[str, Any],
    check: Callable[[str, tuple[int, ...]], None] | None = None,
) -> tuple[GraphSpec, dict[str, torch.Tensor]]:
    """The graph spec and its tensors (state-dict names). ``values`` holds each node's
    tensor parameters as arrays; ``check(name, shape)`` may refuse a node's computed shape.
    The readout defaults to the spike count when the output is fed by a spiking node."""
    order = execution_order(list(specs), edges, input_name)
    tensors: dict[str, torch.Tensor] = {}
    shapes: dict[str, tuple[int, ...]] = {input_name: in_shape}
    for s in order:
        spec = specs[s.name]
        if s.name == input_name:
            spec.shape = list(in_shape)
            continue
        feeds = {a: shapes[a] for a in s.inputs}
        if len(set(feeds.values())) > 1:
            detail = ", ".join(f"{a} {list(v)}" for a, v in feeds.items())
            raise ConfigError(f"node {s.name!r}: its inputs have different shapes ({detail})")
        x_shape = next(iter(feeds.values()))
        shapes[s.name] = _propagate(spec, values[s.name], x_shape, dt, tensors)
        if check is not None:
            check(s.name, shapes[s.name])
    for s in order:
        for a in s.recurrent:
            if shapes[a] != shapes[next(iter(s.inputs))]:
                raise ConfigError(
                    f"recurrent edge {a!r} -> {s.name!r}: {list(shapes[a])} does not fit "
                    f"the node's input {list(shapes[next(iter(s.inputs))])}"
                )
    out_shape = shapes[output_name]
    if len(out_shape) != 1:
        raise ConfigError(
            f"the output node {output_name!r} gives {list(out_shape)}: a readout of one value "
            "per class is needed (a 1-D output)"
        )
    source_types = {specs[a].type for s in order if s.name == output_name for a in s.inputs}
    default = "spike_count" if source_types & SPIKING_TYPES else "mean_softmax"
    spec = GraphSpec(
        nodes=[specs[s.name] for s in order],
        edges=edges,
        input_shape=list(in_shape),
        dt=dt,
        readout=readout or default,
        source=dict(source),
    )
    return spec, tensors


def per_neuron(
    name: str, type_: str, key: str, arr: np.ndarray, shape: tuple[int, ...]
) -> np.ndarray:
    """A per-neuron parameter shaped to broadcast over ``[B, *shape]``: scalar, the full
    shape, or one value per channel of a map."""
    if arr.size == 1:
        return arr.reshape(())
    if arr.shape == shape:
        return arr
    if arr.ndim == 1 and len(shape) > 1 and arr.shape[0] == shape[0]:
        return arr.reshape(shape[0], *([1] * (len(shape) - 1)))
    if arr.size == math.prod(shape):
        return arr.reshape(shape)
    raise ConfigError(
        f"node {name!r} ({type_}): {key} has shape {list(arr.shape)}, which does not fit the "
        f"node's {list(shape)} neurons"
    )


def _propagate(
    spec: NodeSpec,
    vals: dict[str, np.ndarray],
    x_shape: tuple[int, ...],
    dt: float,
    tensors: dict[str, torch.Tensor],
) -> tuple[int, ...]:
    """Build the node's module on its values, step it once on zeros of ``x_shape`` and
    return its output shape (a failure says which node and why)."""
    for key, arr in list(vals.items()):
        if key in PER_NEURON:
            vals[key] = per_neuron(spec.name, spec.type, key, arr, x_shape)
    spec.tensors = {k: list(v.shape) for k, v in vals.items()}
    if spec.type in ("LI", "LIF"):
        _check_stable(spec, dt, vals["tau"], "tau")
    elif spec.type in ("CubaLI", "CubaLIF"):
        _check_stable(spec, dt, vals["tau_syn"], "tau_syn")
        _check_stable(spec, dt, vals["tau_mem"], "tau_mem")
    if spec.type == "Flatten":
        spec.params.setdefault("start_dim", 0)
        spec.params.setdefault("end_dim", -1)
    module = build_node(spec, dt)
    for key, arr in vals.items():
        t = torch.from_numpy(np.ascontiguousarray(arr)).float()
        setattr(module, key, t)
        tensors[f"nodes.{module_key(spec.name)}.{key}"] = t
    module.refresh()
    try:
        with torch.no_grad():
            y = module.step(torch.zeros((1, *x_shape)))
    except (RuntimeError, ValueError, IndexError, TypeError) as e:
        first = str(e).splitlines()[0]
        raise ConfigError(
            f"node {spec.name!r} ({spec.type}): shapes do not chain: its input is "
            f"{list(x_shape)} ({first})"
        ) from None
    spec.shape = list(y.shape[1:])
    return tuple(spec.shape)


def _check_stable(spec: NodeSpec, dt: float, tau: np.ndarray, key: str) -> None:
    ratio = dt / float(np.min(tau))
    if ratio > 1:
        raise ConfigError(
            f"node {spec.name!r} ({spec.type}): dt/{key} = {ratio:g} > 1, forward Euler would "
            f"be unstable; choose a smaller dt (now {dt:g} s; {key} is in the graph's time "
            "unit: seconds for snnTorch and Norse, steps for sinabs)"
        )
