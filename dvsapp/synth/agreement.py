"""The critic the other way round: on a labelled recording, do the real-data critic and our
synthetic-trained models name each gesture alike?

Each label segment of the recording is cut out (its events from the segment's start, as a
clip of its own) and named

* by the critic (:func:`~dvsapp.synth.critic.critic_predict`: its own preprocessing, from a
  fresh state, the class with the most output spikes over the segment), and
* by each model, stepped over the segment from a fresh state with its checkpoint's binning
  (:func:`~dvsapp.binning.binning_for_recording`, as ``dvsapp run`` bins the recording): the
  class with the highest summed probability over the segment's windows (a last window cut
  short counts too).

The report gives, per model, its accuracy on the labels, the critic's, and how often the two
name a segment alike. Nothing here imports Qt; torch is imported on first use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dvsapp.errors import ConfigError
from dvsapp.synth.critic import CRITIC_MODEL, critic_predict, load_critic


@dataclass
class Verdict:
    """One label segment: its class and what each judge named it."""

    t_start_us: int
    t_end_us: int
    true: str
    critic: str
    models: dict[str, str]


@dataclass
class AgreementReport:
    """Every segment's verdicts; ``models`` are the models' names, in the order given."""

    recording: str
    critic: str
    models: list[str]
    verdicts: list[Verdict] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Per model: segments, its accuracy, the critic's, and the share named alike."""
        n = len(self.verdicts)
        critic_ok = sum(v.critic == v.true for v in self.verdicts)
        out: dict[str, Any] = {"segments": n, "critic_accuracy": critic_ok / n if n else None}
        for m in self.models:
            ok = sum(v.models[m] == v.true for v in self.verdicts)
            alike = sum(v.models[m] == v.critic for v in self.verdicts)
            out[m] = {
                "accuracy": ok / n if n else None,
                "agreement": alike / n if n else None,
                "alike": alike,
                "both_right": sum(v.models[m] == v.critic == v.true for v in self.verdicts),
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready report."""
        return {
            "recording": self.recording,
            "critic": self.critic,
            "models": self.models,
            "summary": self.summary(),
            "segments": [vars(v) for v in self.verdicts],
        }

    def table(self) -> list[str]:
        """One line per segment, then the summary lines."""
        short = [Path(m).stem for m in self.models]
        lines = [f"{self.recording}: critic {Path(self.critic).stem}"]
        head = f"{'segment (s)':<14}{'true class':<29}{'critic':<29}"
        lines.append(head + "".join(f"{s:<29}" for s in short))
        for v in self.verdicts:
            span = f"{v.t_start_us / 1e6:.1f}-{v.t_end_us / 1e6:.1f}"
            row = f"{span:<14}{v.true:<29}{v.critic:<29}"
            lines.append(row + "".join(f"{v.models[m]:<29}" for m in self.models))
        s = self.summary()
        n = s["segments"]
        if n:
            lines.append(f"critic: {s['critic_accuracy']:.0%} of {n} segments named right")
        for m, name in zip(self.models, short, strict=True):
            r = s[m]
            if n:
                lines.append(
                    f"{name}: {r['accuracy']:.0%} right; names {r['alike']}/{n} segments as "
                    f"the critic does ({r['agreement']:.0%}), {r['both_right']} of them right"
                )
        return lines


def model_verdict(ckpt: Any, stepper: Any, events: np.ndarray, sensor: tuple[int, ...],
                  path: str | os.PathLike[str]) -> int:  # fmt: skip
    """The class ``ckpt`` names for one clip (events from t = 0): stepped from a fresh state
    with its binning for the recording, the highest summed probability over its windows."""
    from dvsapp.binning import bin_events, binning_for_recording

    binning = binning_for_recording(ckpt.binning, sensor, path)
    frames = bin_events(events, binning, t0_us=0, max_empty_frames=None)
    assert binning.time_window_us is not None
    stepper.reset()
    total: np.ndarray | None = None
    for i, frame in enumerate(np.asarray(frames.data)):
        t = i * binning.time_window_us
        result = stepper.push(frame, t, t + binning.time_window_us).window_result
        if result is not None:
            total = result.probs.astype(np.float64) + (0 if total is None else total)
    last = stepper.finish()
    if last is not None:
        total = last.probs.astype(np.float64) + (0 if total is None else total)
    if total is None:
        raise ConfigError("a segment too short for one model step")
    return int(np.argmax(total))


def agreement(
    recording: str | os.PathLike[str],
    models: list[str | os.PathLike[str]],
    *,
    critic: str | os.PathLike[str] = CRITIC_MODEL,
    threads: int | None = 1,
) -> AgreementReport:
    """Name every label segment of ``recording`` by the critic and by each of ``models``
    (module docstring). A recording without labels is a one-line ConfigError."""
    import torch

    from dvsapp.events.detect import open_reader
    from dvsapp.snn.checkpoint import load_checkpoint
    from dvsapp.snn.stepper import Stepper

    if threads is not None:
        torch.set_num_threads(max(int(threads), 1))
    reader = open_reader(recording)
    labels = list(reader.labels or [])
    if not labels:
        raise ConfigError(f"{recording}: no labels (a <name>_labels.csv beside it)")
    events = reader.read_all()
    sensor = tuple(int(v) for v in reader.sensor_size)
    judge = load_critic(critic)
    judge_stepper = Stepper(judge.model, "cpu", rates=False, class_names=judge.class_names)
    loaded = []
    for m in models:
        ck = load_checkpoint(m, "cpu")
        loaded.append((str(m), ck, Stepper(ck.model, "cpu", rates=False,
                                           class_names=ck.class_names)))  # fmt: skip
    report = AgreementReport(str(recording), str(critic), [m for m, _, _ in loaded])
    t = events["t"]
    for seg in labels:
        lo, hi = np.searchsorted(t, [seg.t_start_us, seg.t_end_us], "left")
        clip = events[lo:hi].copy()
        clip["t"] -= seg.t_start_us
        duration_s = (seg.t_end_us - seg.t_start_us) / 1e6
        named = critic_predict(judge, clip, duration_s, judge_stepper)
        verdicts = {
            m: ck.class_names[model_verdict(ck, st, clip, sensor, recording)]
            for m, ck, st in loaded
        }
        report.verdicts.append(
            Verdict(seg.t_start_us, seg.t_end_us, seg.name, judge.class_names[named], verdicts)
        )
    for _, _, st in loaded:
        st.close()
    judge_stepper.close()
    return report
