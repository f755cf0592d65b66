"""The pipeline's data contract: settings in, model layout, step frames and stats out.

API CONTRACT (written by the lead, implemented by the pipeline, used by the GUI). Names and
fields here are the contract: extend, do not rename. Fields added by the implementation have
defaults and are marked "(added)".

Two clocks appear here. ``StepFrame.t_start_us``/``t_end_us`` are the stream's own times as
delivered: they only ever grow, also across loop passes (each pass is shifted past the one
before). ``PipelineStats.stream_time_us``, ``t_first_us`` and ``duration_us`` are on the
recording's own clock, the one ``Pipeline.seek`` takes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dvsapp.snn.analysis.records import StepAnalysis
from dvsapp.snn.graph.importer import ImportOptions
from dvsapp.snn.health import HealthReport
from dvsapp.snn.stepper import WindowResult


@dataclass(frozen=True)
class PipelineSettings:
    """What the pipeline runs and how; ``Pipeline.configure`` applies a changed copy live."""

    recording: Path | None = None
    checkpoint: Path | None = None  # None: an untrained demo model (marked so in `model_name`)
    device: str = "auto"  # "auto" | "cpu" | "cuda"
    speed: float = 1.0  # 0.1 .. inf
    loop: bool = True
    bin_us: int | None = None  # None: the checkpoint's time window
    window_steps: int | None = None  # None: the checkpoint's T
    policy: str = "reset"  # "reset" | "free" (time-invariant families: tdbn, graph)
    exit_threshold: float | None = 0.9  # confidence exit (None: off)
    exit_consecutive: int = 3
    exit_metric: str = "prob"  # "prob" | "margin"
    temporal_exit_gamma: float | None = None  # BNTT gamma exit (None: off)
    raster_neurons: int = 128  # neurons per layer shown in a raster (sampled, fixed seed)
    raster_channel: dict[str, int | None] = field(default_factory=dict)  # layer -> one channel
    vm_neurons: dict[str, tuple[int, ...]] = field(default_factory=dict)  # layer -> flat idx
    threshold_scale: dict[str, float] = field(default_factory=dict)  # layer -> scale (1.0)
    accumulate_events: bool = False  # event view: accumulate over the window, not one bin
    #: (added) how to feed ``checkpoint`` when it is a NIR graph (None: ImportOptions()).
    import_options: ImportOptions | None = None
    #: (added) compare mode: a second model stepped on the same events (lane 1), binned by
    #: its own checkpoint; None: one model only. The demo never stands in for it.
    compare_checkpoint: Path | None = None
    compare_import_options: ImportOptions | None = None
    #: (added) the in-depth probes (Vm histograms, channel rates, synaptic operations):
    #: StepFrame.analysis is None when off, and they cost nothing then.
    analysis: bool = True
    #: (added) the spiking layer whose whole spike map each StepFrame carries
    #: (StepFrame.spike_map, for per-channel rate maps); None: none.
    channel_layer: str | None = None
    #: (added) the same two for the compared model (lane 1): its rastered channels and the
    #: layer of its whole spike maps, picked in its own column's Channels tab.
    compare_raster_channel: dict[str, int | None] = field(default_factory=dict)
    compare_channel_layer: str | None = None
    #: (added) the compared model's traced neurons (layer -> flat indices), picked on its
    #: column's rasters.
    compare_vm_neurons: dict[str, tuple[int, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordingOrigin:
    """(added) Where the open recording comes from, as far as its file tells
    (:func:`dvsapp.pipeline.advice.recording_origin` has the rule)."""

    path: Path | None
    kind: str  # "real-dvs128" | "synthetic" | "other"
    reason: str  # one line: what in the file said so


@dataclass
class ModelInfo:
    """What the GUI needs to lay out its panels for the loaded model."""

    name: str  # checkpoint file name, or "untrained demo (resnet_small)"
    arch: str
    family: str  # "tdbn" | "bntt" | "graph"
    class_names: list[str]
    layer_names: list[str]  # spiking layers in forward order
    layer_shapes: dict[str, tuple[int, ...]]  # per-sample neuron map shape per layer
    thresholds: dict[str, float]  # base threshold per layer
    window_steps: int
    bin_us: int  # 0 when the model bins by event count (see event_count)
    input_size: tuple[int, int]  # (w, h)
    sensor_size: tuple[int, int]  # the recording's (w, h)
    device: str
    trained: bool
    #: (added) layer -> the flat neuron indices shown in its raster, in row order.
    raster_index: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    #: (added) layer -> the flat indices whose Vm each StepFrame carries (out-of-range ones
    #: of ``vm_neurons`` are left out).
    vm_index: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    event_count: int | None = None  # (added) events per bin in count mode, else None
    path: Path | None = None  # (added) the checkpoint file (None for the demo)
    #: (added) where a network from elsewhere comes from: its checkpoint's ``extra["source"]``
    #: (framework, file, dt_s, readout, ...); empty for our own architectures.
    source: dict[str, Any] = field(default_factory=dict)
    #: (added) the checkpoint's ``trained_on`` ("synth", "DVS128 Gesture (real; ...)", ...).
    trained_on: str = ""
    #: (added) the input it was trained on, e.g. "2x32x32, 40 ms bins, denoised".
    trained_input: str = ""
    #: (added) the checkpoint's own bin width (0: count bins) and window length (T), which
    #: ``bin_us`` / ``window_steps`` equal unless the settings changed them.
    trained_bin_us: int = 0
    trained_window_steps: int = 0
    #: (added) which of the session's models this is: 0 the main one, 1 the compared one.
    lane: int = 0
    #: (added) the synaptic layers (conv / linear) whose operations StepAnalysis.synops
    #: reports, in forward order.
    synaptic_layers: list[str] = field(default_factory=list)


@dataclass
class StepFrame:
    """One model step as the GUI draws it (all numpy, all owned: safe across threads)."""

    index: int  # global step count since the pipeline (re)started
    window: int
    step: int  # 1-based step within the window
    t_start_us: int
    t_end_us: int
    events_on: np.ndarray  # uint16 [H, W] at sensor resolution: ON counts of this bin
    events_off: np.ndarray  # uint16 [H, W]: OFF counts
    raster: dict[str, np.ndarray]  # layer -> uint8 [n]: spikes of ModelInfo.raster_index[layer]
    vm: dict[str, np.ndarray]  # layer -> float32 [n]: Vm of ModelInfo.vm_index[layer]
    rates: np.ndarray  # float32 [L]: every layer's rate, in ModelInfo.layer_names order
    probs: np.ndarray  # float32 [K]: accumulated class probabilities in this window
    pred: int
    exited: bool  # the window's early exit fired at this step
    window_result: WindowResult | None  # set on the window's last step
    health: HealthReport | None
    latency_ms: float  # the model step (frame transfer + step), as the Stepper measures it
    true_label: int | None  # label segment covering this step's midpoint, as a model class
    #: (added) bumped whenever the stream restarts (seek, new recording / model / binning):
    #: the GUI clears its history when it changes.
    epoch: int = 0
    true_name: str | None = None  # (added) the label segment's name
    overhead_ms: float = 0.0  # (added) the pipeline's own work for this step, around the model
    recording_t_us: int | None = None  # (added) t_start_us on the recording's own clock
    lane: int = 0  # (added) the model that stepped: ModelInfo.lane
    #: (added) the in-depth probes of this step (None when PipelineSettings.analysis is off)
    analysis: StepAnalysis | None = None
    #: (added) uint8 [C, H, W] (or the layer's shape): the whole spike map of
    #: PipelineSettings.channel_layer at this step; None when that is unset.
    spike_map: np.ndarray | None = None


@dataclass
class PipelineStats:
    """Counters for the status bar."""

    #: "starting", "idle" (no recording), "running", "paused", "ended", "error", "stopped",
    #: or a live source's own state ("stalled", "disconnected").
    state: str
    message: str  # last one-line error or notice ("" when none)
    events_per_s: float
    step_latency_ms: float  # mean over the last second
    realtime_factor: float  # stream time advanced / wall time, over the last second
    steps: int
    dropped_steps: int  # frames the GUI never saw (mailbox overflow)
    stream_time_us: int | None  # end of the last step, on the recording's own clock
    duration_us: int | None  # of the recording, once known (after its first pass)
    t_first_us: int | None = None  # (added) the recording's first timestamp
    overhead_ms: float = 0.0  # (added) mean pipeline work per step around the model
    epoch: int = 0  # (added) see StepFrame.epoch
    #: (added) model loads that failed so far; the last one's file and one-line reason. A
    #: load that fails while a model runs leaves that model running (no "error" state).
    model_failures: int = 0
    failed_model: Path | None = None
    model_error: str = ""
    #: (added) the open recording's origin (None: none open, or a live source).
    recording_origin: RecordingOrigin | None = None
    #: (added) recording opens that failed so far; the last one's file and one-line reason.
    #: A recording that fails to open while another plays leaves that one playing.
    recording_failures: int = 0
    failed_recording: Path | None = None
    recording_error: str = ""
    #: (added) how the open recording differs from the model's training data
    #: (:func:`dvsapp.advisories.mismatch_warnings`), and why its sensor size is a guess.
    warnings: tuple[str, ...] = ()
    sensor_guess: str = ""
    #: (added) compare mode: the second model's one-line load error ("" when none), and
    #: how its binning differs from the main model's ("" when the same).
    compare_error: str = ""
    compare_note: str = ""
    #: (added) the open export (Pipeline.start_export): its file, rows written so far, and
    #: the one-line error that stopped it ("" when none).
    export_path: Path | None = None
    export_rows: int = 0
    export_error: str = ""
