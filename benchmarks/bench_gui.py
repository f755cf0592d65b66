"""GUI frame rate and responsiveness while 1 M events/s stream through the small model.

    .venv/bin/python benchmarks/bench_gui.py --seconds 10

A synthetic 128x128 recording at ``--rate`` events/s (a rotating bar over uniform noise,
looped) replays at speed 1 through the real pipeline into ``resnet_small`` (untrained, 10 ms
bins, 64x64 input), with the whole 1600x1000 window drawn offscreen. Reported: redraws per
second (timer ticks that drew new steps: every panel updates in each), paints per second of
each panel's canvas (what Qt actually drew), the longest gap between two redraw-timer ticks
and between two ticks of a 5 ms probe timer (the event loop's responsiveness), and the
pipeline's own counters. Targets: >= 30 redraws/s and no stall over 100 ms. Also reported:
how long after ``MainWindow.start`` the first step was drawn, and the longest probe gap from
then to the measured seconds (startup: loading the model, the probes' compiled kernels).

``--compare`` steps a second model on the same events (compare mode: a second resnet_small,
other weights, its column beside the first); ``--all-panels`` takes the in-depth panels
(Vm histogram, channels, synaptic operations, and the compared model's) out of their tabs into
a second 1600x700 window, so every panel is visible and drawn at once. Both runs are in
docs/BENCHMARKS.md:

    .venv/bin/python benchmarks/bench_gui.py --seconds 10 --compare --all-panels
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import torch
from PySide6.QtCore import QEvent, QEventLoop, QObject, QTimer, Slot
from PySide6.QtWidgets import QApplication, QGridLayout, QWidget

from dvsapp.binning import BinningConfig
from dvsapp.events.types import DVS_GESTURE_CLASSES, make_events
from dvsapp.events.writers import write_npz
from dvsapp.gui.main_window import MainWindow
from dvsapp.pipeline import Pipeline, PipelineSettings
from dvsapp.snn.checkpoint import save_checkpoint
from dvsapp.snn.registry import build_model, default_config

SENSOR = (128, 128)
TARGET_FPS = 30.0
TARGET_STALL_MS = 100.0


def synthetic_packets(rate: float, seconds: float, seed: int = 0):
    """Packets of 10 ms: 70% of the events on a rotating bar, 30% uniform noise."""
    rng = np.random.default_rng(seed)
    per = int(rate * 0.01)
    for k in range(int(seconds * 100)):
        t = np.sort(rng.integers(k * 10_000, (k + 1) * 10_000, per))
        n_bar = int(per * 0.7)
        angle = 2 * math.pi * 0.5 * t[:n_bar] / 1e6
        r = rng.uniform(-55, 55, n_bar)
        x = np.empty(per, np.int64)
        y = np.empty(per, np.int64)
        x[:n_bar] = np.clip(64 + r * np.cos(angle) + rng.normal(0, 1, n_bar), 0, 127)
        y[:n_bar] = np.clip(64 + r * np.sin(angle) + rng.normal(0, 1, n_bar), 0, 127)
        x[n_bar:] = rng.integers(0, SENSOR[0], per - n_bar)
        y[n_bar:] = rng.integers(0, SENSOR[1], per - n_bar)
        order = rng.permutation(per)  # bar and noise events interleave in time
        yield make_events(x[order], y[order], t, rng.random(per) < 0.5)


class PaintCounter(QObject):
    """Counts the paint events a widget receives."""

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self.count = 0

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.count += 1
        return False


class Probe(QObject):
    """A 5 ms timer on the GUI thread: the longest gap between its ticks is the worst
    stall a user would feel."""

    def __init__(self) -> None:
        super().__init__()
        self.gaps: list[float] = []
        self._last = time.perf_counter()
        self.timer = QTimer(self)
        self.timer.setInterval(5)
        self.timer.timeout.connect(self.probe_tick)
        self.timer.start()

    @Slot()
    def probe_tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now

    def reset(self) -> None:
        self.gaps.clear()
        self._last = time.perf_counter()


def run_for(seconds: float) -> None:
    loop = QEventLoop()
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="measured playback")
    ap.add_argument("--rate", type=float, default=1e6, help="events per second")
    ap.add_argument("--bin-us", type=int, default=10_000)
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--screenshot", default=None, help="save the window at the end")
    ap.add_argument("--compare", action="store_true", help="a second model beside the first")
    ap.add_argument(
        "--all-panels", action="store_true", help="every in-depth panel visible at once"
    )
    args = ap.parse_args()

    _app = QApplication.instance() or QApplication([sys.argv[0]])
    with tempfile.TemporaryDirectory(prefix="dvsapp-bench-gui-") as tmp:
        rec = Path(tmp) / "synthetic_1M.npz"
        n = write_npz(rec, synthetic_packets(args.rate, 4.0), (*SENSOR, 2))
        ckpts = []
        for seed in (0, 1) if args.compare else (0,):
            torch.manual_seed(seed)
            model = build_model(default_config("resnet_small"))
            ckpts.append(
                save_checkpoint(
                    Path(tmp) / f"resnet_small_{seed}.safetensors",
                    model,
                    class_names=list(DVS_GESTURE_CLASSES),
                    binning=BinningConfig(
                        sensor_size=SENSOR, time_window_us=args.bin_us, input_size=(64, 64)
                    ),
                    sensor_size=(*SENSOR, 2),
                    trained_on="nothing (benchmark)",
                    metrics={},
                )
            )
        settings = PipelineSettings(
            recording=rec,
            checkpoint=ckpts[0],
            device=args.device,
            compare_checkpoint=ckpts[1] if args.compare else None,
        )
        pipe = Pipeline(settings)
        win = MainWindow(pipe)
        win.resize(1600, 1000)
        win.show()
        probe = Probe()
        started = time.perf_counter()
        win.start()
        deadline = time.monotonic() + 120
        want = 1 if args.compare else 0
        first_step_s = math.nan
        while time.monotonic() < deadline and (
            win.seq < 50 or (want and (win.compare is None or pipe.model_info(1) is None))
        ):  # loaded and warm
            run_for(0.01 if win.seq == 0 else 0.1)
            if win.seq and math.isnan(first_step_s):
                first_step_s = time.perf_counter() - started
        if win.seq < 50 or (want and win.compare is None):
            print("no steps reached the window within 120 s", file=sys.stderr)
            win.close()
            return 1
        extra = None
        if args.all_panels:
            extra = QWidget()
            grid = QGridLayout(extra)
            depth = list(win.depth_panels)
            if win.compare is not None:
                depth += [win.compare.vm_hist, win.compare.synops]
            for i, panel in enumerate(depth):
                grid.addWidget(panel, i // 3, i % 3)
                panel.show()
            extra.resize(1600, 700)
            extra.show()
        shown = list(win.panels) + (list(win.compare.all_panels) if win.compare else [])
        if extra is not None:
            shown += [p for p in extra.findChildren(QWidget) if p in depth]
        counters = {}
        for k, panel in enumerate(shown):
            canvas = getattr(panel, "canvas", None)
            if canvas is None or not panel.isVisible():
                continue
            c = PaintCounter(panel)
            canvas.viewport().installEventFilter(c)
            counters[f"{panel.objectName() or type(panel).__name__}#{k}"] = c
        run_for(1.0)
        startup_stall_ms = max(probe.gaps, default=0.0) * 1e3  # from start() to here
        # measure
        for c in counters.values():
            c.count = 0
        probe.reset()
        win.max_tick_gap_s = 0.0
        win._last_tick = None
        redraws0, seq0, steps0, ticks0 = win.redraws, win.seq, pipe.stats().steps, win.ticks
        eps, rtf, lat = [], [], []
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < args.seconds:
            run_for(1.0)
            st = pipe.stats()
            eps.append(st.events_per_s)
            rtf.append(st.realtime_factor)
            lat.append(st.step_latency_ms)
        wall = time.perf_counter() - t0
        st = pipe.stats()
        threads = torch.get_num_threads()  # what the worker ran with (restored on close)
        if args.screenshot:
            win.grab().save(args.screenshot)
            if extra is not None:
                extra.grab().save(str(Path(args.screenshot).with_suffix("")) + "_panels.png")
        win.close()
        if extra is not None:
            extra.close()

    fps = (win.redraws - redraws0) / wall
    paints = {k: c.count / wall for k, c in counters.items()}
    gaps_ms = np.array(probe.gaps) * 1e3
    stall = max(float(gaps_ms.max()), win.max_tick_gap_s * 1e3)
    rows = [
        ("window redraws / s", f"{fps:.1f}", f">= {TARGET_FPS:.0f}", fps >= TARGET_FPS),
        ("slowest panel paints / s", f"{min(paints.values()):.1f}", "", None),
        ("redraw-timer ticks / s", f"{(win.ticks - ticks0) / wall:.1f}", "", None),
        ("longest stall (ms)", f"{stall:.1f}", f"<= {TARGET_STALL_MS:.0f}", stall <= 100),
        ("redraw-timer gap max (ms)", f"{win.max_tick_gap_s * 1e3:.1f}", "", None),
        ("5 ms probe gap p99 (ms)", f"{np.percentile(gaps_ms, 99):.1f}", "", None),
        ("steps drawn / s", f"{(win.seq - seq0) / wall:.1f}", "", None),
        ("pipeline steps / s", f"{(st.steps - steps0) / wall:.1f}", "", None),
        ("events / s (median)", f"{statistics.median(eps) / 1e6:.2f} M", "", None),
        ("real-time factor (median)", f"{statistics.median(rtf):.2f}", "", None),
        ("step latency ms (median)", f"{statistics.median(lat):.2f}", "", None),
        ("dropped steps", f"{st.dropped_steps}", "", None),
        ("first step drawn after start (s)", f"{first_step_s:.2f}", "", None),
        ("longest stall before measuring (ms)", f"{startup_stall_ms:.1f}", "", None),
    ]
    info = pipe.model_info()
    models = "two resnet_small side by side" if args.compare else "resnet_small"
    panels = f", {len(counters)} panels visible" + (" (all in-depth)" if args.all_panels else "")
    print(
        f"dvsapp GUI benchmark: {n / 1e6:.1f} M events looped at {args.rate / 1e6:g} M ev/s, "
        f"{args.bin_us} us bins, {models} on {info.device if info else '?'}{panels}, "
        f"{args.seconds:g} s measured"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({threads} threads), Qt offscreen"
    )
    width = max(len(r[0]) for r in rows)
    print(f"{'metric':<{width}}  {'value':>10}  {'target':>8}  ok")
    for name, value, target, ok in rows:
        mark = "" if ok is None else ("yes" if ok else "NO")
        print(f"{name:<{width}}  {value:>10}  {target:>8}  {mark}")
    for k, v in paints.items():
        print(f"  paints/s {k:<16} {v:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
