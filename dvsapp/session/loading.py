"""What a session builds: the recording's source, the model (a checkpoint or the untrained
demo) and the chain of binners and stepper that joins them."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from dvsapp.binning import BinningConfig, StreamingBinner, binning_for_recording
from dvsapp.errors import ConfigError, EventFileError
from dvsapp.events.sources import EventSource, ReplaySource
from dvsapp.events.types import DVS_GESTURE_CLASSES, SensorSize
from dvsapp.snn.base import SpikingModel
from dvsapp.snn.checkpoint import Checkpoint
from dvsapp.snn.early_exit import ConfidenceExit, ExitPolicy, Metric, TemporalExit
from dvsapp.snn.graph.importer import ImportOptions, open_model
from dvsapp.snn.health import FiringRateHealth
from dvsapp.snn.registry import build_model, default_config
from dvsapp.snn.stepper import Policy, Stepper, resolve_device

DEMO_ARCH = "resnet_small"
DEMO_NAME = f"untrained demo ({DEMO_ARCH})"
DEMO_INPUT = (64, 64)
DEMO_BIN_US = 20_000
DEMO_STEPS = 16
#: Sensor assumed for the demo model while no recording is open (DVS128).
DEFAULT_SENSOR: SensorSize = (128, 128, 2)


@dataclass(frozen=True)
class LaneSettings:
    """How one model of a session bins and steps (the app's settings for it, or the
    command line's for ``dvsapp run``)."""

    bin_us: int | None = None  # None: the checkpoint's time window
    window_steps: int | None = None  # None: the checkpoint's T
    policy: str = "reset"  # "reset" | "free"
    exit_threshold: float | None = 0.9  # confidence exit (None: off)
    exit_consecutive: int = 3
    exit_metric: str = "prob"  # "prob" | "margin"
    temporal_exit_gamma: float | None = None  # BNTT gamma exit (None: off)
    #: When the model is not BNTT: "refuse" the gamma exit (the CLI) or "ignore" it (the app,
    #: which switches the option off rather than fail the load).
    gamma_elsewhere: str = "ignore"
    #: The firing-rate watchdog's thresholds (None: no health reports).
    health: FiringRateHealth | None = field(default_factory=FiringRateHealth)
    rates: bool = True  # every layer's firing rate each step
    #: The app's taps: neurons per layer in a raster (0 and no ``vm_neurons``: no tap), one
    #: channel per layer to raster whole, and flat Vm indices per layer to trace.
    raster_neurons: int = 0
    raster_channel: Mapping[str, int | None] = field(default_factory=dict)
    vm_neurons: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    #: The in-depth probes (Vm histograms, channel stats, synaptic operations).
    analysis: bool = False
    #: The spiking layer whose whole spike map each step carries (None: none).
    channel_layer: str | None = None
    #: Bin the events at the sensor's resolution too, on the same bins (the app's view).
    event_view: bool = False

    @property
    def tapped(self) -> bool:
        return self.raster_neurons > 0 or any(self.vm_neurons.values())


def build_exits(
    ckpt: Checkpoint,
    exit_threshold: float | None,
    exit_consecutive: int,
    exit_metric: Metric,
    temporal_exit: float | None,
) -> list[ExitPolicy]:
    """The early-exit policies asked for; the BNTT gamma exit on another family is refused."""
    exits: list[ExitPolicy] = []
    if exit_threshold is not None:
        exits.append(ConfidenceExit(exit_threshold, exit_consecutive, exit_metric))
    if temporal_exit is not None:
        if ckpt.model.family != "bntt":
            raise ConfigError(f"temporal exit needs a BNTT model; {ckpt.arch} is not one")
        exits.append(TemporalExit.from_model(ckpt.model, temporal_exit))
    return exits


@dataclass
class Recording:
    """An open event source and what the pipeline knows about its clock."""

    source: EventSource
    path: Path | None
    first_t_us: int | None  # the recording's first timestamp (its own clock)

    @property
    def replay(self) -> ReplaySource | None:
        """The source when it is a replay (pause, seek, speed, loop); None when live."""
        return self.source if isinstance(self.source, ReplaySource) else None


def open_recording(
    path: str | os.PathLike[str], speed: float, loop: bool, clock: Callable[[], float]
) -> Recording:
    """A (not yet started) replay of ``path``; a file with no events is refused."""
    source = ReplaySource(path, speed=speed, loop=loop, clock=clock)
    try:
        first = first_timestamp(source)
    except BaseException:
        source.stop()
        raise
    if first is None:
        source.stop()
        raise EventFileError(path, "holds no events")
    return Recording(source, Path(path), first)


def first_timestamp(source: ReplaySource) -> int | None:
    """The first event's timestamp (decodes one packet); None for an empty recording."""
    packets = cast("Generator[np.ndarray, None, None]", source.reader.packets(max_events=1))
    try:
        first = next(packets, None)
    finally:
        packets.close()
    return None if first is None else int(first["t"][0])


@dataclass
class LoadedModel:
    """A checkpoint (or the demo standing in for one) ready to step."""

    ckpt: Checkpoint
    name: str
    trained: bool
    device: torch.device
    shapes: dict[str, tuple[int, ...]]  # per-sample neuron map shape per spiking layer


def demo_input(sensor: SensorSize) -> tuple[int, int]:
    """The demo's input size for a sensor: 64x64, or the sensor where it is smaller."""
    return min(DEMO_INPUT[0], sensor[0]), min(DEMO_INPUT[1], sensor[1])


def load_model(
    checkpoint: Path | None,
    device: str,
    sensor: SensorSize,
    options: ImportOptions | None = None,
) -> LoadedModel:
    """The checkpoint's model on ``device``, or the untrained demo for ``sensor``.

    ``checkpoint`` may also be a NIR graph (``.nir``), imported in memory with ``options``
    (None: the defaults, as ``dvsapp import`` without flags).
    """
    if checkpoint is None:
        return demo_model(sensor, device)
    dev = resolve_device(device)
    ckpt = open_model(checkpoint, dev, options)
    return LoadedModel(ckpt, Path(checkpoint).name, True, dev, layer_shapes(ckpt.model, dev))


def model_source(ckpt: Checkpoint) -> dict[str, Any]:
    """Where a network from elsewhere comes from (``extra["source"]``; {} for ours)."""
    src = ckpt.extra.get("source") if isinstance(ckpt.extra, dict) else None
    return dict(src) if isinstance(src, dict) else {}


def demo_model(sensor: SensorSize, device: str) -> LoadedModel:
    """An untrained ``resnet_small`` (fixed seed) binned as DVS-Gesture models are."""
    dev = resolve_device(device)
    size = demo_input(sensor)
    config = default_config(
        DEMO_ARCH,
        input_size=size,
        in_channels=2,
        num_classes=len(DVS_GESTURE_CLASSES),
        time_steps=DEMO_STEPS,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_model(config)
    model.to(dev).eval()
    w, h = sensor[0], sensor[1]
    binning = BinningConfig(sensor_size=(w, h), time_window_us=DEMO_BIN_US, input_size=size)
    ckpt = Checkpoint(
        path=Path(DEMO_NAME),
        model=model,
        config=config,
        class_names=list(DVS_GESTURE_CLASSES),
        binning=binning,
        sensor_size=(w, h, 2),
        trained_on="nothing (untrained)",
    )
    return LoadedModel(ckpt, DEMO_NAME, False, dev, layer_shapes(model, dev))


def layer_shapes(model: SpikingModel, device: torch.device) -> dict[str, tuple[int, ...]]:
    """Per-sample neuron map shape of every spiking layer (one step on a zero frame)."""
    cfg = model.config
    frame = torch.zeros((1, cfg.in_channels, cfg.input_size[1], cfg.input_size[0]), device=device)
    model.reset()
    try:
        with torch.inference_mode():
            model.step(frame)
        return {
            name: tuple(layer.v.shape[1:]) if layer.v is not None else (0,)
            for name, layer in model.spiking_layers().items()
        }
    finally:
        model.reset()


@dataclass
class Chain:
    """The model's binner, the sensor-resolution event binner (None without an event view)
    and the stepper.

    Both binners get the same packets with the same mode, window and empty-frame cap, so
    their frames cover exactly the same time bins, one for one.
    """

    binning: BinningConfig
    binner: StreamingBinner
    events: StreamingBinner | None
    stepper: Stepper

    def reset(self) -> None:
        self.binner.reset()
        if self.events is not None:
            self.events.reset()
        self.stepper.reset()

    def close(self) -> None:
        self.stepper.close()


def model_binning(
    model: LoadedModel, settings: LaneSettings, sensor: SensorSize, path: Path | None
) -> BinningConfig:
    """The checkpoint's binning for this recording, with the settings' bin width."""
    config = binning_for_recording(model.ckpt.binning, sensor, path or model.ckpt.path)
    if settings.bin_us is not None and settings.bin_us != config.time_window_us:
        config = dataclasses.replace(
            config, mode="time", time_window_us=settings.bin_us, event_count=None
        )
    return config


def event_binning(config: BinningConfig) -> BinningConfig:
    """Same bins as ``config``, at sensor resolution, ON/OFF split, int16 counts (saturating
    at 32767 per pixel and bin; the binner has no uint16 output). Denoised as the model's
    input is, so the view shows the events the model sees (and count bins stay aligned)."""
    return BinningConfig(
        sensor_size=config.sensor_size,
        mode=config.mode,
        time_window_us=config.time_window_us,
        event_count=config.event_count,
        dtype="int16",
        denoise_us=config.denoise_us,
    )


def build_chain(
    model: LoadedModel, settings: LaneSettings, sensor: SensorSize, path: Path | None
) -> Chain:
    """Binners and stepper for ``model`` over a recording with ``sensor``."""
    config = model_binning(model, settings, sensor, path)
    ckpt, dev = model.ckpt, model.device
    gamma = settings.temporal_exit_gamma
    if gamma is not None and ckpt.model.family != "bntt" and settings.gamma_elsewhere == "ignore":
        gamma = None  # the app switches the option off rather than fail the load
    exits = build_exits(
        ckpt,
        settings.exit_threshold,
        settings.exit_consecutive,
        cast(Metric, settings.exit_metric),
        gamma,
    )
    h = settings.health
    health = None if h is None else FiringRateHealth(h.silent_below, h.saturated_above, h.patience)
    stepper = Stepper(
        ckpt.model,
        dev,
        settings.window_steps,
        cast(Policy, settings.policy),
        exits=exits,
        health=health,
        rates=settings.rates or health is not None,
        class_names=ckpt.class_names,
    )
    cuda = dev.type == "cuda"
    binner = StreamingBinner(config, "torch" if cuda else "numpy", dev if cuda else None)
    events = StreamingBinner(event_binning(config)) if settings.event_view else None
    return Chain(config, binner, events, stepper)


def bin_seconds(config: BinningConfig) -> float:
    """One bin's stream time in seconds (count mode: a nominal 10 ms)."""
    return config.time_window_us / 1e6 if config.time_window_us else 0.01
