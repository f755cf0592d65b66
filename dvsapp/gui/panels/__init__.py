"""The live panels: event view, spike rasters, membrane traces, firing rates, prediction."""
