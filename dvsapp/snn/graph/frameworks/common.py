"""What every framework import shares: the user's model code, its weights loaded without
unpickling objects, a torch.fx trace with the framework's neurons as leaves, and the
conversion of plain torch layers (convolutions, linear, pooling, flatten, dropout, BatchNorm
folded at inference, residual adds) into graph nodes.

The user's code runs here, once, at import; the checkpoint written afterwards holds only
tensors and JSON, so loading it runs none of that code.
"""

from __future__ import annotations

import importlib.util
import operator
import os
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.fx as fx
from torch import nn

from dvsapp.errors import ConfigError, DvsappError
from dvsapp.snn.graph.spec import NodeSpec


class FrameworkImportError(DvsappError):
    """A network that cannot be imported: one line naming the file and what is wrong."""

    def __init__(self, path: str | os.PathLike[str], message: str) -> None:
        self.path = os.fspath(path)
        self.message = " ".join(str(message).split())
        super().__init__(f"{self.path}: {self.message}")


# -- the user's code and weights --------------------------------------------------------------
def load_user_model(code: str) -> nn.Module:
    """``FILE.py:NAME``: a class (built with no arguments), a builder function (called with
    none) or a module instance defined in FILE.py. The file runs once, here."""
    path_text, sep, name = code.rpartition(":")
    if not sep or not path_text or not name:
        raise ConfigError(f"--code must be FILE.py:NAME, got {code!r}")
    path = Path(path_text)
    if not path.is_file():
        raise FrameworkImportError(path, "no such file (--code)")
    module_name = f"_dvsapp_user_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise FrameworkImportError(path, "cannot be loaded as Python code")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
        obj = getattr(module, name, None)
        if obj is None:
            raise FrameworkImportError(path, f"defines no {name!r}")
        model = obj() if callable(obj) and not isinstance(obj, nn.Module) else obj
    except DvsappError:
        raise
    except Exception as e:  # the user's code raised: one line, theirs
        first = str(e).splitlines()[0] if str(e) else ""
        raise FrameworkImportError(path, f"raised {type(e).__name__}: {first}") from None
    finally:
        sys.modules.pop(module_name, None)
    if not isinstance(model, nn.Module):
        raise FrameworkImportError(
            path, f"{name} gives a {type(model).__name__}, not a torch module"
        )
    return model


#: Keys under which training scripts commonly nest a state_dict.
_NESTED = ("state_dict", "model_state_dict", "model", "net", "state")


def load_weights(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A state_dict from ``torch.save`` (``weights_only=True``: tensors and plain containers
    only, never arbitrary objects) or from a safetensors file, on the CPU."""
    p = Path(path)
    if not p.is_file():
        raise FrameworkImportError(p, "no such file (the weights)")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(p), device="cpu")
        except Exception as e:
            raise FrameworkImportError(p, f"corrupt safetensors file: {e}") from None
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "weights_only" in str(e) or "Unsupported global" in str(e):
            raise FrameworkImportError(
                p,
                "the file needs unpickling of arbitrary objects (a whole pickled model?): "
                "refused; save model.state_dict() instead",
            ) from None
        raise FrameworkImportError(p, f"not a readable torch.save file ({first})") from None
    for key in _NESTED:
        if isinstance(data, dict) and isinstance(data.get(key), dict):
            data = data[key]
            break
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise FrameworkImportError(p, "does not hold a state_dict (a mapping of names to tensors)")
    return {str(k): v for k, v in data.items()}


def fit_weights(model: nn.Module, weights: dict[str, torch.Tensor], path: Path) -> None:
    """``load_state_dict(strict=True)`` with a one-line error naming what does not fit."""
    from dvsapp.snn.checkpoint import tensor_mismatch

    diff = tensor_mismatch(model.state_dict(), weights)
    if diff:
        raise FrameworkImportError(path, f"the weights do not fit the model class: {diff}")
    model.load_state_dict(weights, strict=True)
    model.eval()


# -- tracing ----------------------------------------------------------------------------------
def trace(model: nn.Module, leaf: tuple[type, ...], where: str) -> fx.Graph:
    """The model's forward as an fx graph, the framework's neuron classes kept whole."""

    class _Tracer(fx.Tracer):
        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            return isinstance(m, leaf) or super().is_leaf_module(m, qualname)

    try:
        return _Tracer().trace(model)
    except Exception as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise FrameworkImportError(
            where,
            f"cannot trace the model's forward ({type(e).__name__}: {first}); dvsapp imports "
            "a forward that takes one time step [B, C, H, W] (no loop over time inside)",
        ) from None


# -- conversion -------------------------------------------------------------------------------
@dataclass
class Converted:
    """Graph nodes built from an fx graph, before shapes are known."""

    specs: dict[str, NodeSpec] = field(default_factory=dict)
    values: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    edges: list[tuple[str, str]] = field(default_factory=list)
    input_name: str = "input"
    output_name: str = "output"

    def add(
        self,
        name: str,
        type_: str,
        inputs: list[str],
        params: dict[str, Any] | None = None,
        values: dict[str, Any] | None = None,
    ) -> str:
        self.specs[name] = NodeSpec(name=name, type=type_, params=dict(params or {}))
        self.values[name] = {k: _np(v) for k, v in (values or {}).items() if v is not None}
        self.edges.extend((i, name) for i in inputs)
        return name


def _np(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float64).numpy()
    return np.asarray(value, dtype=np.float64)


def _pair(value: Any) -> list[int]:
    if isinstance(value, int):
        return [value, value]
    return [int(v) for v in value]


#: A framework's neuron converter: (name, module) -> (params, tensor values) of a Discrete
#: node, optionally followed by (node type, params, values) of its recurrent weights, which
#: feed its spikes back at the next step; raises ConfigError for what cannot be honoured.
NeuronConverter = Callable[[str, nn.Module], tuple[Any, ...]]
#: A framework's converter of its own non-neuron modules: (out, name, module, sources, where)
#: -> the graph node giving the module's value, or None to leave the module to the plain
#: torch conversion here.
ModuleConverter = Callable[["Converted", str, nn.Module, list[str], str], "str | None"]


def convert(
    graph: fx.Graph,
    model: nn.Module,
    neuron: tuple[tuple[type, ...], NeuronConverter],
    where: str,
    special: ModuleConverter | None = None,
) -> Converted:
    """Walk the fx graph: plain torch layers become graph nodes here, the framework's
    neurons become ``Discrete`` nodes through ``neuron``'s converter, and ``special`` (where
    given) converts the framework's other modules first. Tuple outputs of a
    neuron (``spk, mem``) stand for its spikes. Whatever cannot be converted is refused with
    one line naming the module and its class."""
    neuron_types, to_discrete = neuron
    out = Converted()
    alias: dict[str, str] = {}  # fx node name -> graph node name giving its value
    modules = dict(model.named_modules())
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if not placeholders:
        raise FrameworkImportError(where, "the model's forward takes no input")
    for n in graph.nodes:
        if n.op == "placeholder":
            if n is placeholders[0]:
                alias[n.name] = out.add("input", "Input", [])
            continue  # further arguments (explicit neuron state) start at zero
        if n.op == "get_attr":
            if any(u.args[:1] == (n,) for u in n.users):  # feeds a layer as its input
                raise FrameworkImportError(where, f"the forward reads the tensor {n.target!r}")
            continue  # a constant neuron state (e.g. init_leaky()): states start at zero
        srcs = [alias[a.name] for a in n.all_input_nodes if a.name in alias]
        if n.op == "call_module":
            mod = modules[str(n.target)]
            name = str(n.target)
            if isinstance(mod, neuron_types):
                params, values, *recurrent = to_discrete(name, mod)
                kind = params.pop("node", "Discrete")  # a framework's own neuron node
                alias[n.name] = out.add(name, kind, srcs[:1], params, values)
                for kind, rec_params, rec_values in recurrent:  # its own recurrent weights:
                    rec = out.add(f"{name}.recurrent", kind, [name], rec_params, rec_values)
                    out.edges.append((rec, name))  # a cycle, last step's spikes
            else:
                made = special(out, name, mod, srcs[:1], where) if special else None
                alias[n.name] = made or _torch_module(out, name, mod, srcs[:1], where)
        elif n.op in ("call_function", "call_method"):
            alias[n.name] = _function(out, n, srcs, where)
        elif n.op == "output":
            result = n.args[0]
            first = result[0] if isinstance(result, tuple | list) else result
            if not isinstance(first, fx.Node) or first.name not in alias:
                raise FrameworkImportError(where, "the forward's output is not a tensor")
            out.add("output", "Output", [alias[first.name]])
    return out


def torch_module(out: Converted, name: str, mod: nn.Module, srcs: list[str], where: str) -> str:
    """A plain torch layer as a graph node (what :func:`convert` does with it)."""
    return _torch_module(out, name, mod, srcs, where)


def fold_batchnorm(out: Converted, name: str, bn: nn.Module, srcs: list[str], where: str) -> str:
    """An inference BatchNorm (any module with ``weight``, ``bias``, ``running_mean``,
    ``running_var`` and ``eps``) folded into the convolution or linear layer right before it."""
    return _fold_batchnorm(out, name, bn, srcs, where)


def _torch_module(out: Converted, name: str, mod: nn.Module, srcs: list[str], where: str) -> str:
    if isinstance(mod, nn.Dropout | nn.Dropout1d | nn.Dropout2d | nn.Identity):
        return srcs[0]  # identity at inference
    if isinstance(mod, nn.Conv2d | nn.Conv1d):
        if mod.padding_mode != "zeros":
            what = f"module {name!r} ({type(mod).__name__})"
            raise FrameworkImportError(where, f"{what}: padding_mode {mod.padding_mode!r}")
        pad = mod.padding if isinstance(mod.padding, str) else list(mod.padding)
        params = {
            "stride": list(mod.stride), "padding": pad, "dilation": list(mod.dilation),
            "groups": mod.groups,
        }  # fmt: skip
        kind = "Conv2d" if isinstance(mod, nn.Conv2d) else "Conv1d"
        return out.add(name, kind, srcs, params, {"weight": mod.weight, "bias": mod.bias})
    if isinstance(mod, nn.Linear):
        kind = "Affine" if mod.bias is not None else "Linear"
        return out.add(name, kind, srcs, {}, {"weight": mod.weight, "bias": mod.bias})
    if isinstance(mod, nn.BatchNorm2d | nn.BatchNorm1d):
        return _fold_batchnorm(out, name, mod, srcs, where)
    if isinstance(mod, nn.AdaptiveAvgPool2d):
        if mod.output_size not in (1, (1, 1), [1, 1]):
            raise FrameworkImportError(
                where, f"module {name!r} (AdaptiveAvgPool2d): only output size 1 (global "
                "average pooling) is supported",
            )  # fmt: skip
        return out.add(name, "GlobalAvgPool2d", srcs, {"keepdim": True})
    if isinstance(mod, nn.MaxPool2d):
        if mod.return_indices:
            raise FrameworkImportError(where, f"module {name!r} (MaxPool2d) returns indices")
        params = {
            "kernel_size": _pair(mod.kernel_size), "stride": _pair(mod.stride or mod.kernel_size),
            "padding": _pair(mod.padding), "dilation": _pair(mod.dilation),
            "ceil_mode": bool(mod.ceil_mode),
        }  # fmt: skip
        return out.add(name, "MaxPool2d", srcs, params)
    if isinstance(mod, nn.AvgPool2d):
        if mod.ceil_mode or mod.divisor_override is not None or not mod.count_include_pad:
            raise FrameworkImportError(
                where, f"module {name!r} (AvgPool2d): only the default count_include_pad, "
                "no ceil_mode or divisor_override, is supported",
            )  # fmt: skip
        params = {
            "kernel_size": _pair(mod.kernel_size), "stride": _pair(mod.stride or mod.kernel_size),
            "padding": _pair(mod.padding),
        }  # fmt: skip
        return out.add(name, "AvgPool2d", srcs, params)
    if isinstance(mod, nn.Flatten):
        start = mod.start_dim - 1 if mod.start_dim > 0 else mod.start_dim
        end = mod.end_dim - 1 if mod.end_dim > 0 else mod.end_dim
        return out.add(name, "Flatten", srcs, {"start_dim": start, "end_dim": end})
    raise FrameworkImportError(
        where, f"module {name!r} ({type(mod).__module__}.{type(mod).__name__}) cannot be converted"
    )


def _fold_batchnorm(out: Converted, name: str, bn: nn.Module, srcs: list[str], where: str) -> str:
    """Inference BatchNorm folded into the convolution or linear layer that feeds it."""
    src = srcs[0]
    spec = out.specs.get(src)
    consumers = [b for a, b in out.edges if a == src]
    if spec is None or spec.type not in ("Conv2d", "Conv1d", "Affine", "Linear") or consumers:
        raise FrameworkImportError(
            where, f"module {name!r} ({type(bn).__name__}): BatchNorm is folded into the "
            "convolution or linear layer right before it, and here there is none",
        )  # fmt: skip
    mean, var = bn.running_mean, bn.running_var
    if mean is None or var is None:
        raise FrameworkImportError(where, f"module {name!r}: BatchNorm without running statistics")
    gamma = bn.weight if bn.weight is not None else torch.ones_like(mean)
    beta = bn.bias if bn.bias is not None else torch.zeros_like(mean)
    scale = (gamma / torch.sqrt(var + bn.eps)).detach().double().numpy()
    vals = out.values[src]
    w = vals["weight"]
    b = vals.get("bias", np.zeros(w.shape[0]))
    vals["weight"] = w * scale.reshape(-1, *([1] * (w.ndim - 1)))
    vals["bias"] = (b - mean.detach().double().numpy()) * scale + beta.detach().double().numpy()
    if spec.type == "Linear":
        spec.type = "Affine"
    return src


def _function(out: Converted, n: fx.Node, srcs: list[str], where: str) -> str:
    target = n.target
    if target in (operator.add, torch.add, "add"):
        if len(srcs) != 2 or any(not isinstance(a, fx.Node) for a in n.args[:2]):
            raise FrameworkImportError(where, f"{n.name}: only the sum of two tensors is supported")
        return out.add(n.name, "Identity", srcs)  # a node sums its inputs
    if target in (torch.flatten, "flatten"):
        start = n.args[1] if len(n.args) > 1 else n.kwargs.get("start_dim", 0)
        end = n.args[2] if len(n.args) > 2 else n.kwargs.get("end_dim", -1)
        if start == 0:
            raise FrameworkImportError(where, f"{n.name}: flattening the batch dimension")
        # counted from the end (flatten(-3), as multi-step code writes it) it is the same
        # dims with or without the batch; from the start, one less without the batch
        params = {
            "start_dim": start - 1 if start > 0 else start,
            "end_dim": end - 1 if end > 0 else end,
        }
        return out.add(n.name, "Flatten", srcs[:1], params)
    if target in (torch.mean, "mean") and _spatial_mean(n):
        keep = bool(n.kwargs.get("keepdim", n.args[2] if len(n.args) > 2 else False))
        return out.add(n.name, "GlobalAvgPool2d", srcs[:1], {"keepdim": keep})
    if target is operator.getitem and srcs:  # (spikes, membrane)[i] of a neuron
        return srcs[0] if n.args[1] == 0 else _membrane_output(n, where)
    if target in (torch.nn.functional.dropout, "contiguous", "clone", "detach"):
        return srcs[0]
    what = getattr(target, "__name__", str(target))
    raise FrameworkImportError(where, f"{n.name}: the operation {what!r} cannot be converted")


def _spatial_mean(n: fx.Node) -> bool:
    """``x.mean((-2, -1))`` / ``torch.mean(x, dim=(2, 3))`` over a [B, C, H, W] map."""
    dim = n.kwargs.get("dim", n.args[1] if len(n.args) > 1 else None)
    return isinstance(dim, tuple | list) and sorted(dim) in ([-2, -1], [2, 3])


def _membrane_output(n: fx.Node, where: str) -> str:
    if all(u.op == "output" for u in n.users):
        return "__unused__"  # a membrane the forward returns beside the spikes
    raise FrameworkImportError(
        where, f"{n.name}: the network uses a neuron's membrane as an input to a layer"
    )
