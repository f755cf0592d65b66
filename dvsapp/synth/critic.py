"""The critic: a network trained on REAL DVS128 Gesture judging synthetic clips.

``models/snntorch_dvs_gesture.safetensors`` is NeuroBench's snnTorch network, trained on the
real dataset and never on ours (its card: ``models/snntorch_dvs_gesture.md``). Its accuracy on
synthetic clips, with its own preprocessing, measures how real they look: if it names a
synthetic "left hand wave" as one, the clip carries what the real recordings carry.

Each clip runs alone from a fresh state, as one window, through dvsapp's own import of the
network (:func:`~dvsapp.snn.checkpoint.load_checkpoint` and :class:`~dvsapp.snn.stepper.Stepper`;
no snnTorch needed) with the checkpoint's own binning: tonic-equal denoising (10 ms) at
128x128, downsampling to 32x32 and 40 ms event-count bins; the predicted class is the output
neuron with the most spikes over the clip. Clip ``k`` of every class has seed ``seed + k``
(one subject doing all 11 gestures), as in the training data's splits.

Nothing here imports Qt; torch is imported on first use.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dvsapp.errors import ConfigError
from dvsapp.events.types import DVS_GESTURE_CLASSES

#: The shipped critic (an import of NeuroBench's real-data network).
CRITIC_MODEL = Path(__file__).resolve().parents[2] / "models" / "snntorch_dvs_gesture.safetensors"
#: First seed by default: above the training split's seeds (< 10^6) of ``dvsapp train --data
#: synth``; the critic itself never saw a synthetic clip.
DEFAULT_SEED = 1_000_000
#: Real DVS128 Gesture samples last about 6 s: 150 bins of 40 ms, the critic's window.
DEFAULT_CLIP_S = 6.0

ClipMaker = Callable[[int, int, float], np.ndarray]


@dataclass
class CriticReport:
    """The critic's verdict on a synthetic set: ``confusion[true, predicted]`` clip counts."""

    model: str
    generator: int
    seeds: list[int]
    clip_s: float
    class_names: list[str]
    confusion: np.ndarray
    events_per_s: list[float] = field(default_factory=list)

    @property
    def per_class(self) -> np.ndarray:
        """Fraction of each class's clips the critic names correctly."""
        n = self.confusion.sum(axis=1)
        return np.diag(self.confusion) / np.maximum(n, 1)

    @property
    def accuracy(self) -> float:
        """Fraction of all clips named correctly."""
        total = int(self.confusion.sum())
        return float(np.trace(self.confusion)) / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "model": self.model,
            "generator": self.generator,
            "seeds": self.seeds,
            "clip_s": self.clip_s,
            "clips": int(self.confusion.sum()),
            "accuracy": self.accuracy,
            "per_class": dict(zip(self.class_names, map(float, self.per_class), strict=True)),
            "class_names": self.class_names,
            "confusion": self.confusion.tolist(),
            "mean_events_per_s": float(np.mean(self.events_per_s)) if self.events_per_s else None,
        }

    def table(self) -> list[str]:
        """Per-class accuracy and the confusion matrix (rows true, columns predicted)."""
        k = len(self.class_names)
        lines = [
            f"critic {self.model} on generator {self.generator}: {int(self.confusion.sum())} "
            f"clips of {self.clip_s:g} s, seeds {self.seeds[0]}..{self.seeds[-1]}",
            f"accuracy {self.accuracy:.1%} ({int(np.trace(self.confusion))}/"
            f"{int(self.confusion.sum())})",
        ]
        if self.events_per_s:
            lines.append(f"mean event rate {np.mean(self.events_per_s) / 1e3:.1f} k ev/s")
        lines.append("confusion: rows the true class, columns the class the critic named")
        head = " ".join(f"{i:>3d}" for i in range(k))
        lines.append(f"{'':>2} {'true class':<28} {'acc':>5}  {head}")
        for i, name in enumerate(self.class_names):
            row = " ".join(f"{int(v):>3d}" for v in self.confusion[i])
            lines.append(f"{i:>2} {name:<28} {self.per_class[i]:5.0%}  {row}")
        return lines


def load_critic(path: str | os.PathLike[str] = CRITIC_MODEL) -> Any:
    """The critic's checkpoint; a missing file is a one-line ConfigError."""
    from dvsapp.snn.checkpoint import load_checkpoint

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: critic model not found (the shipped snntorch_dvs_gesture import)")
    return load_checkpoint(p, "cpu")


def critic_predict(ckpt: Any, events: np.ndarray, duration_s: float, stepper: Any = None) -> int:
    """The class the critic names for one clip (events from t = 0), stepped alone from a fresh
    state with the checkpoint's binning (denoising included); at most one window."""
    from dvsapp.binning import bin_events
    from dvsapp.snn.stepper import Stepper

    if stepper is None:
        stepper = Stepper(ckpt.model, "cpu", rates=False, class_names=ckpt.class_names)
    binning = ckpt.binning
    assert binning.time_window_us is not None
    steps = min(max(round(duration_s * 1e6 / binning.time_window_us), 1), stepper.window_steps)
    frames = bin_events(events, binning, t0_us=0, max_empty_frames=None)
    data = np.asarray(frames.data)[:steps]
    if len(data) < steps:
        pad = np.zeros((steps - len(data), *binning.frame_shape), dtype=np.float32)
        data = np.concatenate([data, pad]) if len(data) else pad
    stepper.reset()
    result = None
    for i, frame in enumerate(data):
        t = i * binning.time_window_us
        result = stepper.push(frame, t, t + binning.time_window_us).window_result
    if result is None:
        result = stepper.finish()
    assert result is not None
    return int(result.pred)


def clip_maker(generator: int) -> ClipMaker:
    """``(class, seed, duration_s) -> events`` of the synthetic generator ``generator``."""
    from dvsapp.synth.generate import gesture_events

    def make(c: int, seed: int, duration_s: float) -> np.ndarray:
        return gesture_events(c, seed, duration_s, generator=generator)

    return make


def run_critic(
    n_per_class: int,
    *,
    seed: int = DEFAULT_SEED,
    clip_s: float = DEFAULT_CLIP_S,
    generator: int = 1,
    model: str | os.PathLike[str] = CRITIC_MODEL,
    classes: Sequence[int] | None = None,
    threads: int | None = 1,
    make_clip: ClipMaker | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CriticReport:
    """Generate ``n_per_class`` clips of each class (seeds ``seed .. seed + n - 1``) and let the
    critic name each one. ``threads`` caps torch's CPU threads (1 on a shared machine)."""
    if isinstance(n_per_class, bool) or not isinstance(n_per_class, int) or n_per_class < 1:
        raise ConfigError(f"clips per class must be an integer >= 1, not {n_per_class!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, not {seed!r}")
    if not (isinstance(clip_s, (int, float)) and 0 < clip_s <= 60):
        raise ConfigError(f"clip length must be in (0, 60] s, not {clip_s!r}")
    ckpt = load_critic(model)
    import torch

    if threads is not None:
        torch.set_num_threads(max(int(threads), 1))
    from dvsapp.snn.stepper import Stepper

    names = list(ckpt.class_names)
    if names != list(DVS_GESTURE_CLASSES):
        raise ConfigError(f"{model}: the critic's classes are not DVS128 Gesture's 11: {names}")
    todo = list(range(len(names))) if classes is None else list(classes)
    make = make_clip if make_clip is not None else clip_maker(generator)
    stepper = Stepper(ckpt.model, "cpu", rates=False, class_names=names)
    confusion = np.zeros((len(names), len(names)), dtype=np.int64)
    rates: list[float] = []
    total, done = n_per_class * len(todo), 0
    for k in range(n_per_class):
        for c in todo:
            events = make(c, seed + k, clip_s)
            rates.append(len(events) / clip_s)
            confusion[c, critic_predict(ckpt, events, clip_s, stepper)] += 1
            done += 1
            if progress is not None:
                progress(done, total)
    stepper.close()
    return CriticReport(
        model=str(model),
        generator=generator,
        seeds=list(range(seed, seed + n_per_class)),
        clip_s=float(clip_s),
        class_names=names,
        confusion=confusion,
        events_per_s=rates,
    )
