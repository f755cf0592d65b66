"""The live panels: event view, spike rasters, membrane traces, firing rates, prediction, and
the in-depth ones: Vm histograms, per-channel rates, synaptic operations."""

from dvsapp.gui.panels.base import Panel
from dvsapp.gui.panels.channels import ChannelPanel
from dvsapp.gui.panels.event_view import EventView
from dvsapp.gui.panels.prediction import PredictionPanel
from dvsapp.gui.panels.rasters import RasterPanel
from dvsapp.gui.panels.rates import RatesPanel
from dvsapp.gui.panels.synops import SynopsPanel
from dvsapp.gui.panels.vm_hist import VmHistogramPanel
from dvsapp.gui.panels.vm_traces import VmPanel

__all__ = [
    "ChannelPanel",
    "EventView",
    "Panel",
    "PredictionPanel",
    "RasterPanel",
    "RatesPanel",
    "SynopsPanel",
    "VmHistogramPanel",
    "VmPanel",
]
