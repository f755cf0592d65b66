"""The training loop for both SNN families (``dvsapp train``).

Surrogate-gradient BPTT through ``model.forward(x)``, ``x`` ``[T, B, C, H, W]`` (the loader
gives ``[B, T, ...]``); the loss is the cross-entropy of the mean over T of the per-step
outputs, the prediction the app shows. AdamW (default) or SGD with momentum; cosine LR decay
per iteration to 0; mixed precision (``torch.autocast`` + ``GradScaler``, float16) on CUDA
only; seeded (model init from ``seed``, shuffling and random crops from ``(seed, epoch)``).

A run folder (``--logdir``, default ``runs/<arch>-<time>``) holds the TensorBoard events,
``last.safetensors`` + ``last.optim.safetensors`` + ``train_state.json`` (rewritten after
every epoch: ``--resume DIR`` continues at the next epoch with the same result as an
uninterrupted run) and ``best.safetensors`` (best validation accuracy so far). ``--out``
receives the best model, with ``metrics`` (validation accuracy, accuracy per step, mean exit
step of a confidence exit) and ``extra`` (the training configuration and seed).

Under ``torchrun`` the model is wrapped in DistributedDataParallel (see
:mod:`dvsapp.train.distributed`); rank 0 alone validates, logs and saves.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, RandomSampler

from dvsapp.binning import BinningConfig
from dvsapp.errors import ConfigError
from dvsapp.snn.base import ModelConfig, SpikingModel
from dvsapp.train import resume as rs
from dvsapp.train.datasets import DataSpec, WindowDataset, make_datasets, parse_data_spec
from dvsapp.train.distributed import (
    DistInfo,
    all_reduce_sum,
    barrier,
    cleanup,
    device_for,
    env_world,
    init_distributed,
)

#: The confidence exit whose mean exit step goes into the checkpoint's metrics.
METRIC_EXIT_THRESHOLD = 0.9


@dataclass
class TrainConfig:
    """Everything a run needs (stored in ``train_state.json`` and the checkpoints' extra)."""

    arch: str = "resnet_small"
    data: str = "synth"
    time_steps: int | None = None  # None: the architecture's default T
    bin_ms: float = 50.0
    denoise_us: int | None = None  # tonic's Denoise(filter_time=...) before binning; None: off
    input_size: tuple[int, int] | None = None  # None: the architecture's default
    width: int | None = None  # None: the architecture's default
    norm: str | None = None  # "none" to drop the normalisation (where ModelConfig has it)
    neuron: dict[str, float] | None = None  # neuron parameter overrides (e.g. threshold)
    init: str | None = None  # start from this checkpoint's matching tensors (fine-tuning)
    epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adamw"
    momentum: float = 0.9
    grad_clip: float | None = None
    device: str = "auto"
    amp: bool = True
    workers: int = 2
    seed: int = 0
    logdir: str | None = None
    out: str | None = None
    n_per_class: int = 100
    val_per_class: int | None = None
    clip_s: float = 2.0
    #: ``--data synth``: the generator version (``dvsapp synth --generator``; 1 the first).
    synth_generator: int = 1
    cache_dir: str | None = None
    gen_workers: int | None = None  # synth generation processes (None: one per core)
    iir: int | None = None
    iir_step: int = 1
    iir_epochs: int | None = None
    histogram: bool = True
    progress: bool = True
    #: Stop after this many epochs of this invocation (a time-sliced job; --resume goes on).
    stop_after_epochs: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["input_size"] is not None:
            d["input_size"] = list(d["input_size"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        if kw.get("input_size") is not None:
            kw["input_size"] = tuple(kw["input_size"])
        return cls(**kw)


@dataclass
class TrainResult:
    run_dir: Path
    best_accuracy: float
    best_epoch: int
    history: list[dict[str, Any]] = field(default_factory=list)
    out: Path | None = None
    stages: list[dict[str, Any]] = field(default_factory=list)  # IIR


# -- construction ---------------------------------------------------------------------------
def _model_has_norm() -> bool:
    return "norm" in {f.name for f in dataclasses.fields(ModelConfig)}


def model_config(cfg: TrainConfig, spec: DataSpec) -> ModelConfig:
    """The architecture's default config with the run's overrides (classes from the data)."""
    from dvsapp.snn.registry import default_config

    over: dict[str, Any] = {"num_classes": len(spec.class_names), "in_channels": 2}
    if cfg.time_steps is not None:
        over["time_steps"] = int(cfg.time_steps)
    if cfg.input_size is not None:
        over["input_size"] = tuple(cfg.input_size)
    if cfg.width is not None:
        over["width"] = int(cfg.width)
    if cfg.norm is not None:
        if not _model_has_norm():
            raise ConfigError("--no-norm: this version of the models has no norm option")
        over["norm"] = cfg.norm
    if cfg.neuron:
        over["neuron"] = {str(k): float(v) for k, v in cfg.neuron.items()}
    return default_config(cfg.arch, **over)


def make_binning(cfg: TrainConfig, spec: DataSpec, mc: ModelConfig) -> BinningConfig:
    if not cfg.bin_ms > 0:
        raise ConfigError(f"--bin-ms must be > 0, got {cfg.bin_ms}")
    return BinningConfig(
        sensor_size=tuple(spec.sensor_size[:2]),
        time_window_us=max(1, round(cfg.bin_ms * 1000)),
        input_size=tuple(mc.input_size),
        denoise_us=cfg.denoise_us,
    )


def _check(cfg: TrainConfig) -> None:
    for name in ("epochs", "batch_size"):
        if int(getattr(cfg, name)) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be >= 1")
    if cfg.optimizer not in ("adamw", "sgd"):
        raise ConfigError(f"--optimizer must be adamw or sgd, got {cfg.optimizer!r}")
    if not cfg.lr > 0:
        raise ConfigError(f"--lr must be > 0, got {cfg.lr}")


def _init_from(model: SpikingModel, path: str, verbose: bool) -> None:
    """--init: the checkpoint's matching tensors; says which ones kept their fresh values."""
    from dvsapp.train.init import init_from_checkpoint

    kept = init_from_checkpoint(model, path)
    if verbose:
        note = f"; freshly initialised: {', '.join(kept)}" if kept else ""
        print(f"initialised from {path}{note}", file=sys.stderr)


def make_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def default_run_dir(cfg: TrainConfig) -> Path:
    return Path("runs") / f"{cfg.arch}-{time.strftime('%Y%m%d-%H%M%S')}"


# -- one epoch ------------------------------------------------------------------------------
def _bar(iterable: Any, enabled: bool, **kw: Any) -> Any:
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, leave=False, dynamic_ncols=True, **kw)


def amp_dtype(device: torch.device) -> torch.dtype:
    """Mixed precision's dtype: float16 (with a GradScaler) on CUDA; bfloat16 elsewhere,
    where only tests use it (it runs the same epoch code on a machine with no GPU)."""
    return torch.float16 if device.type == "cuda" else torch.bfloat16


def train_epoch(
    model: torch.nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any | None,
    device: torch.device,
    *,
    amp: bool,
    grad_clip: float | None,
    progress: bool,
    desc: str,
) -> tuple[float, int, int]:
    """One pass over ``loader``; returns (summed loss, correct, samples) of this process."""
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    bar = _bar(loader, progress, desc=desc, unit="batch")
    for x, y in bar:
        x = x.to(device, non_blocking=True).transpose(0, 1)  # [T, B, C, H, W]
        y = y.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype(device), enabled=amp):
            logits = model(x).mean(dim=0)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            if grad_clip:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            if grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            optimizer.step()
        scheduler.step()
        n = int(y.shape[0])
        loss_sum += float(loss.detach()) * n
        correct += int((logits.detach().argmax(1) == y).sum())
        seen += n
        if progress:
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.3f}")
    return loss_sum, correct, seen


def validate(
    model: SpikingModel, dataset: WindowDataset, device: torch.device, cfg: TrainConfig
) -> tuple[dict[str, Any], dict[str, float]]:
    """(metrics, firing rate per layer) of one validation pass."""
    from dvsapp.train.evaluate import collect_step_logits, exit_report
    from dvsapp.train.logging import FiringRateMonitor

    with FiringRateMonitor(model) as mon:
        logits, labels = collect_step_logits(
            model, dataset, device, cfg.batch_size, cfg.workers, amp=cfg.amp
        )
    rep = exit_report(model, logits, labels, thresholds=(METRIC_EXIT_THRESHOLD,), gammas=())
    ce = rep["confidence_exit"][0]
    metrics = {
        "val_accuracy": rep["accuracy"],
        "val_loss": rep["loss"],
        "val_accuracy_per_step": rep["accuracy_per_step"],
        "mean_exit_step": ce["mean_exit_step"],
        "exit_accuracy": ce["accuracy"],
        "exit_threshold": METRIC_EXIT_THRESHOLD,
        "val_samples": rep["samples"],
    }
    return metrics, mon.rates()


# -- one stage: a model trained for some epochs at one T ------------------------------------
@dataclass
class Stage:
    """What one training stage works on (IIR runs several)."""

    model: SpikingModel
    binning: BinningConfig
    spec: DataSpec
    run_dir: Path
    epochs: int
    start_epoch: int = 0
    best_accuracy: float = -1.0
    best_epoch: int = -1
    history: list[dict[str, Any]] = field(default_factory=list)
    optim_state: Path | None = None  # resume from this training state


def trained_on_text(spec: DataSpec, cfg: TrainConfig) -> str:
    """What a checkpoint says it was trained on: the ``--data`` spec, and for generated
    synthetic clips the generator version when it is not the first."""
    text = spec.text
    if spec.kind == "synth" and spec.root is None and cfg.synth_generator != 1:
        text += f" (generator {cfg.synth_generator})"
    return text


def _save(path: Path, model: SpikingModel, stage: Stage, cfg: TrainConfig, **meta: Any) -> None:
    from dvsapp.snn.checkpoint import save_checkpoint

    save_checkpoint(
        path,
        model,
        class_names=list(stage.spec.class_names),
        binning=stage.binning,
        sensor_size=(*stage.binning.sensor_size, 2),
        trained_on=meta.pop("trained_on", trained_on_text(stage.spec, cfg)),
        metrics=meta.pop("metrics", {}),
        extra={"train": cfg.to_dict(), "seed": cfg.seed, **meta},
    )


def _loader(ds: WindowDataset, cfg: TrainConfig, info: DistInfo, epoch: int, cuda: bool):
    ds.set_epoch(epoch)
    drop_last = len(ds) > cfg.batch_size * info.world_size  # BN needs > 1 sample per batch
    if info.enabled:
        from torch.utils.data.distributed import DistributedSampler

        sampler: Any = DistributedSampler(
            ds, info.world_size, info.rank, shuffle=True, seed=cfg.seed, drop_last=drop_last
        )
        sampler.set_epoch(epoch)
    else:
        g = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        sampler = RandomSampler(ds, generator=g)
    return DataLoader(
        ds,
        batch_size=cfg.batch_size,
        sampler=sampler,
        num_workers=cfg.workers,
        pin_memory=cuda,
        drop_last=drop_last,
    )


def run_stage(
    cfg: TrainConfig,
    stage: Stage,
    datasets: tuple[WindowDataset, WindowDataset],
    info: DistInfo,
    device: torch.device,
    tb: Any | None,
    tb_prefix: str = "",
    global_epoch0: int = 0,
) -> Stage:
    """Train ``stage.model`` from ``stage.start_epoch`` to ``stage.epochs``; rank 0 saves
    ``last``/``best`` in ``stage.run_dir`` after every epoch."""
    train_ds, val_ds = datasets
    model = stage.model.to(device)
    net: torch.nn.Module = model
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    amp = bool(cfg.amp and device.type == "cuda")
    optimizer = make_optimizer(cfg, model)
    probe = _loader(train_ds, cfg, info, 0, device.type == "cuda")
    steps_per_epoch = max(1, len(probe))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=stage.epochs * steps_per_epoch
    )
    scaler = torch.amp.GradScaler("cuda") if amp else None
    if stage.optim_state is not None:
        rs.load_training_state(stage.optim_state, optimizer, scheduler, scaler)
        scheduler.T_max = stage.epochs * steps_per_epoch  # --epochs may have changed
    if info.is_main:  # only rank 0 writes (the run folder is its own)
        stage.run_dir.mkdir(parents=True, exist_ok=True)
    cfg_run = dataclasses.replace(cfg, amp=amp)
    for epoch in range(stage.start_epoch, stage.epochs):
        t0 = time.perf_counter()
        loader = _loader(train_ds, cfg, info, epoch, device.type == "cuda")
        desc = f"{tb_prefix}epoch {epoch + 1}/{stage.epochs}"
        loss_sum, correct, seen = train_epoch(
            net, loader, optimizer, scheduler, scaler, device, amp=amp,
            grad_clip=cfg.grad_clip, progress=cfg.progress and info.is_main, desc=desc,
        )  # fmt: skip
        loss_sum, correct, seen = all_reduce_sum([loss_sum, correct, seen], info, device)
        train_s = time.perf_counter() - t0
        if info.is_main:
            metrics, rates = validate(model, val_ds, device, cfg_run)
            row = {
                "epoch": epoch,
                "train_loss": loss_sum / max(seen, 1),
                "train_accuracy": correct / max(seen, 1),
                "lr": scheduler.get_last_lr()[0],
                "epoch_s": time.perf_counter() - t0,
                "train_s": train_s,
                **metrics,
            }
            stage.history.append(row)
            if tb is not None:
                step = global_epoch0 + epoch
                tb.scalars(
                    {
                        f"{tb_prefix}loss/train": row["train_loss"],
                        f"{tb_prefix}loss/val": row["val_loss"],
                        f"{tb_prefix}accuracy/train": row["train_accuracy"],
                        f"{tb_prefix}accuracy/val": row["val_accuracy"],
                        f"{tb_prefix}accuracy/exit": row["exit_accuracy"],
                        f"{tb_prefix}exit/mean_step": row["mean_exit_step"],
                        f"{tb_prefix}lr": row["lr"],
                        f"{tb_prefix}time/epoch_s": row["epoch_s"],
                    },
                    step,
                )
                tb.firing_rates(rates, step, histogram=cfg.histogram)
                tb.flush()
            if metrics["val_accuracy"] > stage.best_accuracy:
                stage.best_accuracy, stage.best_epoch = metrics["val_accuracy"], epoch
                _save(stage.run_dir / rs.BEST_FILE, model, stage, cfg, metrics=metrics,
                      epoch=epoch)  # fmt: skip
            _save(stage.run_dir / rs.MODEL_FILE, model, stage, cfg, metrics=metrics, epoch=epoch)
            rs.save_training_state(stage.run_dir / rs.OPTIM_FILE, optimizer, scheduler, scaler)
            rs.write_json(
                stage.run_dir / rs.STATE_FILE,
                {
                    "epoch": epoch,
                    "epochs": stage.epochs,
                    "best_accuracy": stage.best_accuracy,
                    "best_epoch": stage.best_epoch,
                    "history": stage.history,
                    "config": cfg.to_dict(),
                },
            )
            if cfg.progress:
                say(
                    f"{desc}: loss {row['train_loss']:.4f}  train acc {row['train_accuracy']:.3f}"
                    f"  val acc {row['val_accuracy']:.3f}  exit step {row['mean_exit_step']:.2f}"
                    f"  ({row['epoch_s']:.1f} s)"
                )
        barrier(info)
        if cfg.stop_after_epochs and epoch + 1 - stage.start_epoch >= cfg.stop_after_epochs:
            break
    return stage


def say(line: str, file: TextIO | None = None) -> None:
    """Write ``line`` and its newline in one write and flush: under torchrun several ranks
    share the terminal, and ``print`` on an unbuffered stream (PYTHONUNBUFFERED) writes the
    text and the newline apart, so another rank's line can land between them."""
    out = sys.stdout if file is None else file
    out.write(line + "\n")
    out.flush()


# -- entry points ---------------------------------------------------------------------------
def synth_generator(cfg: TrainConfig, generator: Any = None) -> Any:
    """The synthetic clip generator: the one a caller injects, else ``cfg.synth_generator``'s
    version (None: the datasets' default, version 1). Each version has its own cache key."""
    if generator is not None or cfg.synth_generator == 1:
        return generator
    from dvsapp.synth.generate import check_generator, version_module

    return version_module(check_generator(cfg.synth_generator)).gesture_events


def _datasets(cfg: TrainConfig, spec: DataSpec, binning: BinningConfig, T: int, info: DistInfo,
              generator: Any) -> tuple[WindowDataset, WindowDataset]:  # fmt: skip
    """Rank 0 builds (and caches) first; the others follow and read the cache."""

    def build() -> tuple[WindowDataset, WindowDataset]:
        return make_datasets(
            spec, binning, T, n_per_class=cfg.n_per_class, val_per_class=cfg.val_per_class,
            clip_s=cfg.clip_s, cache_dir=cfg.cache_dir, seed=cfg.seed, generator=generator,
            workers=cfg.gen_workers,
        )  # fmt: skip

    if not info.is_main:
        barrier(info)
        return build()
    out = build()
    barrier(info)
    return out


def _final_out(stage: Stage, path: Path) -> Path:
    """Copy the stage's best model (metrics, trained_on and extra included) to ``path``."""
    import shutil

    src = stage.run_dir / rs.BEST_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.resolve() != src.resolve():
        tmp = path.with_name(f".{path.name}.tmp")
        shutil.copyfile(src, tmp)
        tmp.replace(path)
    return path


def train(cfg: TrainConfig, *, resume: str | Path | None = None, generator: Any = None
          ) -> TrainResult:  # fmt: skip
    """Train as ``cfg`` says (or continue the run in ``resume``); returns what happened.

    ``generator``: the synthetic clip generator for ``--data synth`` (tests inject a fake).
    """
    start_epoch, best, best_epoch, history = 0, -1.0, -1, []
    if resume is not None:
        state = rs.read_state(resume)
        saved = TrainConfig.from_dict(state["config"])
        if saved.iir:
            raise ConfigError("--resume: continuing an IIR run is not supported")
        if cfg.epochs != saved.epochs:
            saved.epochs = cfg.epochs  # the one setting a resume may change
        # where and how this invocation runs is the caller's; what it computes is the run's
        saved.logdir, saved.progress = str(resume), cfg.progress
        saved.device, saved.workers = cfg.device, cfg.workers
        saved.stop_after_epochs = cfg.stop_after_epochs
        saved.out = cfg.out or saved.out
        cfg = saved
        start_epoch, best = int(state["epoch"]) + 1, float(state["best_accuracy"])
        best_epoch, history = int(state["best_epoch"]), list(state["history"])
    _check(cfg)
    generator = synth_generator(cfg, generator)
    info = env_world()
    device = device_for(cfg.device, info)
    info = init_distributed(device)
    tb = None
    try:
        spec = parse_data_spec(cfg.data)
        if resume is None and not cfg.iir:  # a bad arch or override fails before any file
            from dvsapp.snn.registry import build_model

            mc = model_config(cfg, spec)
            binning = make_binning(cfg, spec, mc)
            torch.manual_seed(cfg.seed)
            model = build_model(mc)
            if cfg.init:
                _init_from(model, cfg.init, info.is_main)
        run_dir = Path(cfg.logdir) if cfg.logdir else default_run_dir(cfg)
        if info.is_main:
            from dvsapp.train.logging import TensorBoardLogger

            run_dir.mkdir(parents=True, exist_ok=True)
            tb = TensorBoardLogger(run_dir, purge_step=start_epoch if resume else None)
        if cfg.iir:
            from dvsapp.train.iir import run_iir

            return run_iir(cfg, spec, run_dir, info, device, tb, generator)
        if resume is not None:
            from dvsapp.snn.checkpoint import load_checkpoint

            ck = load_checkpoint(Path(resume) / rs.MODEL_FILE)
            model, binning = ck.model, ck.binning
            model.train()
        T = model.config.time_steps
        datasets = _datasets(cfg, spec, binning, T, info, generator)
        stage = Stage(
            model, binning, spec, run_dir, cfg.epochs, start_epoch, best, best_epoch, history,
            optim_state=Path(resume) / rs.OPTIM_FILE if resume is not None else None,
        )  # fmt: skip
        if start_epoch >= cfg.epochs:
            raise ConfigError(f"--resume: the run already finished {start_epoch} epochs")
        run_stage(cfg, stage, datasets, info, device, tb)
        out = None
        if info.is_main and cfg.out:
            out = _final_out(stage, Path(cfg.out))
        return TrainResult(run_dir, stage.best_accuracy, stage.best_epoch, stage.history, out)
    finally:
        if tb is not None:
            tb.close()
        cleanup(info)


def format_seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 120 else f"{math.floor(s / 60)} min {s % 60:.0f} s"
