"""``dvsapp synth``: write synthetic DVS128 Gesture-like recordings with their label CSVs, or
(``--critic``) let a network trained on the real recordings judge synthetic clips."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from dvsapp.errors import ConfigError
from dvsapp.events.types import DVS_GESTURE_CLASSES

FORMAT_CHOICES = {"aedat31": ("aedat31",), "aedat4": ("aedat4",), "both": ("aedat31", "aedat4")}
MAX_FILES = 10_000


def recording_name(seed: int) -> str:
    """The file stem of the recording made from ``seed``."""
    return f"synth_seed{seed:04d}"


def add_parser(subparsers: Any) -> None:
    """Register the ``synth`` subcommand on an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "synth",
        help="write synthetic DVS128 Gesture-like recordings (AEDAT 3.1/4.0 + label CSV)",
        description=(
            "Render an articulated figure doing the 11 DVS128 Gesture classes back to back and "
            "turn it into events with the DVS pixel model. File i uses seed S+i and is named "
            "synth_seed<S+i>.aedat / .aedat4 with synth_seed<S+i>_labels.csv beside it. "
            "With --critic, write nothing: generate N clips per class and print how the "
            "network trained on the real DVS128 Gesture names them (per-class accuracy and "
            "confusion matrix)."
        ),
    )
    p.add_argument(
        "out_dir", metavar="OUT_DIR", type=Path, nargs="?", help="folder to write (created)"
    )
    p.add_argument("--files", type=int, default=1, metavar="N", help="recordings to write (1)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the first file (0)")
    p.add_argument(
        "--generator",
        type=int,
        default=None,
        metavar="V",
        help="generator version: 1 (default; the same bytes as before), 2 (a whole body in "
        "a realistic scene), 3 (2 with a dark shirt and bright skin) or 4 (3 with the left "
        "arm's clockwise circles beside the body: what the shipped models train on)",
    )
    p.add_argument("--gesture-s", type=float, default=2.0, metavar="SEC", help="per gesture (2)")
    p.add_argument("--gap-s", type=float, default=0.3, metavar="SEC", help="between gestures")
    p.add_argument("--format", choices=sorted(FORMAT_CHOICES), default="both")
    p.add_argument(
        "--classes",
        default=None,
        metavar="LIST",
        help="comma-separated class names or 0-based indices, in recording order "
        "(default: all 11 in a seed-shuffled order)",
    )
    c = p.add_argument_group("critic (--critic)")
    c.add_argument(
        "--critic",
        action="store_true",
        help="judge synthetic clips with the network trained on real DVS128 Gesture",
    )
    c.add_argument("--n-per-class", type=int, default=10, metavar="N", help="clips per class (10)")
    c.add_argument(
        "--critic-seed",
        type=int,
        default=1_000_000,
        metavar="S",
        help="clip k of every class has seed S+k (1000000: above the training seeds)",
    )
    c.add_argument("--clip-s", type=float, default=None, metavar="SEC", help="clip length (6)")
    c.add_argument(
        "--model",
        type=Path,
        default=None,
        metavar="PATH",
        help="the critic (models/snntorch_dvs_gesture.safetensors)",
    )
    c.add_argument(
        "--agree",
        type=Path,
        default=None,
        metavar="RECORDING",
        help="instead of synthetic clips: name every label segment of RECORDING by the critic "
        "and by each --against model, and print how often they agree",
    )
    c.add_argument(
        "--against",
        type=Path,
        action="append",
        default=None,
        metavar="CKPT",
        help="a model to set against the critic with --agree (repeatable; default the shipped "
        "resnet_small_synth and vgg_small_synth)",
    )
    c.add_argument("--json", action="store_true", help="print the report as one JSON object")
    c.add_argument("--threads", type=int, default=1, metavar="N", help="torch CPU threads (1)")
    p.set_defaults(func=run)


def parse_classes(text: str | None) -> list[int] | None:
    """``"hand_clapping,3, air_drums"`` -> ``[0, 3, 8]``; None stays None."""
    if text is None:
        return None
    out = []
    for item in (s.strip() for s in text.split(",")):
        if item.isdigit():
            index = int(item)
            if index >= len(DVS_GESTURE_CLASSES):
                raise ConfigError(f"--classes: index {index} is outside 0..10")
            out.append(index)
        elif item in DVS_GESTURE_CLASSES:
            out.append(DVS_GESTURE_CLASSES.index(item))
        else:
            raise ConfigError(
                f"--classes: {item!r} is not a class index 0..10 nor one of "
                f"{', '.join(DVS_GESTURE_CLASSES)}"
            )
    return out


def run_critic(args: argparse.Namespace) -> int:
    """``--critic``: print the critic's per-class accuracy and confusion matrix (or JSON)."""
    import json

    from tqdm import tqdm

    from dvsapp.synth import critic

    if args.out_dir is not None:
        raise ConfigError("--critic writes no files: give no OUT_DIR")
    if args.threads < 1:
        raise ConfigError(f"--threads must be >= 1, not {args.threads}")
    classes = parse_classes(args.classes)
    model = critic.CRITIC_MODEL if args.model is None else args.model
    critic.load_critic(model)  # a missing model fails before any clip is made
    if args.agree is not None:
        return run_agreement(args, model)
    if args.against:
        raise ConfigError("--against needs --agree RECORDING")
    with tqdm(unit="clip", desc="critic", file=sys.stderr, disable=None, leave=False) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        report = critic.run_critic(
            args.n_per_class,
            seed=args.critic_seed,
            clip_s=critic.DEFAULT_CLIP_S if args.clip_s is None else args.clip_s,
            generator=1 if args.generator is None else args.generator,
            model=model,
            classes=classes,
            threads=args.threads,
            progress=progress,
        )
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print("\n".join(report.table()))
    return 0


def run_agreement(args: argparse.Namespace, model: Path) -> int:
    """``--critic --agree REC``: the critic and our models on REC's label segments."""
    import json

    from dvsapp.synth.agreement import agreement
    from dvsapp.synth.critic import CRITIC_MODEL

    shipped = CRITIC_MODEL.parent
    against = args.against or [
        shipped / "resnet_small_synth.safetensors",
        shipped / "vgg_small_synth.safetensors",
    ]
    for path in [args.agree, *against]:
        if not Path(path).is_file():
            raise ConfigError(f"{path}: not found")
    report = agreement(args.agree, list(against), critic=model, threads=args.threads)
    if args.json:
        print(json.dumps(report.to_dict()))
    else:
        print("\n".join(report.table()))
    return 0


def run(args: argparse.Namespace) -> int:
    """Write the recordings; print each path. Bad arguments raise ConfigError (one line)."""
    from dvsapp.synth.generate import DEFAULT_GENERATOR, check_generator

    generator = check_generator(DEFAULT_GENERATOR if args.generator is None else args.generator)
    if args.critic:
        return run_critic(args)
    if args.out_dir is None:
        raise ConfigError("OUT_DIR is required (the folder to write), unless --critic")
    seed = args.seed
    if not 1 <= args.files <= MAX_FILES:
        raise ConfigError(f"--files must be in 1..{MAX_FILES}, not {args.files}")
    if seed < 0:
        raise ConfigError(f"--seed must be >= 0, not {seed}")
    if args.format not in FORMAT_CHOICES:
        raise ConfigError(f"--format must be one of {', '.join(FORMAT_CHOICES)}")
    classes = parse_classes(args.classes)
    out_dir = Path(args.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir}: exists and is not a folder")
    kwargs: dict[str, Any] = {"gesture_s": args.gesture_s, "gap_s": args.gap_s}
    if generator != DEFAULT_GENERATOR:
        kwargs["generator"] = generator
    if classes is not None:
        kwargs["classes"] = classes
    written = []
    seeds = range(seed, seed + args.files)
    from tqdm import tqdm

    from dvsapp.synth.generate import write_recording

    for seed in tqdm(seeds, unit="file", desc="synth", file=sys.stderr, disable=None):
        paths = write_recording(
            out_dir, recording_name(seed), seed, formats=FORMAT_CHOICES[args.format], **kwargs
        )
        for path in paths:
            tqdm.write(str(path), file=sys.stdout)
        written += paths
    total = sum(p.stat().st_size for p in written)
    print(f"wrote {len(written)} files ({total / 1e6:.1f} MB) for {args.files} recording(s)")
    return 0
