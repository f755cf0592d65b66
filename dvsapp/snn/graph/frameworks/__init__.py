"""Networks imported from their own framework (a model class plus its state_dict), beyond
what NIR carries: snnTorch, sinabs and SpikingJelly (``dvsapp import WEIGHTS --framework
snntorch|sinabs|spikingjelly --code FILE.py:NAME``). Each module maps the framework's neurons
onto the graph's ``Discrete`` node (:mod:`dvsapp.snn.graph.discrete`); :mod:`.common` does the
rest.

A framework module has ``check_version()``, ``neuron_types()`` and ``to_discrete(name,
module)``; optionally ``prepare(model, state) -> state`` (run before the weights are loaded:
the framework's own state buffers, step modes), ``leaf_types()`` (the modules the trace keeps
whole; default: the neurons) and ``convert_module(out, name, module, sources, where)`` (its
own non-neuron modules; None leaves a module to the plain torch conversion).
"""

from __future__ import annotations

#: framework name -> module (imported when used: each needs its framework installed).
FRAMEWORKS: dict[str, str] = {
    "snntorch": "dvsapp.snn.graph.frameworks.snntorch_import",
    "sinabs": "dvsapp.snn.graph.frameworks.sinabs_import",
    "spikingjelly": "dvsapp.snn.graph.frameworks.spikingjelly_import",
}
