"""What the worker builds: the recording's source, the model (a checkpoint or the untrained
demo) and the chain of binners and stepper that joins them."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from dvsapp.binning import BinningConfig, StreamingBinner
from dvsapp.errors import EventFileError
from dvsapp.events.sources import EventSource, ReplaySource
from dvsapp.events.types import DVS_GESTURE_CLASSES, SensorSize
from dvsapp.pipeline.records import PipelineSettings
from dvsapp.runner import binning_for_recording, build_exits
from dvsapp.snn.base import SpikingModel
from dvsapp.snn.checkpoint import Checkpoint
from dvsapp.snn.early_exit import Metric
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
    """The model's binner, the sensor-resolution event binner and the stepper.

    Both binners get the same packets with the same mode, window and empty-frame cap, so
    their frames cover exactly the same time bins, one for one.
    """

    binning: BinningConfig
    binner: StreamingBinner
    events: StreamingBinner
    stepper: Stepper

    def reset(self) -> None:
        self.binner.reset()
        self.events.reset()
        self.stepper.reset()

    def close(self) -> None:
        self.stepper.close()


def model_binning(
    model: LoadedModel, settings: PipelineSettings, sensor: SensorSize, path: Path | None
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
    model: LoadedModel, settings: PipelineSettings, sensor: SensorSize, path: Path | None
) -> Chain:
    """Binners and stepper for ``model`` over a recording with ``sensor``."""
    config = model_binning(model, settings, sensor, path)
    ckpt, dev = model.ckpt, model.device
    # The BNTT gamma exit applies to BNTT models only: another model runs without it
    # (the GUI switches the option off) rather than failing to load.
    gamma = settings.temporal_exit_gamma if ckpt.model.family == "bntt" else None
    exits = build_exits(
        ckpt,
        settings.exit_threshold,
        settings.exit_consecutive,
        cast(Metric, settings.exit_metric),
        gamma,
    )
    stepper = Stepper(
        ckpt.model,
        dev,
        settings.window_steps,
        cast(Policy, settings.policy),
        exits=exits,
        health=FiringRateHealth(),
        rates=True,
        class_names=ckpt.class_names,
    )
    cuda = dev.type == "cuda"
    binner = StreamingBinner(config, "torch" if cuda else "numpy", dev if cuda else None)
    return Chain(config, binner, StreamingBinner(event_binning(config)), stepper)


def bin_seconds(config: BinningConfig) -> float:
    """One bin's stream time in seconds (count mode: a nominal 10 ms)."""
    return config.time_window_us / 1e6 if config.time_window_us else 0.01
