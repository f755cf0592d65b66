"""``dvsapp train`` and ``dvsapp evaluate`` (registered by :func:`add_parsers`)."""

from __future__ import annotations

import argparse
from typing import Any

from dvsapp.argtypes import size
from dvsapp.errors import ConfigError

#: ``--synth-generator`` versions (:data:`dvsapp.synth.generate.GENERATORS`, without importing
#: the generator at start).
GENERATOR_CHOICES = (1, 2, 3, 4)


def _neuron(text: str) -> tuple[str, float]:
    key, sep, value = text.partition("=")
    try:
        if not sep or not key:
            raise ValueError
        return key.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected KEY=NUMBER, got {text!r}") from None


def _cmd_train(args: argparse.Namespace) -> int:
    from dvsapp.train.loop import TrainConfig, format_seconds, train

    cfg = TrainConfig(
        arch=args.arch,
        data=args.data,
        time_steps=args.time_steps,
        bin_ms=args.bin_ms,
        denoise_us=args.denoise_us,
        input_size=args.input_size,
        width=args.width,
        norm="none" if args.no_norm else None,
        neuron=dict(args.neuron) if args.neuron else None,
        init=args.init,
        epochs=args.epochs if args.epochs is not None else 20,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        optimizer=args.optimizer,
        device=args.device,
        amp=args.amp,
        workers=args.workers,
        seed=args.seed,
        logdir=args.logdir,
        out=args.out,
        n_per_class=args.n_per_class,
        clip_s=args.clip_s,
        synth_generator=args.synth_generator,
        cache_dir=args.cache_dir,
        iir=args.iir,
        iir_step=args.iir_step,
        iir_epochs=args.iir_epochs,
    )
    if args.resume is not None and args.epochs is None:
        from dvsapp.train.resume import read_state

        cfg.epochs = int(read_state(args.resume)["config"]["epochs"])
    import time

    t0 = time.perf_counter()
    result = train(cfg, resume=args.resume)
    if result.best_epoch >= 0:
        print(
            f"best val accuracy {result.best_accuracy:.4f} (epoch {result.best_epoch + 1}); "
            f"run folder {result.run_dir}"
            + (f"; wrote {result.out}" if result.out else "")
            + f" ({format_seconds(time.perf_counter() - t0)})"
        )
    from dvsapp.train.distributed import end_process, env_world

    end_process(env_world())  # under torchrun: past torch's DDP teardown abort
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from dvsapp.train.evaluate import evaluate_checkpoint

    if args.batch_size < 1:
        raise ConfigError("--batch-size must be >= 1")
    evaluate_checkpoint(
        args.checkpoint,
        args.data,
        out_dir=args.out_dir,
        device=args.device,
        batch_size=args.batch_size,
        workers=args.workers,
        n_per_class=args.n_per_class,
        consecutive=args.exit_consecutive,
        synth_generator=args.synth_generator,
    )
    return 0


DATA_HELP = (
    "synth | synth:DIR | dvsgesture:ROOT | cifar10dvs:ROOT | tonic-dvsgesture:ROOT | "
    "tonic-cifar10dvs:ROOT"
)


def add_parsers(subparsers: Any) -> None:
    """Register ``train`` and ``evaluate`` on the ``dvsapp`` subparsers."""
    tr = subparsers.add_parser("train", help="train a spiking network (tdBN ResNet or BNTT VGG)")
    # No argparse choices: listing them would import torch on every `dvsapp` call; an unknown
    # arch fails in the registry with a one-line error naming the known ones.
    tr.add_argument(
        "--arch",
        default="resnet_small",
        help="resnet17 | resnet19 | resnet_small | vgg9 | vgg11 | vgg_small (default resnet_small)",
    )
    tr.add_argument("--data", default="synth", metavar="SPEC", help=DATA_HELP)
    tr.add_argument("--n-per-class", type=int, default=100, help="synth: clips per class")
    tr.add_argument("--clip-s", type=float, default=2.0, help="synth: clip length (s)")
    tr.add_argument(
        "--synth-generator",
        type=int,
        default=1,
        choices=GENERATOR_CHOICES,
        help="synth: the generator version (dvsapp synth --generator; default 1; the shipped "
        "models train on 4)",
    )
    tr.add_argument("--cache-dir", default=None, help="synth cache (~/.cache/dvsapp/synth)")
    tr.add_argument("--time-steps", type=int, default=None, metavar="T", help="default: arch's")
    tr.add_argument("--bin-ms", type=float, default=50.0, help="bin length (default 50 ms)")
    tr.add_argument("--input-size", type=size, default=None, metavar="WxH")
    tr.add_argument(
        "--denoise-us",
        type=int,
        default=None,
        metavar="US",
        help="drop events with no event at a neighbour pixel in the US before (tonic's "
        "Denoise(filter_time=US)); stored in the model's binning (default: off)",
    )
    tr.add_argument("--width", type=int, default=None, help="channel width (default: arch's)")
    tr.add_argument(
        "--neuron",
        type=_neuron,
        action="append",
        default=None,
        metavar="KEY=VALUE",
        help="neuron parameter, e.g. threshold=1.0 (tdBN: tau_decay, threshold, "
        "surrogate_width; BNTT: leak, threshold, surrogate_factor); repeatable",
    )
    tr.add_argument(
        "--init",
        default=None,
        metavar="CKPT",
        help="start from this checkpoint's weights (same arch; fine-tuning)",
    )
    tr.add_argument("--no-norm", action="store_true", help="no tdBN/BNTT (plain convolutions)")
    tr.add_argument("--epochs", type=int, default=None, help="default 20 (resume: the run's)")
    tr.add_argument("--batch-size", type=int, default=16)
    tr.add_argument("--lr", type=float, default=1e-3)
    tr.add_argument("--weight-decay", type=float, default=1e-4)
    tr.add_argument("--optimizer", choices=("adamw", "sgd"), default="adamw")
    tr.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    tr.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True, help="CUDA only")
    tr.add_argument("--workers", type=int, default=2, help="data loader processes")
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--logdir", default=None, metavar="DIR", help="default runs/ARCH-TIME")
    tr.add_argument("--out", default=None, metavar="FILE.safetensors", help="the best model")
    tr.add_argument("--resume", default=None, metavar="DIR", help="continue this run folder")
    tr.add_argument("--iir", type=int, default=None, metavar="TARGET_T", help="IIR down to T")
    tr.add_argument("--iir-step", type=int, default=1, help="IIR: steps removed per stage")
    tr.add_argument("--iir-epochs", type=int, default=None, help="IIR: epochs per later stage")
    tr.set_defaults(func=_cmd_train)

    ev = subparsers.add_parser("evaluate", help="accuracy vs exit step of a checkpoint")
    ev.add_argument("checkpoint", metavar="CKPT")
    ev.add_argument("--data", required=True, metavar="SPEC", help=DATA_HELP)
    ev.add_argument("--out-dir", default=None, help="default: CKPT_eval/ beside the checkpoint")
    ev.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ev.add_argument("--batch-size", type=int, default=32)
    ev.add_argument("--workers", type=int, default=0)
    ev.add_argument("--n-per-class", type=int, default=20, help="synth: test clips per class")
    ev.add_argument("--exit-consecutive", type=int, default=1, help="confidence exit: K steps")
    ev.add_argument(
        "--synth-generator",
        type=int,
        default=None,
        choices=GENERATOR_CHOICES,
        help="synth: the generator version (default: the one the checkpoint was trained on)",
    )
    ev.set_defaults(func=_cmd_evaluate)
