"""`dvsapp run`: stream recordings through one or more trained SNNs and report every window.

A :class:`~dvsapp.session.core.Session` per recording: replay source -> each model's own
streaming binner (its checkpoint's binning config) -> its stepper. When the recording's sensor
differs from the one a model was trained on, events are binned at the recording's sensor size
and downsampled to the model's input size (as tonic's Downsample); a recording smaller than
the model's input, or with one polarity for a model that takes ON and OFF as two channels, is
refused. On CUDA the torch binner bins on the model's device. Several models (``--model A
--model B``) step on the same events, each binned for itself; every line names its model,
and the summary has one entry per model.

Labels: a window's ``true`` class is the label segment that covers the window's midpoint
(the first one, where segments overlap); windows outside every segment have none and do not
count towards the accuracy. A window is correct when its predicted class name equals the
segment's name, or, when the segment's name is none of the model's classes, when the
predicted index equals the segment's label index.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from tqdm import tqdm

from dvsapp.binning import BinningConfig
from dvsapp.errors import ConfigError, DvsappError
from dvsapp.events.detect import detect_format
from dvsapp.events.sources import ReplaySource
from dvsapp.session.core import Lane, Session
from dvsapp.session.labels import is_correct, segment_at
from dvsapp.session.loading import LaneSettings, LoadedModel, layer_shapes
from dvsapp.session.rate_report import RateReport
from dvsapp.session.window_stats import WindowAnalysis
from dvsapp.snn.checkpoint import Checkpoint, load_checkpoint
from dvsapp.snn.early_exit import Metric
from dvsapp.snn.health import FiringRateHealth
from dvsapp.snn.stepper import Policy, Stepper, WindowResult, resolve_device

if TYPE_CHECKING:
    from dvsapp.session.export import SessionExport


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


@dataclass
class _Model:
    """One model of the run: its checkpoint, its lane (rebuilt when the sensor changes) and
    what is counted for it."""

    name: str
    ckpt: Checkpoint
    loaded: LoadedModel
    stats: RunStats = field(default_factory=RunStats)
    report: RateReport | None = None
    analysis: WindowAnalysis | None = None
    lane: Lane | None = None
    sensor: tuple[int, int, int] | None = None


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
    model: str | os.PathLike[str] | Checkpoint | Sequence[str | os.PathLike[str] | Checkpoint],
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
    export: str | os.PathLike[str] | None = None,
    probes: bool = True,
) -> int:
    """Run ``model`` (a checkpoint path or one already open, or several) over one recording,
    several, or every recording in a folder; one line per window and model, then a summary.
    Returns 0.

    Each recording starts from a fresh state. ``window``: steps per window (default each
    model's T), or ``"file"`` for one window per recording. With ``rates`` (a health
    monitor's thresholds), every window also reports each layer's mean firing rate, the
    flagged layers and its Vm histograms, and the summary a per-layer rate table
    (:mod:`dvsapp.session.rate_report`). With ``json_lines``, ``rates`` or ``export`` the
    in-depth probes run: each JSON window line carries Vm statistics, silent channels, synaptic
    operations and sparsity (:mod:`dvsapp.session.window_stats`); ``probes=False`` keeps them
    off (about 0.15 ms a step less on ``resnet_small``, and 0.7 s once for their kernels).
    ``export``: a Parquet file with one row per step and model
    (:mod:`dvsapp.session.export`), checked writable before anything runs. Each way a
    recording differs from a model's training data (:mod:`dvsapp.advisories`) is one
    ``dvsapp: warning:`` line on ``warn`` (default stderr) before its windows. Bad input
    raises a :class:`DvsappError` (the CLI prints it, exits 2).
    """
    out = sys.stdout if out is None else out
    warn = sys.stderr if warn is None else warn
    dev = resolve_device(device)
    paths = expand_recordings(recording, fmt)
    steps = WHOLE_FILE_STEPS if window == "file" else window
    if isinstance(steps, str):
        raise ConfigError(f"window must be a number of steps or 'file', got {window!r}")
    models = _open_models(model, dev)
    probing = probes and (json_lines or rates is not None or export is not None)
    settings = LaneSettings(
        window_steps=steps,
        policy=policy,
        exit_threshold=exit_threshold,
        exit_consecutive=exit_consecutive,
        exit_metric=exit_metric,
        temporal_exit_gamma=temporal_exit,
        gamma_elsewhere="refuse",
        health=rates,
        rates=rates is not None or export is not None,  # the export has per-layer rates
        analysis=probing,
    )
    for m in models:  # the exits and window are checked before anything runs
        Stepper(
            m.ckpt.model, dev, steps, policy, class_names=m.ckpt.class_names, rates=False
        ).close()
        if temporal_exit is not None and m.ckpt.model.family != "bntt":
            raise ConfigError(f"temporal exit needs a BNTT model; {m.ckpt.arch} is not one")
    if export is not None:
        from dvsapp.session.export import SessionExport, check_export_path

        check_export_path(export)  # opened with the first recording's lanes, before it runs
    exporter: SessionExport | None = None
    wall0 = time.perf_counter()
    many = len(paths) > 1
    try:
        for n, path in enumerate(paths):
            source = ReplaySource(path, speed=speed, fmt=fmt)
            try:
                session = _session(source, models, settings, path, rates)
            except BaseException:
                source.stop()
                raise
            if export is not None and exporter is None:
                exporter = SessionExport(export, session.lanes)
            for m in models:
                _warn_mismatch(source, m.ckpt, path, warn)
            if n == 0:
                _note_binnings(models, warn)
                if not json_lines:
                    for m in models:
                        _print_header(out, m, source, len(paths), len(models) > 1)
                    print(HEADER + ("  model" if len(models) > 1 else ""), file=out)
            _run_one(source, session, models, json_lines, out, many, exporter)
            for m in models:
                _warn_short(m.stats, m.ckpt, path, warn)
                m.stats.end_recording()
        wall = time.perf_counter() - wall0
    finally:
        for m in models:
            if m.lane is not None:
                m.lane.close()
        if exporter is not None:
            exporter.close()
    summaries = []
    for m in models:
        m.stats.wall_s = wall
        summary = {"model": m.name, **m.stats.to_dict(str(dev))}
        if many:
            summary["recordings"] = len(paths)
        if m.report is not None:
            summary["firing_rates"] = m.report.summary()
        if m.analysis is not None:
            summary.update(m.analysis.summary())
        summaries.append(summary)
    if exporter is not None:
        print(f"dvsapp: wrote {exporter.rows} rows to {exporter.path}", file=warn, flush=True)
    if json_lines:
        line = summaries[0] if len(summaries) == 1 else {"models": summaries}
        print(json.dumps({"summary": line}), file=out, flush=True)
        return 0
    for m, summary in zip(models, summaries, strict=True):
        if len(models) > 1:
            print(f"-- {m.name}", file=out)
        _print_summary(out, summary)
        if m.report is not None:
            print("\n".join(m.report.table()), file=out, flush=True)
    return 0


def _open_models(
    model: str | os.PathLike[str] | Checkpoint | Sequence[str | os.PathLike[str] | Checkpoint],
    dev: Any,
) -> list[_Model]:
    """Each model opened on ``dev``, named by its file (made unique)."""
    items = [model] if isinstance(model, str | os.PathLike | Checkpoint) else list(model)
    if not items:
        raise ConfigError("no model given")
    models: list[_Model] = []
    names: set[str] = set()
    for item in items:
        ckpt = item if isinstance(item, Checkpoint) else load_checkpoint(item, dev)
        ckpt.model.to(dev)
        name = Path(ckpt.path).stem if ckpt.path is not None else ckpt.arch
        base, k = name, 2
        while name in names:
            name, k = f"{base}#{k}", k + 1
        names.add(name)
        loaded = LoadedModel(ckpt, name, True, dev, layer_shapes(ckpt.model, dev))
        models.append(_Model(name, ckpt, loaded))
    return models


def _session(
    source: ReplaySource,
    models: list[_Model],
    settings: LaneSettings,
    path: Path,
    rates: FiringRateHealth | None,
) -> Session:
    """A session over ``source`` with a lane per model, each from a fresh state (a lane is
    rebuilt only when the recording's sensor differs from the last one's)."""
    sensor = tuple(source.sensor_size)
    for i, m in enumerate(models):
        if m.lane is None or m.sensor != sensor:
            if m.lane is not None:
                m.lane.close()
                m.lane = None
            m.lane = Lane(i, m.loaded, settings, source.sensor_size, path)
            m.sensor = sensor  # type: ignore[assignment]
            if rates is not None and m.report is None:
                m.report = RateReport(m.lane.chain.stepper.layer_names, rates)
            if settings.analysis and m.analysis is None:
                m.analysis = WindowAnalysis(histograms=rates is not None)
        else:
            m.lane.reset()
    return Session([m.lane for m in models if m.lane is not None], source)


def _note_binnings(models: list[_Model], warn: TextIO) -> None:
    """One stderr line when the models bin the stream differently (each bins for itself)."""
    if len(models) < 2:
        return
    texts = [(m.name, _binning_text(m.lane.chain.binning)) for m in models if m.lane is not None]
    if len({t for _, t in texts}) > 1:
        each = "; ".join(f"{name}: {text}" for name, text in texts)
        print(f"dvsapp: note: the models bin the stream differently ({each}); each bins for itself",
              file=warn, flush=True)  # fmt: skip


def _binning_text(config: BinningConfig) -> str:
    c, h, w = config.frame_shape
    bins = f"{config.time_window_us / 1000:g} ms" if config.mode == "time" else (
        f"{config.event_count} events"
    )  # fmt: skip
    denoise = f", denoised {config.denoise_us / 1000:g} ms" if config.denoise_us else ""
    return f"{c}x{h}x{w} frames of {bins}{denoise}"


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
    session: Session,
    models: list[_Model],
    json_lines: bool,
    out: TextIO,
    many: bool,
    exporter: SessionExport | None,
) -> None:
    """Stream one recording through every lane, writing a line per window and model."""
    name = str(source.reader.path)
    several = len(models) > 1
    with (
        source,
        tqdm(unit="step", file=sys.stderr, disable=None, leave=False, dynamic_ncols=True) as bar,
    ):
        for step in session.drive():
            m = models[step.lane]
            rec = step.record
            if rec is not None:
                m.stats.steps += 1
                m.stats.latency_ms += rec.latency_ms
                bar.update()
                if m.report is not None:
                    m.report.add_step(rec)
                if m.analysis is not None:
                    m.analysis.add(step.analysis)
                if exporter is not None and m.lane is not None:
                    seg = segment_at(source.labels, (step.t_start_us + step.t_end_us) // 2)
                    true = None if seg is None else seg.name
                    exporter.add(m.lane, step, true, recording_t_us=step.t_start_us)
            result = step.window_result
            if result is None:
                continue
            seg = segment_at(source.labels, (result.t_start_us + result.t_end_us) // 2)
            correct = None if seg is None else is_correct(result, seg, m.ckpt.class_names)
            m.stats.add_window(result, correct)
            window_rates = {} if m.report is None else m.report.close_window()
            probes = {} if m.analysis is None else m.analysis.close_window()
            if json_lines:
                line = {**result.to_dict(), "true": seg.name if seg else None, "correct": correct}
                line["model"] = m.name
                if many:
                    line["file"] = name
                tqdm.write(json.dumps({**line, **window_rates, **probes}), file=out)
            else:
                row = _row(result, seg.name if seg else None, correct)
                row = f"{row}  {m.name}" if several else row
                tqdm.write(f"{row}  {name}" if many else row, file=out)
            out.flush()


def _print_header(
    out: TextIO, m: _Model, source: ReplaySource, recordings: int = 1, named: bool = False
) -> None:
    ckpt = m.ckpt
    assert m.lane is not None
    config, stepper = m.lane.chain.binning, m.lane.chain.stepper
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
    label = f" [{m.name}]" if named else ""
    print(
        f"model   {ckpt.arch} ({kind}) from {ckpt.path}: "
        f"{len(ckpt.class_names)} classes, on {stepper.device}{label}",
        file=out,
    )
    print(
        f"input   {source.reader.path} ({source.reader.format_name}, {w}x{h}) -> "
        f"{c}x{fh}x{fw} frames of {bins}; {_windows(stepper)} ({stepper.policy})"
        + (f"; {recordings} recordings, each from a fresh state" if recordings > 1 else ""),
        file=out,
    )


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
