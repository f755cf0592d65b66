"""sinabs 2.x networks: ``IAF``, ``LIF`` (with and without ``tau_syn``, ``norm_input`` either
way, ``train_alphas``) and their ``Squeeze`` variants onto the graph's ``Discrete`` node;
``SumPool2d``, ``FlattenTime`` / ``UnflattenTime`` and ``Repeat`` around plain torch layers.

sinabs' rule, one step (``layers/functional/lif.py``, ``lif_forward_single``), states from
the previous step (zeros at the start):

* ``i_syn = alpha_syn * (i_syn + x)`` with ``tau_syn`` (``alpha = exp(-1/tau)``), else
  ``i_syn = x``;
* ``v_mem = alpha_mem * v_mem + (1 - alpha_mem) * i_syn`` (``norm_input``) or ``+ i_syn``
  (IAF: ``alpha_mem = 1``, no normalisation);
* spikes from the charged ``v_mem``: ``SingleSpike`` ``v_mem - threshold >= 0``;
  ``MultiSpike`` ``(v_mem > 0) * trunc(v_mem / threshold)``; ``MaxSpike(n)`` the same capped
  at n;
* reset: ``MembraneSubtract()`` ``v_mem -= spikes * threshold``; ``MembraneReset(r)``
  ``v_mem = v_mem * (spikes == 0) + r`` (the value r is added at every neuron, spiking or
  not: sinabs' own code, reproduced as it is);
* ``v_mem = max(v_mem, min_v_mem)`` where given.

As Discrete: ``decay = alpha_mem``, ``gain = (1 - alpha_mem)`` or 1 (times ``alpha_syn`` with
a synapse, whose current then is sinabs' ``i_syn / alpha_syn``: ``j = alpha_syn * j + x``),
fire ``>=`` / ``multi`` (``max_spikes``), reset ``subtract`` / ``zero`` (r = 0) / ``sinabs``
(r != 0), ``min_v``, ``v_threshold`` = ``spike_threshold`` (a tensor of any shape that fits).

A dvsapp step is one time step of shape ``[B, ...]``: sinabs' Squeeze layers see it as
``[B*T, ...]`` with T = 1, its other layers as ``[B, T=1, ...]`` (``FlattenTime`` and
``UnflattenTime`` are then identities). The layers' state buffers (``v_mem``, ``i_syn``) in a
saved state_dict are ignored: a stream starts from zeros, as after
``sinabs.utils.reset_states``. Recurrent layers, ``ExpLeak`` / ``ALIF``, ``spike_fn=None``,
``MembraneSubtract(subtract_value)``, custom spike or reset functions and the other sinabs
layers are refused, naming the module.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from dvsapp.errors import ConfigError
from dvsapp.snn.graph.frameworks.common import (
    Converted,
    FrameworkImportError,
    _pair,
    torch_module,
)


def check_version() -> str:
    import sinabs

    version = str(getattr(sinabs, "__version__", "?"))
    if not version.startswith("2."):
        raise ConfigError(f"sinabs {version} is not supported (dvsapp imports sinabs 2.x)")
    return version


def neuron_types() -> tuple[type, ...]:
    from sinabs.layers import StatefulLayer

    return (StatefulLayer,)


def leaf_types() -> tuple[type, ...]:
    """Every module class that ``sinabs.layers`` exports: kept whole by the trace, then
    converted here or refused by name."""
    import sinabs.layers as sl

    return tuple(c for c in vars(sl).values() if isinstance(c, type) and issubclass(c, nn.Module))


def prepare(model: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state_dict without the layers' state buffers (``v_mem``, ``i_syn``, ...: whatever
    shape a run left them in): the fresh model's own (empty) buffers stand in for them."""
    from sinabs.layers import StatefulLayer

    state = dict(state)
    for prefix, mod in model.named_modules():
        if isinstance(mod, StatefulLayer):
            for b, value in mod.named_buffers(recurse=False):
                state[f"{prefix}.{b}" if prefix else b] = value
    return state


def _what(name: str, mod: nn.Module) -> str:
    return f"module {name!r} ({type(mod).__module__}.{type(mod).__name__})"


def _float32(t: Any) -> torch.Tensor:
    """A parameter as float32; ``[C, 1, 1]`` (per channel, as sinabs broadcasts it over
    ``[B, C, H, W]``) as ``[C]``."""
    t = torch.as_tensor(t).detach().to(torch.float32)
    if t.dim() > 1 and all(s == 1 for s in t.shape[1:]):
        t = t.reshape(t.shape[0])
    return t


def to_discrete(name: str, mod: nn.Module) -> tuple[dict[str, Any], dict[str, Any]]:
    """An IAF / LIF (Squeeze or not) module as a Discrete node's (params, tensors)."""
    import sinabs.layers as sl
    from sinabs.activation import (
        MaxSpike,
        MembraneReset,
        MembraneSubtract,
        MultiSpike,
        SingleSpike,
    )

    if type(mod) not in (sl.IAF, sl.IAFSqueeze, sl.LIF, sl.LIFSqueeze):
        raise ConfigError(
            f"{_what(name, mod)} cannot be converted: dvsapp imports sinabs IAF, LIF and "
            "their Squeeze variants"
        )
    params: dict[str, Any] = {"timing": "now"}
    values: dict[str, Any] = {}
    fn = mod.spike_fn
    if fn is SingleSpike:
        params["fire"] = ">="
    elif fn is MultiSpike:
        params["fire"] = "multi"
    elif isinstance(fn, MaxSpike):
        params["fire"] = "multi"
        if fn.max_num_spikes_per_bin is not None:
            params["max_spikes"] = int(fn.max_num_spikes_per_bin)
    else:
        what = "spike_fn=None (a non-spiking output)" if fn is None else f"spike_fn {fn!r}"
        raise ConfigError(f"{_what(name, mod)}: {what} is not supported")
    reset = mod.reset_fn
    if isinstance(reset, MembraneSubtract) and reset.subtract_value is None:
        params["reset"] = "subtract"
    elif isinstance(reset, MembraneReset):
        value = float(reset.reset_value)
        params["reset"] = "zero" if value == 0.0 else "sinabs"
        if value != 0.0:
            values["v_reset"] = torch.tensor(value)
    else:
        raise ConfigError(
            f"{_what(name, mod)}: reset_fn {reset!r} is not supported (MembraneSubtract() or "
            "MembraneReset(reset_value))"
        )
    if mod.spike_threshold is None:
        raise ConfigError(f"{_what(name, mod)}: no spike_threshold")
    values["v_threshold"] = _float32(mod.spike_threshold)
    if mod.min_v_mem is not None:
        values["min_v"] = _float32(mod.min_v_mem)
    alpha = _float32(mod.alpha_mem_calculated)  # exp(-1/tau_mem) as sinabs computes it
    gain = (1.0 - alpha) if mod.norm_input else torch.ones(())
    alpha_syn = mod.alpha_syn_calculated
    if alpha_syn is not None:
        alpha_syn = _float32(alpha_syn)
        values["syn_decay"] = alpha_syn
        gain = gain * alpha_syn
    values["decay"] = alpha
    values["gain"] = gain
    return params, values


def convert_module(
    out: Converted, name: str, mod: nn.Module, srcs: list[str], where: str
) -> str | None:
    """sinabs' pooling and reshaping layers; anything else from sinabs is refused."""
    import sinabs.layers as sl

    if isinstance(mod, sl.SumPool2d):
        if mod.ceil_mode or float(mod.norm_type) != 1.0:
            raise FrameworkImportError(where, f"{_what(name, mod)}: ceil_mode is not supported")
        params = {
            "kernel_size": _pair(mod.kernel_size),
            "stride": _pair(mod.stride or mod.kernel_size),
            "padding": [0, 0],
        }
        return out.add(name, "SumPool2d", srcs, params)
    if type(mod) in (sl.FlattenTime, sl.UnflattenTime):
        return srcs[0]  # a step is [B, ...]: there is no time dimension to move
    if type(mod) is sl.Repeat:
        return torch_module(out, f"{name}.module", mod.module, srcs, where)
    if type(mod).__module__.startswith("sinabs"):
        raise FrameworkImportError(where, f"{_what(name, mod)} cannot be converted")
    return None
