"""In-depth probes for debugging firing-rate collapse: membrane-potential histograms against
the threshold, per-channel activity (dead and saturated channels), and NeuroBench-compatible
activation sparsity and synaptic operations. Qt-free; the records are in
:mod:`dvsapp.snn.analysis.records`."""

from dvsapp.snn.analysis.analyzer import Analyzer
from dvsapp.snn.analysis.records import (
    ChannelStats,
    StepAnalysis,
    SynapticLayer,
    VmStats,
    vm_edges,
)

__all__ = ["Analyzer", "ChannelStats", "StepAnalysis", "SynapticLayer", "VmStats", "vm_edges"]
