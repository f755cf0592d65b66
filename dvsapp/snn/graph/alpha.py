"""snnTorch's ``Alpha`` neuron as a graph node (``SnnTorchAlpha``): an excitatory and an
inhibitory synaptic current whose difference of exponentials makes the membrane. snnTorch
1.0's equations, step t (currents and membrane from t-1, zero at the start):

* ``reset = H(mem - threshold)`` (the previous step's spike; snnTorch's Alpha always resets
  one step late);
* ``exc = alpha * exc + x``, ``inh = beta * inh - x``,
  ``mem = tau_alpha * (exc + inh)`` with ``tau_alpha = log(alpha) / (log(beta) - log(alpha)) + 1``
  (alpha and beta clamped to [0, 1]);
* subtract reset: ``exc -= threshold * reset``, ``inh *= 1 - reset``,
  ``mem += inh_previous * reset``; zero reset: all three times ``1 - reset``;
* ``spk = H(mem - threshold)``.

The Vm that probes record is ``mem``.
"""

from __future__ import annotations

import torch

from dvsapp.snn.graph.nodes import GraphNeuron
from dvsapp.snn.graph.spec import NodeSpec


class SnnTorchAlpha(GraphNeuron):
    """The ``SnnTorchAlpha`` node (module docstring); state ``(exc, inh, mem)`` stacked."""

    tensor_names = ("alpha", "beta", "v_threshold")

    def __init__(self, spec: NodeSpec, dt: float) -> None:
        super().__init__(spec, dt)
        self.reset_rule = str(spec.params.get("reset", "subtract"))
        if self.reset_rule not in ("subtract", "zero", "none"):
            raise ValueError(f"node {spec.name!r}: reset must be subtract, zero or none")

    def refresh(self) -> None:
        a, b = self.alpha.clamp(0, 1), self.beta.clamp(0, 1)
        self.register_buffer(
            "k_tau_alpha", torch.log(a) / (torch.log(b) - torch.log(a)) + 1, persistent=False
        )
        self.summarise_threshold()

    def dynamics(
        self, x: torch.Tensor, v: torch.Tensor | None, o: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        exc0, inh0, mem0 = (torch.zeros_like(x),) * 3 if v is None else (v[0], v[1], v[2])
        thr = self.v_threshold
        if self.threshold_scale != 1.0:
            thr = thr * self.threshold_scale
        late = (mem0 > thr).to(x.dtype)
        exc = self.alpha.clamp(0, 1) * exc0 + x
        inh = self.beta.clamp(0, 1) * inh0 - x
        mem = self.k_tau_alpha * (exc + inh)
        if self.reset_rule == "subtract":
            exc = exc - thr * late
            mem = mem + inh0 * late
            inh = inh * (1.0 - late)
        elif self.reset_rule == "zero":
            keep = 1.0 - late
            exc, inh, mem = exc * keep, inh * keep, mem * keep
        z = (mem > thr).to(x.dtype)
        return z, mem, torch.stack((exc, inh, mem))
