"""What the in-depth probes report per step (CONTRACT: written by the lead, implemented in
:mod:`dvsapp.snn.analysis`, used by the session, ``dvsapp run``, the exporter and the GUI).

All numpy, all owned: safe to hand across threads. Names here are the contract: extend, do
not rename.

Membrane-potential histograms use fixed edges relative to each layer's *base* threshold
(``vm_edges``): ``VM_BINS`` equal bins over ``[VM_LOW, VM_HIGH] * |threshold|`` plus one
underflow and one overflow bin, so the counts always sum to the layer's neuron count (times
the batch). The live threshold (base times ``threshold_scale``) is reported with each step, so
a marker drawn at ``threshold_now`` moves with the scale while the bins stay put.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Equal-width bins between the under- and overflow bins.
VM_BINS = 60
#: The binned range, in units of the layer's base threshold.
VM_LOW = -3.0
VM_HIGH = 3.0
#: "Near threshold": |v - threshold_now| <= NEAR_FRACTION * |threshold_now|.
NEAR_FRACTION = 0.1
#: A channel is saturated when its rate over the window so far is at least this.
SATURATED_RATE = 0.9


def vm_edges(threshold: float) -> np.ndarray:
    """The ``VM_BINS + 1`` inner bin edges of a layer with base ``threshold`` (float64);
    count 0 is everything below ``edges[0]``, count ``VM_BINS + 1`` everything at or above
    ``edges[-1]``."""
    scale = abs(float(threshold)) or 1.0
    return np.linspace(VM_LOW * scale, VM_HIGH * scale, VM_BINS + 1)


@dataclass(slots=True)
class VmStats:
    """One spiking layer's membrane potentials at one step (after charging, before reset:
    the value compared with the threshold)."""

    counts: np.ndarray  # int64 [VM_BINS + 2]: under, VM_BINS bins, over; sums to ``neurons``
    neurons: int  # neurons counted (the layer's map size times the batch)
    threshold_now: float  # base threshold * threshold_scale at this step
    near: float  # fraction of neurons with |v - threshold_now| <= NEAR_FRACTION*|threshold_now|
    mean: float
    std: float
    min: float
    max: float


@dataclass(slots=True)
class ChannelStats:
    """A conv spiking layer's ([C, H, W] map) channels at one step."""

    rates: np.ndarray  # float32 [C]: fraction of each channel's neurons that fired this step
    window_rates: np.ndarray  # float32 [C]: the same over the window so far (this step included)
    silent: int  # channels with no spike in the window so far
    saturated: int  # channels whose window_rates >= SATURATED_RATE


@dataclass(slots=True)
class SynapticLayer:
    """One synaptic layer (conv or linear) at one step, as NeuroBench counts it: an input
    that is all 0/1 is spiking and each non-zero input costs one accumulate per synapse it
    reaches (``kind="AC"``); any other input costs one multiply-accumulate per non-zero input
    and synapse (``kind="MAC"``)."""

    ops: float  # effective operations this step (for the whole batch)
    kind: str  # "AC" | "MAC"
    dense: float  # operations a dense evaluation would do (every input, every synapse)


@dataclass
class StepAnalysis:
    """Everything the in-depth probes measured at one model step."""

    vm: dict[str, VmStats] = field(default_factory=dict)  # spiking layer -> Vm
    channels: dict[str, ChannelStats] = field(default_factory=dict)  # conv spiking layers
    synops: dict[str, SynapticLayer] = field(default_factory=dict)  # synaptic layer -> ops
    #: NeuroBench's activation sparsity of this step: zero outputs / all outputs, over every
    #: spiking layer's neurons.
    sparsity: float = float("nan")
    #: float32 ``[L]``: each spiking layer's fraction of neurons that fired this step, over
    #: the batch, in ``model.spiking_layers()`` order (NaN for a layer that recorded no
    #: spikes): the float32 ``count / neurons`` that torch's ``mean`` gives for 0/1 spikes.
    #: The stepper takes its rates from here while the probes run on a CPU.
    layer_rates: np.ndarray | None = None

    @property
    def total_ops(self) -> dict[str, float]:
        """Effective operations this step by kind: {"AC": ..., "MAC": ...}."""
        out = {"AC": 0.0, "MAC": 0.0}
        for layer in self.synops.values():
            out[layer.kind] = out.get(layer.kind, 0.0) + layer.ops
        return out
