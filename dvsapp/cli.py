"""The `dvsapp` command: gui (the desktop app; plain `dvsapp` opens it on the shipped
recording), info, convert, play (headless replay through the binner, or any --source),
devices (the cameras attached), record (any source to AEDAT4), run (an SNN checkpoint over
a recording)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from dvsapp import __version__
from dvsapp.argtypes import positive_int, size
from dvsapp.errors import ConfigError, DvsappError

if TYPE_CHECKING:
    from dvsapp.snn.checkpoint import Checkpoint
    from dvsapp.snn.graph.importer import ImportOptions
    from dvsapp.snn.health import FiringRateHealth

_REPO = Path(__file__).resolve().parents[1]
#: The recording that plain `dvsapp` opens: held-out synthetic gestures (AEDAT 3.1 + labels).
DEFAULT_RECORDING = _REPO / "recordings" / "synth_seed9000000.aedat"
#: The model the app opens with when none is given (`--model demo`: the untrained demo).
DEFAULT_MODEL = _REPO / "models" / "resnet_small_synth.safetensors"
#: `dvsapp run`'s confidence exit, the app's default (PipelineSettings): on, P 0.9 for 3 steps.
DEFAULT_EXIT_THRESHOLD = 0.9
DEFAULT_EXIT_CONSECUTIVE = 3


def _gui_model(arg: str | None) -> Path | None:
    """``--model``: a checkpoint path, ``demo`` (None: the untrained demo), or the default."""
    if arg == "demo":
        return None
    if arg:
        return Path(arg)
    return DEFAULT_MODEL if DEFAULT_MODEL.is_file() else None


#: ``--format`` of info/play, ``--input-format`` of convert.
_INPUT_FORMAT_HELP = (
    "read the input as this format instead of detecting it (e.g. nmnist, ncaltech101, "
    "aedat4; see README: Formats)"
)


def _cmd_info(args: argparse.Namespace) -> int:
    from dvsapp.events.summary import summarize

    s = summarize(args.path, stream=args.stream, fmt=args.format)
    if args.json:
        print(json.dumps(s.to_dict()))
        return 0
    print(f"file        {s.path}")
    print(f"format      {s.format}")
    print(f"sensor      {s.sensor_text}")
    print(f"events      {s.events:,} ({s.on_events:,} ON, {s.events - s.on_events:,} OFF)")
    print(f"first t     {s.t_first_us} us")
    print(f"last t      {s.t_last_us} us")
    print(f"duration    {s.duration_s:.6f} s")
    print(f"mean rate   {s.mean_rate_eps / 1e6:.3f} M events/s")
    if s.labels:
        print(f"labels      {len(s.labels)} segments")
        for seg in s.labels:
            dur = (seg.t_end_us - seg.t_start_us) / 1e6
            span = f"{seg.t_start_us} .. {seg.t_end_us} us ({dur:.2f} s)"
            print(f"  {seg.label:3d} {seg.name:<28} {span}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from dvsapp.events.convert import convert

    n = convert(
        args.input, args.output, fmt=args.format, stream=args.stream, input_fmt=args.input_format
    )
    print(f"wrote {n:,} events to {args.output}", file=sys.stderr)
    return 0


def _cmd_play(args: argparse.Namespace) -> int:
    from dvsapp.session.play import play

    if args.source is not None:
        if args.path is not None:
            raise ConfigError("give either PATH or --source, not both")
        from dvsapp.events.sources import open_source, parse_source_spec

        if parse_source_spec(args.source).kind != "replay":
            if args.format is not None:
                raise ConfigError("--format applies to a recording, not to a live --source")
            source = open_source(args.source, speed=args.speed, loop=args.loop)
            return play(
                source,
                bin_us=args.bin_us,
                input_size=args.input_size,
                duration_s=args.duration,
                denoise_us=args.denoise_us,
            )
        args.path = args.source
    path = args.path if args.path is not None else DEFAULT_RECORDING
    return play(
        path,
        speed=args.speed,
        loop=args.loop,
        bin_us=args.bin_us,
        input_size=args.input_size,
        duration_s=args.duration,
        fmt=args.format,
        denoise_us=args.denoise_us,
    )


def _cmd_devices(args: argparse.Namespace) -> int:
    from dvsapp.events.sources import list_devices

    notes: list[str] = []
    found = list_devices(notes)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if not found:
        print("no event camera found (looked with dv-processing and neuromorphic-drivers)")
        return 0
    print(f"{'source':<24} {'model':<24} {'back end':<22} detail")
    for d in found:
        print(f"{d.spec():<24} {d.model:<24} {d.backend:<22} {d.detail}")
    return 0


def _cmd_record(args: argparse.Namespace) -> int:
    from dvsapp.events.recorder import record
    from dvsapp.events.sources import open_source

    if not str(args.output).endswith(".aedat4"):
        raise ConfigError(f"{args.output}: the output must end in .aedat4")
    source = open_source(args.source, speed=args.speed)
    record(source, args.output, duration_s=args.duration)
    return 0


def _import_options(args: argparse.Namespace) -> ImportOptions:
    from dvsapp.snn.graph.importer import ImportOptions

    return ImportOptions(
        sensor=args.sensor,
        input_size=args.input_size,
        bin_us=args.bin_us,
        bin_events=args.bin_events,
        time_steps=args.time_steps,
        classes=args.classes,
        dt=args.dt,
        reset=args.reset,
        readout=args.readout,
        denoise_us=args.denoise_us,
    )


def _add_import_flags(p: argparse.ArgumentParser, what: str) -> None:
    """How to feed a network from elsewhere (``import``, and ``--model X.nir``)."""
    g = p.add_argument_group(f"networks from elsewhere ({what})")
    g.add_argument("--sensor", type=size, default=None, help="the recordings' sensor WxH")
    g.add_argument(
        "--input-size", type=size, default=None, help="the network's input WxH (default: its own)"
    )
    g.add_argument("--bin-us", type=positive_int, default=None, help="time bins (default 1000)")
    g.add_argument("--bin-events", type=positive_int, default=None, help="event-count bins")
    g.add_argument(
        "--denoise-us",
        type=positive_int,
        default=None,
        metavar="US",
        help="drop events with no neighbour event within US (tonic's Denoise), as trained",
    )
    g.add_argument(
        "--time-steps", type=positive_int, default=300, help="steps per window T (default 300)"
    )
    g.add_argument(
        "--classes",
        default=None,
        help="a count, a comma list of names, or nmnist / dvsgesture / ncaltech101 / cifar10dvs "
        "(default: the readout's size, named 0..K-1)",
    )
    g.add_argument(
        "--dt", type=float, default=None, help="seconds per step for NIR time constants (1e-4)"
    )
    g.add_argument(
        "--reset",
        choices=("to_v_reset", "subtract", "none"),
        default=None,
        help="spiking nodes' reset (default NIR's: to v_reset)",
    )
    g.add_argument(
        "--readout",
        choices=("spike_count", "mean_softmax"),
        default=None,
        help="class by most output spikes, or softmax of the mean output (default: by the "
        "output node: spiking or not)",
    )


def _open_model(
    args: argparse.Namespace, device: str = "cpu", path: str | None = None
) -> Checkpoint:
    from dvsapp.snn.graph.importer import open_model

    return open_model(args.model if path is None else path, device, _import_options(args))


def _cmd_import(args: argparse.Namespace) -> int:
    from dvsapp.snn.graph.importer import import_framework, import_nir, save_imported

    if args.framework == "nir":
        if args.code is not None:
            raise ConfigError("--code is for networks from a framework, not for a .nir graph")
        ckpt = import_nir(args.source, _import_options(args))
    else:
        if args.code is None:
            raise ConfigError(f"--framework {args.framework} needs --code FILE.py:NAME")
        ckpt = import_framework(args.source, args.framework, args.code, _import_options(args))
    if args.trained_on:
        ckpt.trained_on = args.trained_on
    out = save_imported(ckpt, args.output)
    spec = ckpt.config.graph or {}
    neurons = len(ckpt.model.spiking_layers())
    print(
        f"wrote {out}: {len(spec.get('nodes', []))} nodes ({neurons} spiking layers), "
        f"input {ckpt.config.in_channels}x{ckpt.config.input_size[1]}x"
        f"{ckpt.config.input_size[0]}, {len(ckpt.class_names)} classes, "
        + (f"dt {spec.get('dt')} s, " if args.framework == "nir" else "")
        + f"readout {spec.get('readout')}",
        file=sys.stderr,
    )
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    import torch

    from dvsapp.session.run import run
    from dvsapp.snn.stepper import resolve_device

    torch.set_num_threads(args.threads if args.threads is not None else default_threads())
    window = args.window
    if window is not None and window != "file":
        try:
            window = int(window)
        except ValueError:
            raise ConfigError(
                f"--window takes a number of steps or 'file', got {window!r}"
            ) from None
    device = str(resolve_device(args.device))
    if args.export is not None:
        from dvsapp.session.export import check_export_path

        check_export_path(args.export)  # before any model loads: fail at once
    return run(
        args.path,
        [_open_model(args, device, path) for path in args.model],
        device=args.device,
        window=window,
        speed=args.speed,
        policy=args.policy,
        exit_threshold=None if args.no_exit else args.exit_threshold,
        exit_consecutive=args.exit_consecutive,
        exit_metric=args.exit_metric,
        temporal_exit=args.temporal_exit,
        json_lines=args.json,
        rates=_health(args) if args.rates else None,
        fmt=args.format,
        export=args.export,
        probes=not args.no_probes,
    )


def default_threads() -> int:
    """torch's CPU threads for `dvsapp run` without ``--threads``: one less than the cores,
    at least 1, as the app takes. torch's intra-op pool spins at its barriers, so with a
    thread per core and any other busy process a step slows many times (docs/BENCHMARKS.md:
    Threads)."""
    return max(1, (os.cpu_count() or 1) - 1)


def _health(args: argparse.Namespace) -> FiringRateHealth:
    from dvsapp.snn.health import FiringRateHealth

    return FiringRateHealth(args.silent_below, args.saturated_above, args.patience)


def _has_display() -> bool:
    """Whether Qt can open a window here (a platform chosen, a display, or not Linux)."""
    if os.environ.get("QT_QPA_PLATFORM") or not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _cmd_gui(args: argparse.Namespace) -> int:
    if args.quit_after is not None and args.quit_after < 0:
        raise ConfigError(f"--quit-after must be >= 0 seconds, got {args.quit_after}")
    if args.screenshot is not None and not Path(args.screenshot).resolve().parent.is_dir():
        raise ConfigError(f"{args.screenshot}: the folder for the screenshot does not exist")
    if args.compare is not None and not Path(args.compare).is_file():
        raise ConfigError(f"{args.compare}: no such checkpoint to compare with")
    if not _has_display():
        if args.screenshot is None and args.quit_after is None:
            raise ConfigError(
                "no display to open the window on (set DISPLAY, or run `dvsapp play` / "
                "`dvsapp run` for the headless pipeline)"
            )
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # a timed screenshot needs no screen
    try:
        from dvsapp.gui.app import run_app
    except ImportError as e:
        raise ConfigError(
            f"the GUI needs PySide6 and pyqtgraph ({e}): pip install 'dvsapp[gui]'"
        ) from None
    if args.source is not None:
        from dvsapp.events.sources.factory import parse_source_spec

        parse_source_spec(args.source)  # a bad spec fails here, before a window opens
        path = None
    else:
        path = Path(args.path) if args.path is not None else DEFAULT_RECORDING
    return run_app(
        path,
        _gui_model(args.model),
        device=args.device,
        speed=args.speed,
        screenshot=Path(args.screenshot) if args.screenshot else None,
        quit_after=args.quit_after,
        source=args.source,
        import_options=_import_options(args),
        compare=None if args.compare is None else Path(args.compare),
    )


def _speed(text: str) -> float:
    if text.lower() in ("max", "inf", "fastest"):
        return float("inf")
    return float(text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dvsapp",
        description="Watch a spiking neural network think on a live event-camera stream.",
    )
    p.add_argument("--version", action="version", version=f"dvsapp {__version__}")
    sub = p.add_subparsers(dest="command")

    gui = sub.add_parser("gui", help="the desktop app (the default when no command is given)")
    what = gui.add_mutually_exclusive_group()
    what.add_argument("path", nargs="?", default=None, help="default: the shipped demo recording")
    what.add_argument(
        "--source",
        default=None,
        metavar="SPEC",
        help="stream from a live source instead: camera, camera:SERIAL, tcp://HOST:PORT, "
        "unix:PATH, webcam:N, video:PATH (or a recording path)",
    )
    gui.add_argument(
        "--model",
        default=None,
        metavar="CKPT",
        help="a .safetensors checkpoint, a .nir graph (imported in memory; see the flags "
        "below), or 'demo' for an untrained network "
        "(default: models/resnet_small_synth.safetensors)",
    )
    gui.add_argument(
        "--compare",
        default=None,
        metavar="CKPT",
        help="compare mode: a second checkpoint stepped on the same events (binned by its own "
        "checkpoint), its prediction, rasters and rates beside the first model's",
    )
    gui.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    gui.add_argument("--speed", type=_speed, default=1.0, help="0.1 .. N, or max (default 1)")
    gui.add_argument(
        "--screenshot", default=None, metavar="OUT.png", help="save the window, then exit"
    )
    gui.add_argument(
        "--quit-after",
        type=float,
        default=None,
        metavar="SECONDS",
        help="exit after this much playback (default with --screenshot: 2)",
    )
    _add_import_flags(gui, "--model X.nir")
    gui.set_defaults(func=_cmd_gui)

    info = sub.add_parser("info", help="format, sensor size, counts, timing and labels of a file")
    info.add_argument("path")
    info.add_argument("--json", action="store_true", help="one JSON object on stdout")
    info.add_argument("--stream", default=None, help="AEDAT4: the event stream (name or id)")
    info.add_argument("--format", default=None, metavar="NAME", help=_INPUT_FORMAT_HELP)
    info.set_defaults(func=_cmd_info)

    conv = sub.add_parser("convert", help="convert any readable recording to .npz or .aedat4")
    conv.add_argument("input")
    conv.add_argument("output")
    conv.add_argument(
        "--format", choices=("npz", "aedat4"), default=None, help="default: from OUT's extension"
    )
    conv.add_argument("--stream", default=None, help="AEDAT4: the event stream (name or id)")
    conv.add_argument("--input-format", default=None, metavar="NAME", help=_INPUT_FORMAT_HELP)
    conv.set_defaults(func=_cmd_convert)

    play = sub.add_parser("play", help="replay a recording through the binner (no GUI)")
    play.add_argument("path", nargs="?", default=None, help="default: the shipped demo recording")
    play.add_argument(
        "--source", default=None, metavar="SPEC", help="any source (see README: Sources)"
    )
    play.add_argument("--speed", type=_speed, default=1.0, help="0.1 .. N, or max (default 1)")
    play.add_argument("--loop", action="store_true")
    play.add_argument("--bin-us", type=int, default=10_000, help="time bin (default 10000 us)")
    play.add_argument("--input-size", type=size, default=None, help="downsample to WxH")
    play.add_argument(
        "--denoise-us",
        type=int,
        default=None,
        metavar="US",
        help="drop noise events first, as tonic's Denoise(filter_time=US) (default: off)",
    )
    play.add_argument("--duration", type=float, default=None, help="stop after S wall seconds")
    play.add_argument("--format", default=None, metavar="NAME", help=_INPUT_FORMAT_HELP)
    play.set_defaults(func=_cmd_play)

    devices = sub.add_parser("devices", help="list the event cameras attached")
    devices.set_defaults(func=_cmd_devices)

    rec = sub.add_parser("record", help="save a live (or any) source to an AEDAT4 file")
    rec.add_argument("output", metavar="OUT.aedat4")
    rec.add_argument(
        "--source",
        required=True,
        metavar="SPEC",
        help="camera, camera:SERIAL, tcp://HOST:PORT, unix:PATH, webcam:N, video:PATH or PATH",
    )
    rec.add_argument(
        "--duration", type=float, default=None, help="stop after S seconds (default: Ctrl-C)"
    )
    rec.add_argument(
        "--speed", type=_speed, default=1.0, help="files and videos: 0.1 .. N, or max (default 1)"
    )
    rec.set_defaults(func=_cmd_record)

    imp = sub.add_parser(
        "import", help="turn a network from elsewhere (a .nir graph) into a dvsapp checkpoint"
    )
    imp.add_argument(
        "source", help="the network: a .nir file, or a framework's state_dict (torch.save)"
    )
    imp.add_argument("-o", "--output", required=True, metavar="OUT.safetensors")
    imp.add_argument(
        "--framework", choices=("nir", "snntorch", "sinabs", "spikingjelly"), default="nir"
    )
    imp.add_argument(
        "--code",
        default=None,
        metavar="FILE.py:NAME",
        help="the model class or builder in your file (run once, here; never when loading)",
    )
    imp.add_argument(
        "--trained-on",
        default=None,
        metavar="TEXT",
        help="the data the network was trained on, as the app shows it (default: unknown)",
    )
    _add_import_flags(imp, "how the network is fed")
    imp.set_defaults(func=_cmd_import)

    run = sub.add_parser("run", help="stream recordings through an SNN checkpoint (no GUI)")
    run.add_argument("path", nargs="+", help="recordings, or folders of recordings")
    run.add_argument(
        "--model",
        required=True,
        action="append",
        help="a dvsapp .safetensors checkpoint or a .nir graph; repeat it to run several models "
        "on the same events (each binned by its own checkpoint)",
    )
    run.add_argument(
        "--export",
        default=None,
        metavar="OUT.parquet",
        help="also write one row per step and model (Parquet, readable with pandas); the path "
        "is checked before the run starts",
    )
    run.add_argument(
        "--no-probes",
        action="store_true",
        help="leave the in-depth probes (Vm statistics, silent channels, synaptic operations) "
        "out of --json, --rates and --export: about 0.15 ms a step less on resnet_small, and "
        "0.7 s once (loading their compiled kernels)",
    )
    run.add_argument(
        "--format", default=None, metavar="NAME", help="force the recordings' format (e.g. nmnist)"
    )
    run.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    run.add_argument("--json", action="store_true", help="one JSON line per window + summary")
    run.add_argument(
        "--window", default=None, help="steps per window (default: T), or 'file': one per recording"
    )
    run.add_argument(
        "--speed", type=_speed, default=float("inf"), help="0.1 .. N, or max (default max)"
    )
    run.add_argument(
        "--policy", choices=("reset", "free"), default="reset", help="reset the state per window"
    )
    run.add_argument(
        "--exit-threshold",
        type=float,
        default=DEFAULT_EXIT_THRESHOLD,
        metavar="P",
        help=f"confidence exit at P (default {DEFAULT_EXIT_THRESHOLD}, as the app)",
    )
    run.add_argument(
        "--exit-consecutive",
        type=int,
        default=DEFAULT_EXIT_CONSECUTIVE,
        metavar="K",
        help=f"for K steps (default {DEFAULT_EXIT_CONSECUTIVE})",
    )
    run.add_argument(
        "--no-exit", action="store_true", help="no confidence exit (each window exits at its end)"
    )
    run.add_argument("--exit-metric", choices=("prob", "margin"), default="prob")
    run.add_argument(
        "--temporal-exit",
        type=float,
        default=None,
        metavar="GAMMA",
        help="BNTT: exit where the mean gamma drops below GAMMA",
    )
    run.add_argument(
        "--rates",
        action="store_true",
        help="report each layer's firing rate per window and a per-layer table at the end",
    )
    run.add_argument(
        "--silent-below", type=float, default=1e-3, metavar="R", help="--rates: silent below R"
    )
    run.add_argument(
        "--saturated-above",
        type=float,
        default=0.9,
        metavar="R",
        help="--rates: saturated above R (default 0.9)",
    )
    run.add_argument(
        "--patience",
        type=positive_int,
        default=5,
        metavar="N",
        help="--rates: steps in a row before a step is flagged (default 5)",
    )
    run.add_argument(
        "--threads",
        type=positive_int,
        default=None,
        metavar="N",
        help="CPU threads for torch (default: one less than the cores, at least 1, as the app)",
    )
    _add_import_flags(run, "--model X.nir")
    run.set_defaults(func=_cmd_run)

    from dvsapp.synth.cli import add_parser as add_synth_parser

    add_synth_parser(sub)
    from dvsapp.train.cli import add_parsers as add_train_parsers

    add_train_parsers(sub)
    return p


def _quiet_closed_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's flush at exit cannot fail again on the
    closed pipe (Python's documented way: "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is no real file (a test's capture): nothing to do
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (2 for bad input, with one line on stderr)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # plain `dvsapp`: the app on the shipped demo recording
        args = parser.parse_args(["gui", *(argv or [])])
    try:
        code = int(args.func(args))
        sys.stdout.flush()  # here, so a reader that closed early ends as below
        return code
    except BrokenPipeError:  # `dvsapp info FILE | head`: the reader has all it wants
        _quiet_closed_stdout()
        return 0
    except DvsappError as e:
        print(f"dvsapp: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a bug, not bad input: still one line unless debugging
        if os.environ.get("DVSAPP_DEBUG"):
            raise
        print(
            f"dvsapp: internal error: {type(e).__name__}: {e} (set DVSAPP_DEBUG=1 for a traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
