"""How the app's settings become the session's lanes: lane 0 the main model, lane 1 the
compared one."""

from __future__ import annotations

from typing import Any

from dvsapp.pipeline.records import PipelineSettings
from dvsapp.session.core import Lane
from dvsapp.session.loading import LaneSettings


def lane_settings(s: PipelineSettings, lane: int) -> LaneSettings:
    """The app's settings for one lane: the compared model gets rasters and the in-depth
    probes too, and its own rastered channels, full spike map and traced neurons
    (``compare_*``, picked in its column)."""
    return LaneSettings(
        bin_us=s.bin_us,
        window_steps=s.window_steps,
        policy=s.policy,
        exit_threshold=s.exit_threshold,
        exit_consecutive=s.exit_consecutive,
        exit_metric=s.exit_metric,
        temporal_exit_gamma=s.temporal_exit_gamma,
        raster_neurons=s.raster_neurons,
        raster_channel=dict(s.raster_channel if lane == 0 else s.compare_raster_channel),
        vm_neurons=dict(s.vm_neurons if lane == 0 else s.compare_vm_neurons),
        analysis=s.analysis,
        channel_layer=s.channel_layer if lane == 0 else s.compare_channel_layer,
        event_view=lane == 0,
    )


def binning_difference(main: Lane, other: Lane) -> str:
    """One line saying how the compared model bins the stream differently ("" if alike)."""
    a, b = main.chain.binning, other.chain.binning

    def text(c: Any, lane: Lane) -> str:
        _, h, w = c.frame_shape
        bins = f"{c.time_window_us / 1000:g} ms" if c.mode == "time" else f"{c.event_count} ev"
        denoise = f", denoised {c.denoise_us / 1000:g} ms" if c.denoise_us else ""
        return f"{lane.name}: {w}x{h}, {bins} bins{denoise}, T={lane.chain.stepper.window_steps}"

    same = (a.frame_shape, a.mode, a.time_window_us, a.event_count, a.denoise_us) == (
        b.frame_shape, b.mode, b.time_window_us, b.event_count, b.denoise_us
    ) and main.chain.stepper.window_steps == other.chain.stepper.window_steps  # fmt: skip
    return "" if same else f"each model bins for itself: {text(a, main)}; {text(b, other)}"
