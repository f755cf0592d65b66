"""Streaming step latency: dvsapp's ``model.step`` against the same network built from
SpikingJelly single-step modules (``benchmarks/sj_models.py``), batch 1, side by side.

    .venv/bin/python benchmarks/bench_step.py                      # every arch, CPU (+ CUDA)
    .venv/bin/python benchmarks/bench_step.py --archs resnet_small vgg_small --threads 1,2
    .venv/bin/python benchmarks/bench_step.py --device cuda --sizes all

Rows, per arch and input size:

* CPU, per torch thread count: ``dvsapp eager`` (``model.step`` under ``inference_mode``, tdBN
  folded into the conv, BNTT's BN folded into a scale/shift) and ``spikingjelly eager``.
* CUDA (when available): ``dvsapp eager``, ``dvsapp cuda graph``
  (:class:`dvsapp.snn.cuda_graph.CudaGraphStep`, graphs captured before timing) and
  ``spikingjelly eager`` (SpikingJelly has no graphed stateful single-step path: its
  ``StaticCudaGraph`` is private and re-reads the state of capture time).

Each step is timed alone, from the call to its output being ready (a CUDA synchronise after
each step), over ``--steps`` steps after ``--warmup`` steps; the implementations alternate in
blocks of 25 steps so drift on a shared machine hits both. Frames are Poisson event counts
(mean 0.1 per pixel), weights random (dense kernels: the cost does not depend on them). BNTT
networks are reset every T steps (untimed), as a stream must; tdBN networks run free.
``speed-up`` is SpikingJelly's median over dvsapp's.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sj_models import reset as sj_reset
from sj_models import sj_equivalent

from dvsapp.snn import resnet, vgg
from dvsapp.snn.base import SpikingModel
from dvsapp.snn.cuda_graph import CudaGraphStep

ARCHS = ("resnet17", "resnet19", "resnet_small", "vgg9", "vgg11", "vgg_small")
SMALL = ("resnet_small", "vgg_small")
BLOCK = 25


@dataclass(frozen=True)
class Case:
    arch: str
    label: str
    overrides: dict[str, Any]


#: Builder defaults first; ``--sizes all`` adds the other documented inputs (CIFAR-10).
CASES: tuple[Case, ...] = (
    Case("resnet17", "DVS-Gesture", {}),
    Case("resnet19", "DVS-CIFAR10", {}),
    Case("resnet_small", "default", {}),
    Case("vgg9", "CIFAR10-DVS", {}),
    Case("vgg11", "CIFAR10-DVS", {}),
    Case("vgg_small", "default", {}),
)
EXTRA_CASES: tuple[Case, ...] = (
    Case("resnet19", "CIFAR-10", {"in_channels": 3, "input_size": (32, 32), "time_steps": 6}),
    Case("vgg9", "CIFAR-10", {"preset": "cifar10"}),
    Case("vgg11", "CIFAR-10", {"preset": "cifar10"}),
)


def build(case: Case) -> SpikingModel:
    builder = getattr(resnet if case.arch.startswith("resnet") else vgg, case.arch)
    return builder(**case.overrides).eval()


class Timed:
    """One implementation: a step, a reset, and the per-step times collected."""

    def __init__(self, name: str, step: Callable[[torch.Tensor], Any], reset: Callable[[], None]):
        self.name, self.step, self.reset = name, step, reset
        self.times: list[float] = []


def run_interleaved(
    impls: list[Timed], frames: list[torch.Tensor], steps: int, warmup: int, window: int | None
) -> None:
    """Warm each up, then time ``steps`` steps each, alternating in blocks of ``BLOCK``."""
    cuda = frames[0].is_cuda
    counters = [0] * len(impls)

    def one(i: int, record: bool) -> None:
        impl, k = impls[i], counters[i]
        if window is not None and k % window == 0:
            impl.reset()
        if cuda:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        impl.step(frames[k % len(frames)])
        if cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        counters[i] = k + 1
        if record:
            impl.times.append(dt)

    with torch.inference_mode():
        for i in range(len(impls)):
            impls[i].reset()
            for _ in range(warmup):
                one(i, False)
        done = 0
        while done < steps:
            n = min(BLOCK, steps - done)
            for i in range(len(impls)):
                for _ in range(n):
                    one(i, True)
            done += n


def summary(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1e3, p95 * 1e3


def impls_for(model: SpikingModel, device: torch.device, sj_neuron: str) -> list[Timed]:
    net = sj_equivalent(model, sj_neuron)
    rows = [Timed("dvsapp eager", model.step, model.reset)]
    if device.type == "cuda":
        cfg = model.config
        graphed = copy.deepcopy(model)  # its own state: the rows alternate in blocks
        runner = CudaGraphStep(graphed, 1, (cfg.in_channels, *cfg.input_size[::-1]), device)
        runner.prepare()
        rows.append(Timed("dvsapp cuda graph", runner.step, runner.reset))
    rows.append(Timed("spikingjelly eager", net, lambda: sj_reset(net)))
    return rows


def bench_case(case: Case, device: torch.device, args: argparse.Namespace) -> list[tuple]:
    model = build(case).to(device)
    cfg = model.config
    shape = (1, cfg.in_channels, cfg.input_size[1], cfg.input_size[0])
    gen = torch.Generator().manual_seed(0)
    frames = [torch.poisson(torch.full(shape, 0.1), generator=gen).to(device) for _ in range(16)]
    window = cfg.time_steps if model.family == "bntt" else None
    impls = [impl for impl in impls_for(model, device, args.sj_neuron) if runs(impl, frames[0])]
    run_interleaved(impls, frames, args.steps, args.warmup, window)
    size = f"{cfg.in_channels}x{cfg.input_size[1]}x{cfg.input_size[0]}"
    sj = [impl for impl in impls if impl.name.startswith("spikingjelly")]
    rows = []
    for impl in impls:
        med, p95 = summary(impl.times)
        speed = f"{summary(sj[0].times)[0] / med:.2f}x" if sj and impl not in sj else ""
        rows.append((case.arch, f"{size} {case.label}", impl.name, med, p95, speed))
    return rows


def runs(impl: Timed, frame: torch.Tensor) -> bool:
    """One trial step; an implementation that cannot run here is reported and left out."""
    try:
        with torch.inference_mode():
            impl.reset()
            impl.step(frame)
    except Exception as exc:  # a missing optional back end (e.g. SpikingJelly's kernels)
        print(f"  {impl.name} left out: {type(exc).__name__}: {exc}")
        return False
    return True


def header(args: argparse.Namespace, devices: list[torch.device]) -> str:
    lines = [
        f"torch {torch.__version__}, spikingjelly {version('spikingjelly')}, "
        f"python {platform.python_version()}, {os.cpu_count()} CPUs "
        f"({platform.processor() or platform.machine()})",
        f"batch 1; {args.steps} timed steps after {args.warmup} warm-up steps; median and "
        f"p95 ms per step; SpikingJelly neurons: {args.sj_neuron}",
    ]
    if any(d.type == "cuda" for d in devices):
        lines.append(f"GPU: {torch.cuda.get_device_name()}")
    return "\n".join(lines)


def print_table(title: str, rows: list[tuple]) -> None:
    print(f"\n{title}")
    print(f"{'arch':<13} {'input':<22} {'implementation':<19} {'median':>8} {'p95':>8} "
          f"{'speed-up':>9}")  # fmt: skip
    last = None
    for arch, size, name, med, p95, speed in rows:
        shown = (arch, size) if (arch, size) != last else ("", "")
        last = (arch, size)
        print(f"{shown[0]:<13} {shown[1]:<22} {name:<19} {med:8.3f} {p95:8.3f} {speed:>9}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS)
    p.add_argument("--steps", type=int, default=200, help="timed steps per row")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--threads", default="1,2", help="CPU torch thread counts, comma-separated")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda", "all"),
                   help="auto: CPU, plus CUDA when available")  # fmt: skip
    p.add_argument("--sizes", default="default", choices=("default", "all"))
    p.add_argument("--sj-neuron", default="lif", choices=("lif", "exact"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    cuda_ok = torch.cuda.is_available()
    if args.device == "cuda" and not cuda_ok:
        raise SystemExit("--device cuda: CUDA is not available to this torch")
    devices = [torch.device("cpu")] if args.device != "cuda" else []
    if args.device in ("cuda", "all") or (args.device == "auto" and cuda_ok):
        devices.append(torch.device("cuda"))
    cases = [c for c in CASES + (EXTRA_CASES if args.sizes == "all" else ())
             if c.arch in args.archs]  # fmt: skip
    print(header(args, devices))
    threads = [int(t) for t in args.threads.split(",")]
    fastest: dict[str, tuple[float, int]] = {}
    for device in devices:
        for n in threads if device.type == "cpu" else [torch.get_num_threads()]:
            torch.set_num_threads(n)
            rows = []
            for case in cases:
                case_rows = bench_case(case, device, args)
                rows += case_rows
                if device.type == "cpu" and case.arch in SMALL and not case.overrides:
                    med = case_rows[0][3]  # dvsapp eager
                    if case.arch not in fastest or med < fastest[case.arch][0]:
                        fastest[case.arch] = (med, n)
            title = f"{device.type.upper()}, torch threads: {torch.get_num_threads()}"
            print_table(title, rows)
            sys.stdout.flush()
    for arch, (med, n) in fastest.items():
        print(f"fastest on this CPU for {arch}: {n} thread(s), dvsapp median {med:.3f} ms")


if __name__ == "__main__":
    main()
