"""Warnings about a recording a model cannot know (no Qt): `dvsapp run` prints each as one line
on stderr and the app shows them as a note.

A model answers confidently whatever it is fed, so the answer on a recording unlike its
training data needs a word of warning. :func:`mismatch_warnings` compares what a recording is
(:class:`RecordingFacts`: its sensor size and whether that size is a guess, its polarity
channels, how long it lasts, whether it is synthetic or real) with what the model was trained
on (:class:`TrainingFacts`: its binning's sensor and input size, the length of one window, its
checkpoint's ``trained_on``) and returns short sentences, each naming both sides (e.g.
"the recording's 1280x720 sensor is not the 128x128 one the model was trained on ...").

:func:`sensor_size_guess` says when a reader's sensor size is a guess (an N-CARS DAT file
without geometry, N-Caltech101's bounding box, a RAW or structured .npy file scanned for its
largest coordinate, an AEDAT 3.1 header naming no size) and why; ``dvsapp info`` shows it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: ``metadata["sensor_size_source"]`` (Prophesee) values that are guesses, not the header's word.
_PROPHESEE_GUESSES = ("scan", "default")
#: ``metadata["sensor_size_from"]`` (AEDAT 3.1, N-Caltech101) prefixes that are guesses.
_FROM_GUESSES = ("assumed", "bounding box")
#: Aspect ratios closer than this (relative) count as the same.
_ASPECT_TOLERANCE = 0.02
#: A recording shorter than this fraction of one window gets a time-scale warning.
_SHORT_FRACTION = 0.5


def sensor_size_guess(metadata: Mapping[str, Any]) -> str:
    """Why a reader's sensor size is a guess ("" when its file says it): from the reader's
    ``metadata``."""
    source = str(metadata.get("sensor_size_source") or "")
    if source.startswith(_PROPHESEE_GUESSES):
        return source
    size_from = str(metadata.get("sensor_size_from") or "")
    if size_from.startswith(_FROM_GUESSES):
        return size_from
    if metadata.get("layout") == "structured":
        return "scan (max + 1)"
    return ""


@dataclass(frozen=True)
class RecordingFacts:
    """What a recording is, for :func:`mismatch_warnings`."""

    sensor_size: tuple[int, int]
    polarities: int = 2
    sensor_guess: str = ""  # why the sensor size is a guess; "" when the file says it
    origin: str = "other"  # dvsapp.pipeline.advice's kinds: real-dvs128, synthetic, other
    origin_reason: str = ""
    duration_us: int | None = None  # None: not known (not scanned)


@dataclass(frozen=True)
class TrainingFacts:
    """What a checkpoint was trained on, for :func:`mismatch_warnings`."""

    sensor_size: tuple[int, int]
    input_size: tuple[int, int]
    training: str = "unknown"  # one of dvsapp.pipeline.advice.TRAINING_DATA
    window_us: int | None = None  # one window: T bins of time_window_us (None: count bins)


def recording_facts(reader: Any, duration_us: int | None = None) -> RecordingFacts:
    """:class:`RecordingFacts` of an open event reader (or anything with ``sensor_size``,
    ``metadata``, ``format_name`` and ``path``)."""
    from dvsapp.pipeline.advice import origin_of_reader

    size = tuple(int(v) for v in getattr(reader, "sensor_size", (0, 0, 2)))
    metadata = dict(getattr(reader, "metadata", {}) or {})
    origin = origin_of_reader(reader)
    return RecordingFacts(
        sensor_size=(size[0], size[1]),
        polarities=size[2] if len(size) > 2 else 2,
        sensor_guess=sensor_size_guess(metadata),
        origin=origin.kind,
        origin_reason=origin.reason,
        duration_us=duration_us,
    )


def training_facts(binning: Any, trained_on: str | None, time_steps: int | None) -> TrainingFacts:
    """:class:`TrainingFacts` of a checkpoint's binning (a ``BinningConfig``), ``trained_on``
    text and T."""
    from dvsapp.pipeline.advice import training_data

    sensor = tuple(int(v) for v in binning.sensor_size)
    size = tuple(int(v) for v in (binning.input_size or binning.sensor_size))
    window = None
    if binning.mode == "time" and binning.time_window_us and time_steps:
        window = int(binning.time_window_us) * int(time_steps)
    return TrainingFacts(
        sensor_size=(sensor[0], sensor[1]),
        input_size=(size[0], size[1]),
        training=training_data(trained_on),
        window_us=window,
    )


def checkpoint_facts(ckpt: Any) -> TrainingFacts:
    """:class:`TrainingFacts` of a loaded :class:`~dvsapp.snn.checkpoint.Checkpoint`."""
    steps = getattr(getattr(ckpt, "config", None), "time_steps", None)
    return training_facts(ckpt.binning, getattr(ckpt, "trained_on", ""), steps)


def _wh(size: tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


def _aspect_differs(a: tuple[int, int], b: tuple[int, int]) -> bool:
    ra, rb = a[0] / max(a[1], 1), b[0] / max(b[1], 1)
    return abs(ra - rb) > _ASPECT_TOLERANCE * rb


def mismatch_warnings(rec: RecordingFacts, train: TrainingFacts) -> list[str]:
    """Short sentences, one per way ``rec`` differs from the model's training data (empty
    when nothing is known to differ)."""
    from dvsapp.pipeline.advice import DVS128_GESTURE, REAL_DVS128, SYNTHETIC, SYNTHETIC_RECORDING

    out: list[str] = []
    r, t, i = rec.sensor_size, train.sensor_size, train.input_size
    if rec.sensor_guess:
        out.append(
            f"the recording's sensor size {_wh(r)} is a guess ({rec.sensor_guess}); "
            "its file does not say"
        )
    if r != t:
        line = (
            f"the recording's {_wh(r)} sensor is not the {_wh(t)} one the model was trained "
            f"on: its events are scaled to the model's {_wh(i)} input"
        )
        if _aspect_differs(r, i):
            line += " and its aspect ratio differs, so the image is squashed"
        out.append(line)
    if rec.polarities < 2:
        out.append(
            f"the recording has one polarity; the model was trained on ON and OFF events "
            f"(a {_wh(t)} sensor)"
        )
    if train.training == SYNTHETIC and rec.origin != SYNTHETIC_RECORDING:
        kind = "real" if rec.origin == REAL_DVS128 else "not one of dvsapp's synthetic ones"
        why = f" ({rec.origin_reason})" if rec.origin_reason else ""
        out.append(f"the model was trained on synthetic gestures and the recording is {kind}{why}")
    elif train.training == DVS128_GESTURE and rec.origin == SYNTHETIC_RECORDING:
        out.append("the model was trained on real DVS128 Gesture and the recording is synthetic")
    if rec.duration_us is not None:
        out.extend(duration_warnings(rec.duration_us, train))
    return out


def duration_warnings(duration_us: int, train: TrainingFacts) -> list[str]:
    """The time-scale warning alone (for a caller that learns the duration only after
    streaming the recording): a recording shorter than half of one training window."""
    if not train.window_us or duration_us >= _SHORT_FRACTION * train.window_us:
        return []
    return [
        f"the recording lasts {duration_us / 1e6:.3g} s, less than half of one "
        f"{train.window_us / 1e6:.3g} s window the model was trained on"
    ]
