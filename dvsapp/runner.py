"""`dvsapp run`: stream a recording through a trained SNN and report every window.

replay source -> streaming binner (the checkpoint's binning config) -> stepper. When the
recording's sensor differs from the one the model was trained on, events are binned at the
recording's sensor size and downsampled to the model's input size (as tonic's Downsample);
a recording smaller than the model's input, or with one polarity for a model that takes ON
and OFF as two channels, is refused. On CUDA the torch binner bins on the model's device.

Labels: a window's ``true`` class is the label segment that covers the window's midpoint
(the first one, where segments overlap); windows outside every segment have none and do not
count towards the accuracy. A window is correct when its predicted class name equals the
segment's name, or, when the segment's name is none of the model's classes, when the
predicted index equals the segment's label index.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from tqdm import tqdm

from dvsapp.binning import BinningConfig, Frames, StreamingBinner
from dvsapp.errors import ConfigError, DvsappError
from dvsapp.events.detect import detect_format
from dvsapp.events.sources import ReplaySource, SourceState
from dvsapp.events.types import LabelSegment, SensorSize
from dvsapp.rate_report import RateReport
from dvsapp.snn.checkpoint import Checkpoint, load_checkpoint
from dvsapp.snn.early_exit import ConfidenceExit, ExitPolicy, Metric, TemporalExit
from dvsapp.snn.health import FiringRateHealth
from dvsapp.snn.stepper import Policy, Stepper, StepRecord, WindowResult, resolve_device

IDLE_SLEEP_S = 0.002


def binning_for_recording(
    trained: BinningConfig, sensor: SensorSize, path: str | os.PathLike[str]
) -> BinningConfig:
    """The checkpoint's binning, re-based on the recording's sensor when that differs."""
    w, h, polarities = sensor
    if trained.channels == 2 and polarities < 2:
        raise ConfigError(
            f"{os.fspath(path)}: the recording has {polarities} polarity channel but the model "
            "takes OFF and ON events as 2 channels"
        )
    if (w, h) == trained.sensor_size:
        return trained
    assert trained.input_size is not None
    iw, ih = trained.input_size
    if iw > w or ih > h:
        raise ConfigError(
            f"{os.fspath(path)}: the recording's {w}x{h} sensor is smaller than the model's "
            f"{iw}x{ih} input (binning can only downsample)"
        )
    return dataclasses.replace(trained, sensor_size=(w, h))


def segment_at(labels: Sequence[LabelSegment], t_us: int) -> LabelSegment | None:
    """The first label segment with ``t_start_us <= t_us < t_end_us``."""
    return next((s for s in labels if s.t_start_us <= t_us < s.t_end_us), None)


def is_correct(result: WindowResult, segment: LabelSegment, class_names: Sequence[str]) -> bool:
    """Name match, or index match when the segment's name is not one of the model's classes."""
    if segment.name in class_names:
        return result.label == segment.name
    return result.pred == segment.label


@dataclass
class RunStats:
    """What the summary line reports."""

    windows: int = 0
    steps: int = 0
    labelled: int = 0
    correct: int = 0
    exit_steps: int = 0
    exits_fired: int = 0
    latency_ms: float = 0.0
    t_first_us: int | None = None
    t_last_us: int | None = None
    stream_us: int = 0  # the spans of the recordings already finished
    wall_s: float = 0.0

    def add_window(self, result: WindowResult, correct: bool | None) -> None:
        self.windows += 1
        self.exit_steps += result.exit_step
        self.exits_fired += result.exit_reason is not None
        if correct is not None:
            self.labelled += 1
            self.correct += correct
        if self.t_first_us is None:
            self.t_first_us = result.t_start_us
        self.t_last_us = result.t_end_us

    def end_recording(self) -> None:
        """Bank the finished recording's span (recordings' clocks are unrelated)."""
        if self.t_first_us is not None and self.t_last_us is not None:
            self.stream_us += self.t_last_us - self.t_first_us
        self.t_first_us = self.t_last_us = None

    def to_dict(self, device: str) -> dict[str, Any]:
        self.end_recording()
        stream_s = self.stream_us / 1e6
        return {
            "windows": self.windows,
            "steps": self.steps,
            "labelled_windows": self.labelled,
            "correct": self.correct,
            "accuracy": self.correct / self.labelled if self.labelled else None,
            "mean_exit_step": self.exit_steps / self.windows if self.windows else None,
            "exits_fired": self.exits_fired,
            "mean_step_latency_ms": self.latency_ms / self.steps if self.steps else None,
            "stream_s": stream_s,
            "wall_s": self.wall_s,
            "realtime_factor": stream_s / self.wall_s if self.wall_s > 0 else None,
            "device": device,
        }


def build_exits(
    ckpt: Checkpoint,
    exit_threshold: float | None,
    exit_consecutive: int,
    exit_metric: Metric,
    temporal_exit: float | None,
) -> list[ExitPolicy]:
    """The early-exit policies asked for on the command line."""
    exits: list[ExitPolicy] = []
    if exit_threshold is not None:
        exits.append(ConfidenceExit(exit_threshold, exit_consecutive, exit_metric))
    if temporal_exit is not None:
        if ckpt.model.family != "bntt":
            raise ConfigError(f"temporal exit needs a BNTT model; {ckpt.arch} is not one")
        exits.append(TemporalExit.from_model(ckpt.model, temporal_exit))
    return exits


def stream_windows(
    source: ReplaySource,
    binner: StreamingBinner,
    stepper: Stepper,
    stats: RunStats,
    bar: tqdm,
    on_step: Callable[[StepRecord], None] | None = None,
) -> Iterator[WindowResult]:
    """Replay the whole recording; yield every window as it completes (the last may be short).
    ``on_step`` sees every step's record first."""

    def step_all(frames: Frames) -> Iterator[WindowResult]:
        for i in range(len(frames)):
            rec = stepper.push(frames.data[i], int(frames.t_start_us[i]), int(frames.t_end_us[i]))
            if on_step is not None:
                on_step(rec)
            stats.steps += 1
            stats.latency_ms += rec.latency_ms
            bar.update()
            if rec.window_result is not None:
                yield rec.window_result

    with source:
        while True:
            events = source.poll()
            if len(events):
                yield from step_all(binner.push(events))
            status = source.status()
            if status.state is SourceState.ERROR:
                raise DvsappError(status.message)
            if status.state is SourceState.ENDED:
                yield from step_all(binner.flush())
                tail = stepper.finish()
                if tail is not None:
                    yield tail
                return
            if not len(events):
                time.sleep(IDLE_SLEEP_S)


def _row(result: WindowResult, true: str | None, correct: bool | None) -> str:
    mark = "" if correct is None else ("right" if correct else "wrong")
    return (
        f"{result.window:6d} {result.t_start_us / 1e6:9.3f} {result.t_end_us / 1e6:9.3f} "
        f"{result.steps:5d}  {result.label:<16.16} {float(result.probs[result.pred]):5.3f} "
        f"{result.exit_step:4d}  {result.exit_label:<16.16} {true or '-':<16.16} {mark}"
    ).rstrip()


HEADER = (
    f"{'window':>6} {'start s':>9} {'end s':>9} {'steps':>5}  {'pred':<16} {'p':>5} "
    f"{'exit':>4}  {'at exit':<16} {'true'}"
)


def expand_recordings(
    paths: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], fmt: str | None = None
) -> list[Path]:
    """Recordings to run: files as given, folders as every readable recording below them
    (sorted; files of no known format are skipped). ConfigError when a folder holds none."""
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    out: list[Path] = []
    for item in items:
        p = Path(item)
        if not p.is_dir():
            out.append(p)
            continue
        found = []
        for f in sorted(q for q in p.rglob("*") if q.is_file()):
            try:
                detect_format(f, fmt)
            except DvsappError:
                continue
            found.append(f)
        if not found:
            raise ConfigError(f"{p}: no readable recording in this folder")
        out.extend(found)
    if not out:
        raise ConfigError("no recording given")
    return out


#: ``window="file"``: one window per recording, whatever its length.
WHOLE_FILE_STEPS = 1 << 40


def run(
    recording: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    model: str | os.PathLike[str] | Checkpoint,
    *,
    device: str = "auto",
    window: int | str | None = None,
    speed: float = math.inf,
    policy: Policy = "reset",
    exit_threshold: float | None = None,
    exit_consecutive: int = 3,
    exit_metric: Metric = "prob",
    temporal_exit: float | None = None,
    json_lines: bool = False,
    rates: FiringRateHealth | None = None,
    out: TextIO | None = None,
    fmt: str | None = None,
    warn: TextIO | None = None,
) -> int:
    """Run ``model`` (a checkpoint path or one already open) over one recording, several, or
    every recording in a folder; one line per window, then a summary. Returns 0.

    Each recording starts from a fresh state. ``window``: steps per window (default the
    model's T), or ``"file"`` for one window per recording. With ``rates`` (a health
    monitor's thresholds), every window also reports each layer's mean firing rate and the
    flagged layers, and the summary a per-layer rate table (:mod:`dvsapp.rate_report`). Each
    way a recording differs from the model's training data (:mod:`dvsapp.advisories`) is one
    ``dvsapp: warning:`` line on ``warn`` (default stderr) before its windows. Bad input raises
    a :class:`DvsappError` (the CLI prints it and exits 2).
    """
    out = sys.stdout if out is None else out
    dev = resolve_device(device)
    paths = expand_recordings(recording, fmt)
    ckpt = model if isinstance(model, Checkpoint) else load_checkpoint(model, dev)
    if isinstance(model, Checkpoint):
        ckpt.model.to(dev)
    exits = build_exits(ckpt, exit_threshold, exit_consecutive, exit_metric, temporal_exit)
    steps = WHOLE_FILE_STEPS if window == "file" else window
    if isinstance(steps, str):
        raise ConfigError(f"window must be a number of steps or 'file', got {window!r}")
    stepper = Stepper(
        ckpt.model, dev, steps, policy, exits=exits, health=rates, rates=rates is not None,
        class_names=ckpt.class_names,
    )  # fmt: skip
    report = None if rates is None else RateReport(stepper.layer_names, rates)
    stats = RunStats()
    wall0 = time.perf_counter()
    many = len(paths) > 1
    for n, path in enumerate(paths):
        source = ReplaySource(path, speed=speed, fmt=fmt)
        try:
            config = binning_for_recording(ckpt.binning, source.sensor_size, path)
        except ConfigError:
            source.stop()
            raise
        _warn_mismatch(source, ckpt, path, sys.stderr if warn is None else warn)
        cuda = dev.type == "cuda"
        binner = StreamingBinner(config, "torch" if cuda else "numpy", dev if cuda else None)
        stepper.reset()
        if not json_lines and n == 0:
            _print_header(out, ckpt, source, config, stepper, len(paths))
        _run_one(source, binner, stepper, stats, report, ckpt, json_lines, out, many)
        _warn_short(stats, ckpt, path, sys.stderr if warn is None else warn)
        stats.end_recording()
    stats.wall_s = time.perf_counter() - wall0
    summary = stats.to_dict(str(dev))
    if many:
        summary["recordings"] = len(paths)
    if report is not None:
        summary["firing_rates"] = report.summary()
    if json_lines:
        print(json.dumps({"summary": summary}), file=out, flush=True)
    else:
        _print_summary(out, summary)
        if report is not None:
            print("\n".join(report.table()), file=out, flush=True)
    return 0


def _warn_mismatch(source: ReplaySource, ckpt: Checkpoint, path: Path, warn: TextIO) -> None:
    """One stderr line per way the recording differs from the model's training data."""
    from dvsapp.advisories import checkpoint_facts, mismatch_warnings, recording_facts

    for line in mismatch_warnings(recording_facts(source.reader), checkpoint_facts(ckpt)):
        print(f"dvsapp: warning: {path}: {line}", file=warn, flush=True)


def _warn_short(stats: RunStats, ckpt: Checkpoint, path: Path, warn: TextIO) -> None:
    """After a recording: one stderr line when it was shorter than half a training window
    (its span is known only once streamed)."""
    from dvsapp.advisories import checkpoint_facts, duration_warnings

    if stats.t_first_us is None or stats.t_last_us is None:
        return
    for line in duration_warnings(stats.t_last_us - stats.t_first_us, checkpoint_facts(ckpt)):
        print(f"dvsapp: warning: {path}: {line}", file=warn, flush=True)


def _run_one(
    source: ReplaySource,
    binner: StreamingBinner,
    stepper: Stepper,
    stats: RunStats,
    report: RateReport | None,
    ckpt: Checkpoint,
    json_lines: bool,
    out: TextIO,
    many: bool,
) -> None:
    """Stream one recording, writing a line per window."""
    name = str(source.reader.path)
    with tqdm(unit="step", file=sys.stderr, disable=None, leave=False, dynamic_ncols=True) as bar:
        on_step = None if report is None else report.add_step
        for result in stream_windows(source, binner, stepper, stats, bar, on_step):
            seg = segment_at(source.labels, (result.t_start_us + result.t_end_us) // 2)
            correct = None if seg is None else is_correct(result, seg, ckpt.class_names)
            stats.add_window(result, correct)
            window_rates = {} if report is None else report.close_window()
            if json_lines:
                line = {**result.to_dict(), "true": seg.name if seg else None, "correct": correct}
                if many:
                    line["file"] = name
                tqdm.write(json.dumps({**line, **window_rates}), file=out)
            else:
                row = _row(result, seg.name if seg else None, correct)
                tqdm.write(f"{row}  {name}" if many else row, file=out)
            out.flush()


def _print_header(
    out: TextIO,
    ckpt: Checkpoint,
    source: ReplaySource,
    config: BinningConfig,
    stepper: Stepper,
    recordings: int = 1,
) -> None:
    w, h, _ = source.sensor_size
    c, fh, fw = config.frame_shape
    bins = (
        f"{config.time_window_us} us" if config.mode == "time" else f"{config.event_count} events"
    )
    src = ckpt.extra.get("source")
    kind = (
        f"{src.get('framework', '?')} graph, dt {src.get('dt_s')} s, readout {src.get('readout')}"
        if isinstance(src, dict)
        else ckpt.model.family
    )
    print(
        f"model   {ckpt.arch} ({kind}) from {ckpt.path}: "
        f"{len(ckpt.class_names)} classes, on {stepper.device}",
        file=out,
    )
    print(
        f"input   {source.reader.path} ({source.reader.format_name}, {w}x{h}) -> "
        f"{c}x{fh}x{fw} frames of {bins}; {_windows(stepper)} ({stepper.policy})"
        + (f"; {recordings} recordings, each from a fresh state" if recordings > 1 else ""),
        file=out,
    )
    print(HEADER, file=out)


def _windows(stepper: Stepper) -> str:
    if stepper.window_steps == WHOLE_FILE_STEPS:
        return "one window per recording"
    return f"windows of {stepper.window_steps} steps"


def _print_summary(out: TextIO, s: dict[str, Any]) -> None:
    acc = "n/a (no labels)" if s["accuracy"] is None else f"{s['accuracy']:.1%}"
    acc_detail = f" ({s['correct']}/{s['labelled_windows']})" if s["labelled_windows"] else ""
    mean_exit = "n/a" if s["mean_exit_step"] is None else f"{s['mean_exit_step']:.2f}"
    latency = "n/a" if s["mean_step_latency_ms"] is None else f"{s['mean_step_latency_ms']:.3f}"
    rtf = "n/a" if s["realtime_factor"] is None else f"{s['realtime_factor']:.1f}x"
    print(f"windows {s['windows']}, steps {s['steps']}, accuracy {acc}{acc_detail}", file=out)
    print(
        f"mean exit step {mean_exit}; mean step latency {latency} ms on {s['device']}; "
        f"{s['stream_s']:.3f} s of stream in {s['wall_s']:.3f} s ({rtf} real time)",
        file=out,
    )
