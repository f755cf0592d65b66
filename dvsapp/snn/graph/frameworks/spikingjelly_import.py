"""SpikingJelly 2.x (``activation_based``) networks: ``neuron.IFNode``, ``neuron.LIFNode`` and
``neuron.ParametricLIFNode`` onto the graph's ``Discrete`` node; SpikingJelly's layers
(``layer.Conv1d/2d``, ``Linear``, ``BatchNorm1d/2d``, ``MaxPool2d``, ``AvgPool2d``,
``Flatten``, ``Dropout``), tdBN folded, BNTT as per-step tables, and the containers
``SeqToANNContainer`` / ``MultiStepContainer`` / ``StepModeContainer`` (their modules
converted in order).

SpikingJelly's rule, one step (``_ops/*/cpu.py``), ``V`` from the previous step (``v_reset``
at the start for hard-reset neurons, 0 for soft reset; ``vr = v_reset or 0`` below):

* IF: ``H = V + X``;
* LIF (``tau``): ``H = V + (X - (V - vr)) / tau`` (``decay_input``) or
  ``H = V - (V - vr) / tau + X``;
* ParametricLIF (``w``): the same with ``1/tau = sigmoid(w)``;
* ``S = H >= v_threshold``; ``V = S * v_reset + (1 - S) * H`` (hard) or
  ``V = H - S * v_threshold`` (``v_reset=None``, soft).

As Discrete: ``decay = 1 - k``, ``gain = k`` (``decay_input``) or 1, ``rest = vr * k`` with
``k = 1/tau`` or ``sigmoid(w)`` (IF: ``decay = gain = 1``); fire ``>=``; reset ``zero`` to
``v_reset`` or ``subtract``, applied at once; ``v_init = v_reset``. The neuron's ``.v``
(after reset) is our layer's ``v``; our recorded Vm is ``H``.

Normalisation at inference:

* ``layer.BatchNorm2d`` and ``layer.ThresholdDependentBatchNorm1d/2d`` (tdBN) fold into the
  conv or linear layer before them. tdBN's forward is a plain BatchNorm over ``[T*N, ...]``
  whose weight was *initialised* to ``alpha * v_th`` (and trained from there): the stored
  weight already is the whole scale, so it folds as it is (no second ``alpha * v_th``).
* ``layer.BatchNormThroughTime1d/2d`` (BNTT: one bias-free BN per step, picked by its own step
  counter ``t``) cannot fold into one conv: it becomes a ``StepAffine`` node
  (:mod:`dvsapp.snn.graph.stepwise`) with its own counter, reset with the model; beyond the
  trained T it keeps the last step's statistics (SpikingJelly raises there).

The step mode does not matter to the import (SpikingJelly's modules are kept whole by the
trace and converted from their parameters): a model built in multi-step mode imports as one
in single-step mode; :func:`prepare` switches what can switch to ``"s"`` all the same. The
model's forward must take one step ``[B, ...]`` (no loop over T, no mean over T). Other
neurons (``SimpleIFNode`` starts at 0, not ``v_reset``; adaptive, parametric-threshold,
multi-level ...), ``AdaptiveAvgPool2d`` to any size but 1x1, attention, recurrent containers
and every other SpikingJelly module are refused, naming the module and its class.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dvsapp.errors import ConfigError
from dvsapp.snn.graph.frameworks.common import (
    Converted,
    FrameworkImportError,
    fold_batchnorm,
    torch_module,
)


def check_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("spikingjelly")
    except PackageNotFoundError:
        found = "?"
    import spikingjelly.activation_based  # noqa: F401  (ImportError: not installed)

    if not found.startswith("2."):
        raise ConfigError(
            f"SpikingJelly {found} is not supported (dvsapp imports SpikingJelly 2.x "
            "activation_based models)"
        )
    return found


def neuron_types() -> tuple[type, ...]:
    from spikingjelly.activation_based.neuron import BaseNode, SimpleBaseNode

    return (BaseNode, SimpleBaseNode)


def leaf_types() -> tuple[type, ...]:
    """Every SpikingJelly step module (layers, neurons, containers) stays whole in the trace."""
    from spikingjelly.activation_based import base

    return (base.StepModule, *neuron_types())


def prepare(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Single-step mode wherever a module supports it (tdBN and the sequence containers are
    multi-step only and keep theirs); the state_dict unchanged."""
    from spikingjelly.activation_based import base

    for m in model.modules():
        if isinstance(m, base.StepModule) and "s" in m.supported_step_mode():
            m.step_mode = "s"
    return state


def _what(name: str, mod: nn.Module) -> str:
    return f"module {name!r} ({type(mod).__module__}.{type(mod).__name__})"


def to_discrete(name: str, mod: nn.Module) -> tuple[dict[str, Any], dict[str, Any]]:
    """An IFNode, LIFNode or ParametricLIFNode as a Discrete node's (params, tensors)."""
    from spikingjelly.activation_based.neuron import IFNode, LIFNode, ParametricLIFNode

    if type(mod) not in (IFNode, LIFNode, ParametricLIFNode):
        raise ConfigError(
            f"{_what(name, mod)} cannot be converted: dvsapp imports SpikingJelly IFNode, "
            "LIFNode and ParametricLIFNode"
        )
    v_reset = None if mod.v_reset is None else float(mod.v_reset)
    vr = 0.0 if v_reset is None else v_reset
    params = {"fire": ">=", "reset": "subtract" if v_reset is None else "zero", "timing": "now"}
    values: dict[str, Any] = {"v_threshold": torch.as_tensor(mod.v_threshold, dtype=torch.float32)}
    if isinstance(mod, IFNode):
        k = None
        values["decay"] = torch.ones(())
        values["gain"] = torch.ones(())
    else:
        if isinstance(mod, ParametricLIFNode):
            k = mod.w.detach().float().sigmoid()
        else:
            k = torch.tensor(1.0 / float(mod.tau), dtype=torch.float64)
        values["decay"] = 1.0 - k
        values["gain"] = k if mod.decay_input else torch.ones(())
        if vr != 0.0:
            values["rest"] = vr * k
    if v_reset is not None and vr != 0.0:
        values["v_reset"] = torch.tensor(vr)
        values["v_init"] = torch.tensor(vr)  # a fresh neuron sits at v_reset
    return params, values


def _bntt(out: Converted, name: str, mod: nn.Module, srcs: list[str], where: str) -> str:
    """BNTT's per-step BNs as one StepAffine node: row t = BN_t at inference."""
    scales, shifts = [], []
    for t, bn in enumerate(mod.bn_list):
        if bn.running_mean is None or bn.running_var is None:
            raise FrameworkImportError(
                where, f"{_what(name, mod)}: step {t}'s BatchNorm has no running statistics"
            )
        mean, var = bn.running_mean.double(), bn.running_var.double()
        gamma = bn.weight.double() if bn.weight is not None else torch.ones_like(mean)
        beta = bn.bias.double() if bn.bias is not None else torch.zeros_like(mean)
        scale = gamma / torch.sqrt(var + bn.eps)
        scales.append(scale)
        shifts.append(beta - mean * scale)
    values = {"scale": torch.stack(scales), "shift": torch.stack(shifts)}
    return out.add(name, "StepAffine", srcs, {"trained_steps": len(scales)}, values)


def _sequence(out: Converted, name: str, mod: nn.Module, srcs: list[str], where: str) -> str:
    """A container's modules, converted one after the other."""
    from spikingjelly.activation_based import layer

    src = srcs[0]
    for child_name, child in mod.named_children():
        full = f"{name}.{child_name}"
        if isinstance(child, neuron_types()):
            if isinstance(mod, layer.SeqToANNContainer):
                raise FrameworkImportError(
                    where, f"{_what(full, child)}: a neuron inside a SeqToANNContainer (which "
                    "runs it on [T*N, ...] as one step)",
                )  # fmt: skip
            params, values = to_discrete(full, child)
            src = out.add(full, "Discrete", [src], params, values)
        else:
            src = convert_module(out, full, child, [src], where) or torch_module(
                out, full, child, [src], where
            )
    return src


def convert_module(
    out: Converted, name: str, mod: nn.Module, srcs: list[str], where: str
) -> str | None:
    """SpikingJelly's own modules: the plain layers are left to the torch conversion (None),
    tdBN folded, BNTT as StepAffine, dropout as identity, containers unrolled; anything else
    from SpikingJelly is refused."""
    from spikingjelly.activation_based import layer

    kind = type(mod)
    plain = (
        layer.Conv1d, layer.Conv2d, layer.Linear, layer.BatchNorm1d, layer.BatchNorm2d,
        layer.MaxPool2d, layer.AvgPool2d, layer.AdaptiveAvgPool2d, layer.Flatten,
    )  # fmt: skip
    if kind in plain:
        return None
    if kind in (layer.Dropout, layer.Dropout2d):
        return srcs[0]  # identity at inference (its mask exists only while training)
    if kind in (layer.ThresholdDependentBatchNorm1d, layer.ThresholdDependentBatchNorm2d):
        return fold_batchnorm(out, name, mod, srcs, where)
    if kind in (layer.BatchNormThroughTime1d, layer.BatchNormThroughTime2d):
        return _bntt(out, name, mod, srcs, where)
    if kind in (layer.SeqToANNContainer, layer.MultiStepContainer, layer.StepModeContainer):
        return _sequence(out, name, mod, srcs, where)
    if kind.__module__.startswith("spikingjelly"):
        raise FrameworkImportError(where, f"{_what(name, mod)} cannot be converted")
    return None
