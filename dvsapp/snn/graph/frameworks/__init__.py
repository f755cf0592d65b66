"""Networks imported from their own framework (a model class plus its state_dict), beyond
what NIR carries: snnTorch today (``dvsapp import WEIGHTS --framework snntorch --code
FILE.py:NAME``). Each module maps the framework's neurons onto the graph's ``Discrete`` node
(:mod:`dvsapp.snn.graph.discrete`); :mod:`.common` does the rest."""

from __future__ import annotations

#: framework name -> module (imported when used: each needs its framework installed).
FRAMEWORKS: dict[str, str] = {
    "snntorch": "dvsapp.snn.graph.frameworks.snntorch_import",
}
