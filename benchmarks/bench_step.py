"""Streaming step latency: dvsapp's ``model.step`` against the same network built from
SpikingJelly single-step modules (``benchmarks/sj_models.py``), batch 1, side by side; and
dvsapp's graph model of a NIR graph against sinabs and snnTorch stepping the same graph.

    .venv/bin/python benchmarks/bench_step.py                      # every arch, CPU (+ CUDA)
    .venv/bin/python benchmarks/bench_step.py --archs resnet_small vgg_small --threads 1,2
    .venv/bin/python benchmarks/bench_step.py --device cuda --sizes all
    .venv/bin/python benchmarks/bench_step.py --archs resnet_small vgg_small nir_nmnist nir_128

Rows, per arch and input size:

* CPU, per torch thread count: ``dvsapp eager`` (``model.step`` under ``inference_mode``, tdBN
  folded into the conv, BNTT's BN folded into a scale/shift) and ``spikingjelly eager``.
* CUDA (when available): ``dvsapp eager``, ``dvsapp cuda graph``
  (:class:`dvsapp.snn.cuda_graph.CudaGraphStep`, graphs captured before timing) and
  ``spikingjelly eager`` (SpikingJelly has no graphed stateful single-step path: its
  ``StaticCudaGraph`` is private and re-reads the state of capture time).
* NIR graphs (``benchmarks/graph_models.py``): ``nir_nmnist``, the N-MNIST CNN exported from
  sinabs (2x34x34), and ``nir_128``, a graph of the same shape at 2x128x128 written here with
  ``nir`` (random weights, seed 0) to a temporary ``.nir`` file. Rows: ``dvsapp graph``
  (:func:`dvsapp.snn.graph.importer.import_nir`'s ``GraphModel.step``; on CUDA also its CUDA
  graph), ``sinabs`` (``sinabs.from_nir(graph, batch_size=1)``, one ``[1, C, H, W]`` frame per
  call, its IAF layers keeping state) and ``snntorch`` (``import_from_nir``); a peer that
  cannot build or step the graph is a row "n/a" with its error. Frames: binary spikes of 5 %
  density. The graphs' IF neurons run free (no reset) like tdBN networks.

Each step is timed alone, from the call to its output being ready (a CUDA synchronise after
each step), over ``--steps`` steps after ``--warmup`` steps; the implementations alternate in
blocks of 25 steps so drift on a shared machine hits both. Frames are Poisson event counts
(mean 0.1 per pixel), weights random (dense kernels: the cost does not depend on them). BNTT
networks are reset every T steps (untimed), as a stream must; tdBN networks run free.
The input column gives each network's multiply-accumulates per step (convolutions and matmuls,
``torch.utils.flop_counter``), to compare networks of similar size. ``speed-up`` is the
peer's median over dvsapp's: SpikingJelly's for our architectures, sinabs' for the NIR
graphs.
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

import graph_models
from sj_models import reset as sj_reset
from sj_models import sj_equivalent

from dvsapp.snn import resnet, vgg
from dvsapp.snn.base import SpikingModel
from dvsapp.snn.cuda_graph import CudaGraphStep

ARCHS = ("resnet17", "resnet19", "resnet_small", "vgg9", "vgg11", "vgg_small", *graph_models.GRAPHS)
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
    *(Case(g, graph_models.LABELS[g], {}) for g in graph_models.GRAPHS),
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
    if case.arch in graph_models.GRAPHS:
        return bench_graph(case, device, args)
    model = build(case).to(device)
    cfg = model.config
    shape = (1, cfg.in_channels, cfg.input_size[1], cfg.input_size[0])
    gen = torch.Generator().manual_seed(0)
    frames = [torch.poisson(torch.full(shape, 0.1), generator=gen).to(device) for _ in range(16)]
    window = cfg.time_steps if model.family == "bntt" else None
    impls = [impl for impl in impls_for(model, device, args.sj_neuron) if runs(impl, frames[0])]
    run_interleaved(impls, frames, args.steps, args.warmup, window)
    size = f"{cfg.in_channels}x{cfg.input_size[1]}x{cfg.input_size[0]} {mmacs(model, frames[0])}"
    sj = [impl for impl in impls if impl.name.startswith("spikingjelly")]
    rows = []
    for impl in impls:
        med, p95 = summary(impl.times)
        speed = f"{summary(sj[0].times)[0] / med:.2f}x" if sj and impl not in sj else ""
        rows.append((case.arch, f"{size} {case.label}", impl.name, med, p95, speed))
    return rows


def bench_graph(case: Case, device: torch.device, args: argparse.Namespace) -> list[tuple]:
    """A NIR graph, or a network imported from its framework: dvsapp's graph model against
    the peers that read the same file (the framework stepping its own module)."""
    try:
        with graph_models.temp_dir() as tmp:
            model, peers = graph_models.load(case.arch, Path(tmp), device)
    except Exception as exc:  # no nir package, no N-MNIST file: the other rows still run
        print(f"  {case.arch} left out: {type(exc).__name__}: {exc}")
        return []
    cfg = model.config
    shape = (1, cfg.in_channels, cfg.input_size[1], cfg.input_size[0])
    frames = [f.to(device) for f in graph_models.spike_frames(shape, 16)]
    impls = [Timed("dvsapp graph", model.step, model.reset)]
    if device.type == "cuda":
        try:
            graphed = copy.deepcopy(model)
            runner = CudaGraphStep(graphed, 1, shape[1:], device)
            runner.prepare()
            impls.append(Timed("dvsapp cuda graph", runner.step, runner.reset))
        except Exception as exc:
            print(f"  dvsapp cuda graph left out: {type(exc).__name__}: {exc}")
    missing: list[tuple[str, str]] = []
    for name, step, reset, why in peers:
        if step is None or reset is None:
            missing.append((name, why))
            continue
        impl = Timed(name, step, reset)
        why = trial(impl, frames[0])
        if why:
            missing.append((name, graph_models.explain(name, why)))
        else:
            impls.append(impl)
    run_interleaved(impls, frames, args.steps, args.warmup, None)
    size = f"{cfg.in_channels}x{cfg.input_size[1]}x{cfg.input_size[0]} {mmacs(model, frames[0])}"
    peer = next((impl for impl in impls if not impl.name.startswith("dvsapp")), None)
    rows = []
    for impl in impls:
        med, p95 = summary(impl.times)
        speed = f"{summary(peer.times)[0] / med:.2f}x" if peer and impl is not peer else ""
        rows.append((case.arch, f"{size} {case.label}", impl.name, med, p95, speed))
    rows += [(case.arch, f"{size} {case.label}", name, None, None, why) for name, why in missing]
    return rows


def mmacs(model: SpikingModel, frame: torch.Tensor) -> str:
    """Multiply-accumulates of one step (convolutions and matmuls), for "of similar size"."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.reset()
        model.step(frame)
    model.reset()
    return f"{counter.get_total_flops() / 2e6:.1f}M MAC"


def trial(impl: Timed, frame: torch.Tensor) -> str:
    """One trial step: "" when it runs, else the error (the implementation is left out)."""
    try:
        with torch.inference_mode():
            impl.reset()
            impl.step(frame)
    except Exception as exc:  # a missing optional back end (e.g. SpikingJelly's kernels)
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return f"{type(exc).__name__}: {text}"[:160]
    return ""


def runs(impl: Timed, frame: torch.Tensor) -> bool:
    """One trial step; an implementation that cannot run here is reported and left out."""
    why = trial(impl, frame)
    if why:
        print(f"  {impl.name} left out: {why}")
    return not why


def header(args: argparse.Namespace, devices: list[torch.device]) -> str:
    lines = [
        f"torch {torch.__version__}, spikingjelly {version('spikingjelly')}, "
        f"sinabs {_version('sinabs')}, snntorch {_version('snntorch')}, nir {_version('nir')}, "
        f"python {platform.python_version()}, {os.cpu_count()} CPUs "
        f"({cpu_model() or platform.processor() or platform.machine()})",
        f"batch 1; {args.steps} timed steps after {args.warmup} warm-up steps; median and "
        f"p95 ms per step; SpikingJelly neurons: {args.sj_neuron}",
    ]
    if any(d.type == "cuda" for d in devices):
        lines.append(f"GPU: {torch.cuda.get_device_name()}")
    return "\n".join(lines)


def _version(dist: str) -> str:
    try:
        return version(dist)
    except Exception:
        return "absent"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def print_table(title: str, rows: list[tuple]) -> None:
    print(f"\n{title}")
    print(f"{'arch':<16} {'input':<40} {'implementation':<19} {'median':>8} {'p95':>8} "
          f"{'speed-up':>9}")  # fmt: skip
    last = None
    for arch, size, name, med, p95, speed in rows:
        shown = (arch, size) if (arch, size) != last else ("", "")
        last = (arch, size)
        if med is None:  # a peer that cannot step this graph: the reason
            print(f"{shown[0]:<16} {shown[1]:<40} {name:<19} {'n/a':>8} {'':>8}  {speed}")
            continue
        print(f"{shown[0]:<16} {shown[1]:<40} {name:<19} {med:8.3f} {p95:8.3f} {speed:>9}")


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
