"""Per-step cost of the in-depth probes (:class:`dvsapp.snn.analysis.Analyzer`) on
``resnet_small`` (2x64x64, the shipped ``models/resnet_small_synth.safetensors``), CPU, one
torch thread, batch 1.

    .venv/bin/python benchmarks/bench_probes.py [--steps 1500] [--threads 1]

Rows: ``off`` (``model.step`` with the raster taps' probe on every layer: spikes and rate,
as the pipeline runs it), ``on`` (the same plus ``Analyzer.install(rates=True)`` and
``collect`` after each step, as a session on a CPU runs them: the layers' rates then come
from the probes' channel counts, and the layers skip their own rate reductions),
``on, vm_every=N`` (the Vm histograms every N-th step only),
``on, vm_layers=L`` (the Vm statistics of layer ``L`` only: what a view showing one
layer's histogram needs), ``on, vm_layers=[]`` (no Vm statistics: the rest's cost),
``on, torch path`` (``compiled=False``: the torch/numpy path other devices take, which was the
CPU's before the compiled kernels of ``dvsapp/snn/analysis/cpu_kernels.py``) and
``off again`` (after ``Analyzer.remove``: must equal ``off``). Each step is timed alone
(median over ``--steps`` steps after a warm-up); the configurations alternate in blocks of
50 steps so a shared machine's drift hits all of them. Wall time and the thread's CPU time
(``time.thread_time``: what a loaded machine's waiting does not inflate) are both medians;
``extra`` is the difference from ``off``. A median hides ``vm_every``'s one step in N, so
the "CPU mean extra" column is the extra CPU time's mean (outliers above the 99th
percentile cut). The last two columns split the wall time: the model step (slower with the
probes on: their taps, and a step run right after other work finds colder caches) and
``collect`` alone. ``--breakdown`` then times ``collect`` of the "on" analyzer with the
compiled kernels replaced by no-ops: what is left is its Python. ``--first-use`` times, each
in a fresh process, importing numba, loading the kernels from numba's cache, and a
session's first ``collect`` cold and after the app's background preload
(``dvsapp.snn.analysis.vm.load_kernels``). ``--session`` times the probes inside a
``Session`` over the shipped recording instead (:func:`in_session`).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import torch

from dvsapp.snn.analysis import Analyzer
from dvsapp.snn.base import ProbeSpec
from dvsapp.snn.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
BLOCK = 50


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--vm-every", type=int, default=8)
    ap.add_argument("--vm-layer", default="lif1", help="the vm_layers row's layer")
    ap.add_argument(
        "--breakdown", action="store_true", help="also time collect's Python without its kernels"
    )
    ap.add_argument("--first-use", action="store_true", help="only the first-use costs")
    ap.add_argument("--session", action="store_true", help="only the probes' cost inside a Session")
    args = ap.parse_args()
    if args.first_use:
        first_use()
        return
    if args.session:
        torch.set_num_threads(args.threads)
        in_session()
        return
    torch.set_num_threads(args.threads)
    model = load_checkpoint(ROOT / "models" / "resnet_small_synth.safetensors").model.eval()
    g = torch.Generator().manual_seed(0)
    frames = torch.poisson(torch.full((256, 1, 2, 64, 64), 0.2), generator=g)

    def tap() -> None:  # what ProbeTap.install sets (no Vm selection)
        for layer in model.spiking_layers().values():
            layer.probe = ProbeSpec(spikes=True, vm=False)

    tap()
    with torch.inference_mode():
        model.step(frames[0])
        shapes = {
            n: tuple(lay.record.spikes.shape[1:]) for n, lay in model.spiking_layers().items()
        }
    every = Analyzer(model, shapes, torch.device("cpu"))
    sparse = Analyzer(model, shapes, torch.device("cpu"), vm_every=args.vm_every)
    one = Analyzer(model, shapes, torch.device("cpu"), vm_layers=[args.vm_layer])
    no_vm = Analyzer(model, shapes, torch.device("cpu"), vm_layers=[])
    torch_path = Analyzer(model, shapes, torch.device("cpu"), compiled=False)
    configs = {
        "off": None,
        "on": every,
        f"on, vm_every={args.vm_every}": sparse,
        f"on, vm_layers={args.vm_layer}": one,
        "on, vm_layers=[]": no_vm,
        "on, torch path": torch_path,
        "off again": None,
    }
    times: dict[str, list[float]] = {k: [] for k in configs}
    cpu: dict[str, list[float]] = {k: [] for k in configs}
    steps: dict[str, list[float]] = {k: [] for k in configs}
    count = 0
    with torch.inference_mode():
        for _ in range(3):  # warm-up (fan-out maps, plans)
            for an in (every, sparse, one, no_vm, torch_path):
                an.install(rates=True)
                for i in range(20):
                    model.step(frames[i])
                    an.collect(i % 16 + 1)
                an.remove()
        tap()
        while min(len(v) for v in times.values()) < args.steps:
            for name, an in configs.items():
                if an is not None:
                    an.install(rates=True)
                for _ in range(BLOCK):
                    x = frames[count % len(frames)]
                    count += 1
                    c0, t0 = time.thread_time(), time.perf_counter()
                    model.step(x)
                    t1 = time.perf_counter()
                    if an is not None:
                        an.collect(count % 16 + 1)
                    times[name].append(time.perf_counter() - t0)
                    steps[name].append(t1 - t0)
                    cpu[name].append(time.thread_time() - c0)
                if an is not None:
                    an.remove()
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    med_step = {k: statistics.median(v) * 1e3 for k, v in steps.items()}
    med_collect = {
        k: statistics.median([t - s for t, s in zip(times[k], steps[k], strict=True)]) * 1e3
        for k in times
    }
    med_cpu = {k: statistics.median(v) * 1e3 for k, v in cpu.items()}

    def trimmed_mean(v: list[float]) -> float:
        s = sorted(v)
        return statistics.fmean(s[: max(1, int(len(s) * 0.99))]) * 1e3

    mean_cpu = {k: trimmed_mean(v) for k, v in cpu.items()}
    print(
        f"resnet_small 2x64x64, CPU ({platform.processor() or platform.machine()}), "
        f"{torch.get_num_threads()} torch thread(s), torch {torch.__version__}, "
        f"{args.steps} steps each"
    )
    print(
        f"{'configuration':<24} {'wall ms/step':>13} {'extra':>8} {'CPU ms/step':>12} {'extra':>8}"
        f" {'CPU mean extra':>15} {'step ms':>8} {'collect ms':>11}"
    )
    for name, m in med.items():
        c = med_cpu[name]
        print(
            f"{name:<24} {m:>13.3f} {m - med['off']:>+8.3f} {c:>12.3f} {c - med_cpu['off']:>+8.3f}"
            f" {mean_cpu[name] - mean_cpu['off']:>+15.3f} {med_step[name]:>8.3f}"
            f" {med_collect[name]:>11.3f}"
        )
    if args.breakdown:
        breakdown(model, every, frames, args.steps)


def breakdown(model: torch.nn.Module, an: Analyzer, frames: torch.Tensor, n: int) -> None:
    """``collect`` of ``an`` alone, then with the compiled kernels as no-ops (its Python)."""
    from dvsapp.snn.analysis import cpu_kernels

    names = ("vm_statistics", "block_sums", "input_counts", "step_figures")
    real = {k: getattr(cpu_kernels, k) for k in names}

    def timed() -> float:
        out = []
        for i in range(n):
            model.step(frames[i % len(frames)])
            t0 = time.perf_counter()
            an.collect(i % 16 + 2)  # never a window's first step: the steady state
            out.append(time.perf_counter() - t0)
        return statistics.median(out) * 1e3

    an.install(rates=True)
    try:
        with torch.inference_mode():
            whole = timed()
            for k in names:
                setattr(cpu_kernels, k, lambda *a: 0.0)
            python = timed()
    finally:
        for k, f in real.items():
            setattr(cpu_kernels, k, f)
        an.remove()
    print(
        f"collect alone {whole:.3f} ms: its Python {python:.3f} ms, "
        f"the compiled kernels {whole - python:.3f} ms"
    )


def in_session(passes: int = 8) -> None:
    """The shipped recording through a ``Session`` at full speed, probes off and on in turn
    (``passes`` each, the first dropped): the median of each lane step's ``wall_ms`` (model,
    taps, probes) and the whole drive's time per step (binning included)."""
    import math

    from dvsapp.events.sources import ReplaySource
    from dvsapp.session.core import Lane, Session
    from dvsapp.session.loading import LaneSettings, LoadedModel, layer_shapes
    from dvsapp.snn.analysis.vm import load_kernels

    rec = ROOT / "recordings" / "synth_seed9000000.aedat"
    ck = load_checkpoint(ROOT / "models" / "resnet_small_synth.safetensors")
    dev = torch.device("cpu")
    loaded = LoadedModel(ck, "m", True, dev, layer_shapes(ck.model, dev))
    load_kernels()
    drive: dict[bool, list[float]] = {False: [], True: []}
    lane_ms: dict[bool, list[float]] = {False: [], True: []}
    with torch.inference_mode():
        for k in range(passes):
            for on in (False, True):
                source = ReplaySource(rec, speed=math.inf)
                with source:
                    lane = Lane(0, loaded, LaneSettings(analysis=on), source.sensor_size, rec)
                    t0 = time.perf_counter()
                    walls = [s.wall_ms for s in Session([lane], source).drive() if s.record]
                    took = time.perf_counter() - t0
                    lane.close()
                if k:
                    drive[on].append(took / len(walls) * 1e3)
                    lane_ms[on] += walls
    print(f"Session over {rec.name}, resnet_small, {passes - 1} passes each, median ms/step")
    for on in (False, True):
        print(
            f"probes {'on ' if on else 'off'}  lane step {statistics.median(lane_ms[on]):.3f}"
            f"  whole drive {statistics.median(drive[on]):.3f}"
        )
    lane_x = statistics.median(lane_ms[True]) - statistics.median(lane_ms[False])
    drive_x = statistics.median(drive[True]) - statistics.median(drive[False])
    print(f"extra: lane step {lane_x:+.3f}, whole drive {drive_x:+.3f}")


_FIRST_COLLECT = """
import sys, threading, time, torch
from pathlib import Path
from dvsapp.snn.base import ProbeSpec
from dvsapp.snn.checkpoint import load_checkpoint
torch.set_num_threads(1)
model = load_checkpoint(Path(sys.argv[1])).model.eval()
frames = torch.zeros(2, 1, 2, 64, 64)
for layer in model.spiking_layers().values():
    layer.probe = ProbeSpec(spikes=True, vm=False)
with torch.inference_mode():
    model.step(frames[0])
shapes = {n: tuple(l.record.spikes.shape[1:]) for n, l in model.spiking_layers().items()}
if sys.argv[2] == "preloaded":
    from dvsapp.snn.analysis.vm import load_kernels
    t = threading.Thread(target=load_kernels)
    t.start()
    t.join()
from dvsapp.snn.analysis import Analyzer
an = Analyzer(model, shapes, torch.device("cpu"))
an.install()
with torch.inference_mode():
    model.step(frames[1])
    t0 = time.perf_counter()
    an.collect(1)
print(time.perf_counter() - t0)
"""

_LOAD = """
import time, torch
t0 = time.perf_counter()
import numba
t1 = time.perf_counter()
from dvsapp.snn.analysis import cpu_kernels
t2 = time.perf_counter()
cpu_kernels.warm_up()
print(t1 - t0, time.perf_counter() - t2)
"""


def first_use() -> None:
    """What a session pays once, each part in a fresh process (torch already imported, as
    in the app)."""
    import subprocess
    import sys

    def run(code: str, *argv: str) -> list[float]:
        out = subprocess.run(
            [sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True
        )
        return [float(v) for v in out.stdout.split()]

    numba_s, kernels_s = run(_LOAD)
    ckpt = str(ROOT / "models" / "resnet_small_synth.safetensors")
    (cold,) = run(_FIRST_COLLECT, ckpt, "cold")
    (pre,) = run(_FIRST_COLLECT, ckpt, "preloaded")
    print(f"import numba {numba_s:.3f} s, load the cached kernels {kernels_s:.3f} s")
    print(f"first collect of a session: cold {cold:.3f} s, after the preload {pre:.3f} s")


if __name__ == "__main__":
    main()
