"""Early-exit evaluation of a model on a dataset (``dvsapp evaluate``, and each epoch's val pass).

For every sample the per-step outputs ``[T, K]`` are kept; the prediction after ``t`` steps is
the mean of the first ``t`` outputs (the app's prediction). Reported:

* accuracy vs exit step: the accuracy of that cumulative prediction at every t = 1..T;
* confidence exit (:class:`~dvsapp.snn.early_exit.ConfidenceExit`, top-class probability,
  ``consecutive`` steps) for a few thresholds: accuracy of the class chosen at the exit, mean
  exit step, and the fraction of windows that exited before T;
* BNTT only: the mean gamma per step and, for a few gamma thresholds, the temporal exit step
  (:func:`~dvsapp.snn.bntt.temporal_exit_step`) with the accuracy at that step.

:func:`write_report` prints the table and writes ``evaluation.json`` and ``evaluation.png``
(matplotlib with the Agg back end, imported lazily).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from dvsapp.errors import ConfigError
from dvsapp.snn.early_exit import ConfidenceExit, evaluate_exit

CONFIDENCE_THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95)
GAMMA_THRESHOLDS = (0.9, 0.7, 0.5, 0.3)


@torch.no_grad()
def collect_step_logits(
    model: torch.nn.Module,
    dataset: Dataset,
    device: torch.device | str = "cpu",
    batch_size: int = 32,
    workers: int = 0,
    amp: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """(per-step outputs ``[N, T, K]`` float32, labels ``[N]``) of the model in eval mode."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    outs, labels = [], []
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    try:
        for x, y in loader:
            x = x.to(device, non_blocking=True).transpose(0, 1)  # [T, B, C, H, W]
            with torch.autocast("cuda", enabled=amp and device.type == "cuda"):
                out = model(x)
            outs.append(out.float().transpose(0, 1).cpu().numpy())
            labels.append(np.asarray(y))
    finally:
        model.train(was_training)
    if not outs:
        raise ConfigError("evaluation: the dataset is empty")
    return np.concatenate(outs), np.concatenate(labels).astype(np.int64)


def cumulative_predictions(logits: np.ndarray) -> np.ndarray:
    """``[N, T]``: the class predicted after each step (argmax of the running mean)."""
    return np.argmax(np.cumsum(logits, axis=1), axis=2)


def accuracy_per_step(logits: np.ndarray, labels: np.ndarray) -> list[float]:
    """Accuracy of the cumulative prediction after t = 1..T steps."""
    preds = cumulative_predictions(logits)
    return [float(v) for v in (preds == labels[:, None]).mean(axis=0)]


def mean_loss(logits: np.ndarray, labels: np.ndarray) -> float:
    """Cross-entropy of the mean over T (the training loss), averaged over samples."""
    z = torch.from_numpy(logits.mean(axis=1)).double()
    return float(torch.nn.functional.cross_entropy(z, torch.from_numpy(labels)))


def confidence_exits(
    logits: np.ndarray,
    labels: np.ndarray,
    thresholds: Sequence[float] = CONFIDENCE_THRESHOLDS,
    consecutive: int = 1,
) -> list[dict[str, float]]:
    """Per threshold: accuracy at the exit, mean exit step and fraction exited early."""
    T = logits.shape[1]
    rows = []
    for th in thresholds:
        results = [evaluate_exit([ConfidenceExit(th, consecutive)], s) for s in logits]
        rows.append(
            {
                "threshold": float(th),
                "consecutive": consecutive,
                "accuracy": float(
                    np.mean([r.exit_pred == y for r, y in zip(results, labels, strict=True)])
                ),
                "mean_exit_step": float(np.mean([r.exit_step for r in results])),
                "exited_early": float(np.mean([r.fired and r.exit_step < T for r in results])),
            }
        )
    return rows


def temporal_exits(
    model: torch.nn.Module, acc_per_step: Sequence[float], gammas: Sequence[float]
) -> dict[str, Any] | None:
    """BNTT: mean gamma per step and the temporal exit step per gamma threshold."""
    if getattr(model, "family", "") != "bntt":
        return None
    from dvsapp.snn.bntt import mean_gamma_per_step, temporal_exit_step

    rows = []
    for g in gammas:
        step = temporal_exit_step(model, g)
        rows.append({"gamma": float(g), "exit_step": step, "accuracy": acc_per_step[step - 1]})
    return {"mean_gamma": [float(v) for v in mean_gamma_per_step(model)], "exits": rows}


def exit_report(
    model: torch.nn.Module,
    logits: np.ndarray,
    labels: np.ndarray,
    *,
    thresholds: Sequence[float] = CONFIDENCE_THRESHOLDS,
    consecutive: int = 1,
    gammas: Sequence[float] = GAMMA_THRESHOLDS,
) -> dict[str, Any]:
    """Everything :func:`write_report` shows, as a JSON-safe dict."""
    acc = accuracy_per_step(logits, labels)
    return {
        "samples": len(labels),
        "time_steps": int(logits.shape[1]),
        "accuracy": acc[-1],
        "loss": mean_loss(logits, labels),
        "accuracy_per_step": acc,
        "confidence_exit": confidence_exits(logits, labels, thresholds, consecutive),
        "temporal_exit": temporal_exits(model, acc, gammas),
    }


def format_table(report: dict[str, Any]) -> str:
    """The report as text: accuracy per step, then the exit policies."""
    lines = [f"{report['samples']} samples, T={report['time_steps']}", "", " step  accuracy"]
    lines += [f"{t:5d}  {a:8.4f}" for t, a in enumerate(report["accuracy_per_step"], start=1)]
    lines += ["", "confidence exit (top-class probability)", "  threshold  accuracy  mean exit"]
    lines += [
        f"  {r['threshold']:9.2f}  {r['accuracy']:8.4f}  {r['mean_exit_step']:9.2f}"
        for r in report["confidence_exit"]
    ]
    te = report.get("temporal_exit")
    if te:
        lines += ["", "BNTT temporal exit (mean gamma per step: "
                  + " ".join(f"{g:.3f}" for g in te["mean_gamma"]) + ")",
                  "  gamma  exit step  accuracy"]  # fmt: skip
        lines += [
            f"  {r['gamma']:5.2f}  {r['exit_step']:9d}  {r['accuracy']:8.4f}" for r in te["exits"]
        ]
    return "\n".join(lines)


def plot_report(report: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """Accuracy vs exit step (line), with the confidence exits as points."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=True)
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError(
            "the evaluation plot needs matplotlib: pip install 'dvsapp[train]'"
        ) from None
    acc = report["accuracy_per_step"]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(range(1, len(acc) + 1), acc, marker="o", label="cumulative prediction")
    ce = report["confidence_exit"]
    ax.scatter(
        [r["mean_exit_step"] for r in ce],
        [r["accuracy"] for r in ce],
        color="C1",
        zorder=3,
        label="confidence exit (mean step)",
    )
    for r in ce:
        ax.annotate(f"{r['threshold']:.2f}", (r["mean_exit_step"], r["accuracy"]), fontsize=7)
    te = report.get("temporal_exit")
    if te:
        for r in te["exits"]:
            ax.axvline(r["exit_step"], color="C2", alpha=0.3, linestyle="--")
    ax.set_xlabel("exit step t")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    ax.set_title(title or "accuracy vs exit step")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out


def write_report(
    report: dict[str, Any], out_dir: str | Path, title: str = "", stem: str = "evaluation"
) -> tuple[Path, Path]:
    """Write ``<stem>.json`` and ``<stem>.png`` into ``out_dir``; returns both paths."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    json_path = d / f"{stem}.json"
    json_path.write_text(json.dumps(report, indent=2, allow_nan=False, default=_nan_safe))
    return json_path, plot_report(report, d / f"{stem}.png", title)


def _nan_safe(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def trained_generator(trained_on: str) -> int:
    """The synthetic generator version a checkpoint's ``trained_on`` names ("synth
    (generator 2)", as ``dvsapp train`` writes it); 1 when it names none."""
    import re

    found = re.search(r"\(generator (\d+)\)", trained_on or "")
    return int(found.group(1)) if found else 1


def evaluate_checkpoint(
    checkpoint: str | Path,
    data: str,
    *,
    out_dir: str | Path | None = None,
    device: str = "auto",
    batch_size: int = 32,
    workers: int = 0,
    n_per_class: int = 20,
    consecutive: int = 1,
    generator: Any = None,
    cache_dir: Any = None,
    print_table: bool = True,
    synth_generator: int | None = None,
) -> dict[str, Any]:
    """``dvsapp evaluate``: the checkpoint on the data's evaluation split (``synth``: the test
    seeds; the others: the validation split of :func:`~dvsapp.train.datasets.make_datasets`),
    binned with the checkpoint's own binning and T. Generated synthetic clips come from
    ``generator`` when given, else from generator version ``synth_generator``, else from the
    version the checkpoint was trained on (:func:`trained_generator`)."""
    from dvsapp.snn.checkpoint import load_checkpoint
    from dvsapp.snn.stepper import resolve_device
    from dvsapp.train.datasets import SynthGestures, make_datasets, parse_data_spec

    ckpt = load_checkpoint(checkpoint, device=resolve_device(device))
    spec = parse_data_spec(data)
    T = ckpt.time_steps
    if spec.kind == "synth" and spec.root is None:
        if generator is None:
            from dvsapp.train.loop import TrainConfig
            from dvsapp.train.loop import synth_generator as version_of

            version = synth_generator or trained_generator(ckpt.trained_on)
            generator = version_of(TrainConfig(synth_generator=version))
        ds: Dataset = SynthGestures(
            "test", n_per_class, ckpt.binning, T, class_names=ckpt.class_names,
            sensor_size=spec.sensor_size, generator=generator, cache_dir=cache_dir,
        )  # fmt: skip
    else:
        ds = make_datasets(spec, ckpt.binning, T, generator=generator, cache_dir=cache_dir)[1]
    dev = next(ckpt.model.parameters()).device
    logits, labels = collect_step_logits(ckpt.model, ds, dev, batch_size, workers)
    report = exit_report(ckpt.model, logits, labels, consecutive=consecutive)
    report.update({"checkpoint": str(checkpoint), "data": spec.text, "arch": ckpt.arch})
    if print_table:
        print(format_table(report))
    ck = Path(checkpoint)
    out = Path(out_dir) if out_dir is not None else ck.with_name(f"{ck.stem}_eval")
    json_path, png_path = write_report(report, out, title=f"{ckpt.arch} on {spec.text}")
    report["files"] = [str(json_path), str(png_path)]
    if print_table:
        print(f"\nwrote {json_path} and {png_path}")
    return report
