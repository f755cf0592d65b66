"""Iterative initialisation and retraining (IIR, Tran & Hoang 2023, after "One Timestep is All
You Need"): train at T, initialise a network with fewer steps from it, retrain; repeat down to
the target T (``--iir TARGET_T``, steps of ``--iir-step``, default 1; the target is always a
stage).

* The window's DURATION stays fixed: stage t bins the same ``T0 * bin`` microseconds into t
  bins of ``round(T0 * bin / t)`` us each, so the network sees the same stretch of the
  gesture in fewer, wider bins. Each stage's checkpoint stores its own binning.
* tdBN ResNets carry their weights over as they are (tdBN's statistics do not depend on T).
* BNTT VGGs have one BN table per step: the t-step network takes the first t tables
  (``*.bntt.weight``, ``*.bntt.running_mean``, ``*.bntt.running_var``, each ``[T, C]``).
* Each stage starts from the previous stage's best (by validation accuracy) model with a
  fresh optimizer and LR schedule, trains ``--epochs`` (the first stage) or ``--iir-epochs``
  epochs, and is saved as ``stage_T{t}.safetensors`` in the run folder (its run files in
  ``stage_T{t}/``); ``iir.json`` sums up the stages. ``--out`` receives the last stage.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import torch

from dvsapp.errors import ConfigError
from dvsapp.snn.base import SpikingModel
from dvsapp.train import resume as rs
from dvsapp.train.datasets import DataSpec
from dvsapp.train.distributed import DistInfo, barrier


def stage_steps(t0: int, target: int, step: int = 1) -> list[int]:
    """The T of every stage: t0, t0 - step, ..., ending on target."""
    if not 1 <= target < t0:
        raise ConfigError(f"--iir: the target T must be in [1, {t0 - 1}] (T={t0}), got {target}")
    if step < 1:
        raise ConfigError(f"--iir-step must be >= 1, got {step}")
    out = list(range(t0, target, -step))
    return [*out, target]


def shrink_model(model: SpikingModel, time_steps: int) -> SpikingModel:
    """A copy of ``model`` built for ``time_steps`` steps: the same weights; BNTT keeps the
    first ``time_steps`` per-step BN tables."""
    from dvsapp.snn.registry import build_model
    from dvsapp.train.init import copy_matching

    if time_steps > model.config.time_steps:
        raise ConfigError(f"IIR shrinks T; {model.config.time_steps} -> {time_steps} grows it")
    new = build_model(dataclasses.replace(model.config, time_steps=time_steps))
    kept = copy_matching(new, model.state_dict())
    if kept:
        raise ConfigError(f"IIR: no matching tensor for {', '.join(kept)}")
    return new.to(next(model.parameters()).device)


def run_iir(
    cfg: Any,
    spec: DataSpec,
    run_dir: Path,
    info: DistInfo,
    device: torch.device,
    tb: Any | None,
    generator: Any = None,
) -> Any:
    """Train every IIR stage (see the module docstring); returns a ``TrainResult``."""
    from dvsapp.snn.checkpoint import load_checkpoint
    from dvsapp.snn.registry import build_model
    from dvsapp.train.loop import (
        Stage,
        TrainResult,
        _datasets,
        _init_from,
        make_binning,
        model_config,
        run_stage,
    )

    mc = model_config(cfg, spec)
    steps = stage_steps(mc.time_steps, int(cfg.iir), int(cfg.iir_step))
    binning0 = make_binning(cfg, spec, mc)
    assert binning0.time_window_us is not None
    window_us = mc.time_steps * binning0.time_window_us
    torch.manual_seed(cfg.seed)
    model: SpikingModel = build_model(mc)
    if cfg.init:
        _init_from(model, cfg.init, info.is_main)
    stages: list[dict[str, Any]] = []
    epoch0 = 0
    last: Stage | None = None
    for t in steps:
        if last is not None:
            best = load_checkpoint(last.run_dir / rs.BEST_FILE, device=device).model
            model = shrink_model(best, t)
            model.train()
        binning = dataclasses.replace(binning0, time_window_us=max(1, round(window_us / t)))
        datasets = _datasets(cfg, spec, binning, t, info, generator)
        epochs = cfg.epochs if last is None else (cfg.iir_epochs or cfg.epochs)
        stage = Stage(model, binning, spec, run_dir / f"stage_T{t}", epochs)
        run_stage(cfg, stage, datasets, info, device, tb, tb_prefix=f"T{t}/",
                  global_epoch0=epoch0)  # fmt: skip
        epoch0 += epochs
        if info.is_main:
            out = run_dir / f"stage_T{t}.safetensors"
            shutil.copyfile(stage.run_dir / rs.BEST_FILE, out)
            best_row = stage.history[stage.best_epoch] if stage.history else {}
            stages.append(
                {
                    "time_steps": t,
                    "bin_us": binning.time_window_us,
                    "checkpoint": str(out),
                    "best_epoch": stage.best_epoch,
                    "val_accuracy": stage.best_accuracy,
                    "mean_exit_step": best_row.get("mean_exit_step"),
                    "val_accuracy_per_step": best_row.get("val_accuracy_per_step"),
                }
            )
            rs.write_json(run_dir / "iir.json", {"window_us": window_us, "stages": stages})
            if cfg.progress:
                print(f"IIR stage T={t}: best val acc {stage.best_accuracy:.3f} -> {out}")
        barrier(info)
        last = stage
    assert last is not None
    out_path = None
    if info.is_main and cfg.out:
        from dvsapp.train.loop import _final_out

        out_path = _final_out(last, Path(cfg.out))
    return TrainResult(run_dir, last.best_accuracy, last.best_epoch, last.history, out_path,
                       stages)  # fmt: skip
