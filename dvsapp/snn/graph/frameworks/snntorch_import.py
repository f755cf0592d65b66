"""snnTorch 1.0 networks: ``Leaky``, ``Synaptic``, ``RLeaky`` and ``Alpha`` neurons
(``init_hidden`` or explicit state; ``reset_mechanism`` subtract / zero / none;
``reset_delay`` either way; learnable beta and threshold; ``output=True`` readouts) onto the
graph's ``Discrete`` node;
RLeaky's recurrent weights (linear, convolutional or one-to-one ``V``) become a node that
feeds the layer's spikes back at the next step, as snnTorch does.

snnTorch's rule, step t (``mem`` from t-1, zero at the start):
``reset = H(mem - threshold)`` (the previous step's spike); Leaky ``mem = beta*mem + x``,
Synaptic ``syn = alpha*syn + x; mem = beta*mem + syn`` (alpha and beta clamped to [0, 1]);
subtract: ``mem -= reset * threshold``, zero: ``mem *= 1 - reset`` (syn kept); ``spk =
H(mem - threshold) * graded_spikes_factor``; without ``reset_delay`` the step's own spike
resets at once. ``Alpha`` has a node of its own (:mod:`dvsapp.snn.graph.alpha`).
``RSynaptic`` (its explicit-state reset updates a local copy), ``Lapicque``, inhibition,
graded spikes and state quantisation are refused.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dvsapp.errors import ConfigError

_RESETS = {0: "subtract", 1: "zero", 2: "none"}


def neuron_types() -> tuple[type, ...]:
    import snntorch

    return (snntorch.SpikingNeuron,)


def check_version() -> str:
    import snntorch

    version = getattr(snntorch, "__version__", "?")
    if not str(version).startswith("1."):
        raise ConfigError(f"snnTorch {version} is not supported (dvsapp imports snnTorch 1.x)")
    return str(version)


def _scalar(t: Any) -> float:
    return float(torch.as_tensor(t).reshape(-1)[0]) if torch.as_tensor(t).numel() else 0.0


def to_discrete(name: str, mod: nn.Module) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Leaky or Synaptic module as a Discrete node's (params, tensors)."""
    import snntorch

    kind = type(mod).__name__
    if type(mod) not in (snntorch.Leaky, snntorch.Synaptic, snntorch.RLeaky, snntorch.Alpha):
        raise ConfigError(
            f"module {name!r} (snntorch.{kind}) cannot be converted: dvsapp imports snnTorch "
            "Leaky, Synaptic, RLeaky and Alpha neurons"
        )
    if getattr(mod, "inhibition", False) or getattr(mod, "state_quant", False):
        raise ConfigError(f"module {name!r} (snntorch.{kind}): inhibition and state_quant")
    if _scalar(mod.graded_spikes_factor) != 1.0:
        raise ConfigError(f"module {name!r} (snntorch.{kind}): graded spikes are not supported")
    reset = _RESETS[int(_scalar(mod.reset_mechanism_val))]
    if isinstance(mod, snntorch.Alpha):  # its own node (dvsapp.snn.graph.alpha)
        values = {"alpha": mod.alpha, "beta": mod.beta, "v_threshold": mod.threshold}
        return {"node": "SnnTorchAlpha", "reset": reset}, {
            k: torch.as_tensor(v).detach() for k, v in values.items()
        }
    params = {
        "fire": ">",
        "reset": reset,
        "timing": "snntorch",
        "reset_delay": bool(mod.reset_delay),
    }
    values: dict[str, Any] = {
        "decay": mod.beta.detach().clamp(0, 1),
        "gain": torch.ones(()),
        "v_threshold": mod.threshold.detach(),
    }
    if isinstance(mod, snntorch.Synaptic):
        values["syn_decay"] = mod.alpha.detach().clamp(0, 1)
    if isinstance(mod, snntorch.RLeaky):
        return params, values, _recurrent(name, mod.recurrent)
    return params, values


def _recurrent(name: str, rec: nn.Module) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """RLeaky's recurrent weights (``mem += recurrent(spk_prev)``) as a graph node."""
    if isinstance(rec, nn.Linear):
        return "Affine", {}, {"weight": rec.weight.detach(), "bias": rec.bias}
    if isinstance(rec, nn.Conv2d):
        params = {
            "stride": list(rec.stride), "padding": list(rec.padding),
            "dilation": list(rec.dilation), "groups": rec.groups,
        }  # fmt: skip
        return "Conv2d", params, {"weight": rec.weight.detach(), "bias": rec.bias}
    if hasattr(rec, "V"):  # RecurrentOneToOne: spk * V
        return "Scale", {}, {"scale": torch.as_tensor(rec.V).detach()}
    raise ConfigError(f"module {name!r}: its recurrent {type(rec).__name__} cannot be converted")
