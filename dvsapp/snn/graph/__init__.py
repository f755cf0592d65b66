"""Graph models: networks from elsewhere (NIR graphs, ...) stepped like our own.

* :mod:`dvsapp.snn.graph.spec`: the JSON-safe graph description stored in checkpoints;
* :mod:`dvsapp.snn.graph.nodes`: one torch module per node type, and the discretisation;
* :mod:`dvsapp.snn.graph.model`: :class:`GraphModel`, a :class:`~dvsapp.snn.base.SpikingModel`;
* :mod:`dvsapp.snn.graph.nir_reader`: a ``.nir`` file as a graph spec and its tensors (the
  only module that imports ``nir``).
"""

from __future__ import annotations

from dvsapp.snn.graph.model import GraphModel
from dvsapp.snn.graph.spec import GraphSpec, NodeSpec

__all__ = ["GraphModel", "GraphSpec", "NodeSpec"]
