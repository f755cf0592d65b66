"""Latency of a DV network stream: a packet's write in the writer process to its poll() here.

    .venv/bin/python benchmarks/bench_network.py --packets 200 --interval 0.01

A real dv-processing NetworkWriter runs in a subprocess (tests/dv_writer_proc.py
``--wall-clock``): every event of a packet carries the wall time of its write
(``time.time()`` in us) as timestamp. Here a NetworkSource is polled every ``--poll-ms`` and
each packet's latency is the wall time at which poll() returned it minus that timestamp.
Rows: TCP on 127.0.0.1 and a UNIX socket; columns: median and p95 in ms.

A second table follows the packets on to the model: the same writer feeds a whole
:class:`~dvsapp.pipeline.Pipeline` (NetworkSource -> binner -> stepper of ``--model``, the
untrained demo resnet_small when none, on the CPU) with ``--bin-ms`` bins. A bin of a live
source closes when the wall clock passes its end, so for every step record drained from the
mailbox we take (wall time of receipt) - (the bin's end on the writer's clock): the latency
from a packet written at the end of a bin to the step record that holds it. A packet written
earlier in the bin waits up to one bin width more.
"""

from __future__ import annotations

import argparse
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dvsapp.events.sources.network import NetworkSource

WRITER = Path(__file__).resolve().parents[1] / "tests" / "dv_writer_proc.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_writer(
    kind: str, packets: int, size: int, interval: float
) -> tuple[NetworkSource, subprocess.Popen, Path]:
    """A wall-clock writer process on a fresh address, and a NetworkSource for it."""
    tmp = Path(tempfile.mkdtemp(prefix="dvsnet"))
    if kind == "tcp":
        port = free_port()
        address = f"tcp:127.0.0.1:{port}"
        src = NetworkSource.tcp("127.0.0.1", port, start_wait_s=5.0)
    else:
        address = f"unix:{tmp / 'dv.sock'}"
        src = NetworkSource.unix(tmp / "dv.sock", start_wait_s=5.0)
    args = ["--wall-clock", "--batches", str(packets), "--batch-size", str(size)]
    args += ["--interval", str(interval)]
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), address, *args], stdout=subprocess.PIPE, text=True
    )
    return src, proc, tmp


def wait_ready(kind: str, proc: subprocess.Popen) -> None:
    ready, _, _ = select.select([proc.stdout], [], [], 20.0)
    if not ready or proc.stdout is None or proc.stdout.readline().strip() != "READY":
        raise SystemExit(f"{kind}: the writer did not start")


def measure(kind: str, packets: int, size: int, interval: float, poll_ms: float) -> np.ndarray:
    """Per-packet latencies in ms over one run against a fresh writer process."""
    src, proc, tmp = start_writer(kind, packets, size, interval)
    lat: list[float] = []
    try:
        wait_ready(kind, proc)
        src.start()
        deadline = time.monotonic() + 10.0 + packets * interval * 2
        got = 0
        while got < packets * size and time.monotonic() < deadline:
            ev = src.poll()
            now_us = time.time_ns() // 1000
            if len(ev):
                got += len(ev)
                stamps = np.unique(ev["t"])  # one timestamp a packet
                lat.extend(((now_us - stamps) / 1000.0).tolist())
            else:
                time.sleep(poll_ms / 1000.0)
        print(
            f"{kind}: {src.status().state.value}, {got} events, {src.status().message}",
            file=sys.stderr,
        )
    finally:
        src.stop()
        proc.kill()  # never destroy a NetworkWriter with a client: it does not return
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    return np.asarray(lat)


def measure_pipeline(
    kind: str, packets: int, size: int, interval: float, bin_ms: float, model: str | None
) -> tuple[np.ndarray, str]:
    """Per-step-record latencies in ms (bin end -> record in the consumer), and a status line."""
    import torch

    from dvsapp.pipeline import Mailbox, Pipeline, PipelineSettings

    # As the GUI does (gui/pipeline_port.py): torch's pool spinning on every core while
    # the source's reader thread and this consumer need one turns 1 ms steps into 100 ms.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) - 1))

    src, proc, tmp = start_writer(kind, packets, size, interval)
    settings = PipelineSettings(
        checkpoint=None if model is None else Path(model),
        device="cpu",
        bin_us=int(bin_ms * 1000),
        exit_threshold=None,
    )
    mailbox = Mailbox(4096)
    pipe = Pipeline(settings, mailbox)
    lat: list[float] = []
    try:
        wait_ready(kind, proc)
        pipe.start()
        pipe.open_source(src)
        deadline = time.monotonic() + 15.0 + packets * interval * 2
        while time.monotonic() < deadline:
            frames = mailbox.drain()
            now_us = time.time_ns() // 1000
            lat.extend((now_us - f.t_end_us) / 1000.0 for f in frames)
            if len(lat) >= int(packets * interval * 1000 / bin_ms) - 2:
                break
            time.sleep(0.0002)
        stats = pipe.stats()
        line = f"{kind}: {stats.state}, {stats.steps} steps, {stats.step_latency_ms:.2f} ms/step"
    finally:
        pipe.stop()
        proc.kill()
        proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)
    return np.asarray(lat[5:]), line  # the first records include the connection's start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--packets", type=int, default=200)
    ap.add_argument("--size", type=int, default=1000, help="events a packet")
    ap.add_argument("--interval", type=float, default=0.01, help="seconds between packets")
    ap.add_argument("--poll-ms", type=float, default=0.2, help="consumer sleep when empty")
    ap.add_argument("--bin-ms", type=float, default=10.0, help="pipeline bin width")
    ap.add_argument("--model", default=None, help="checkpoint (default: untrained demo)")
    a = ap.parse_args()
    print(
        f"{a.packets} packets of {a.size} events every {a.interval * 1000:.0f} ms, "
        f"consumer polls every {a.poll_ms} ms when idle"
    )
    print(f"{'transport':<10} {'packets':>8} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
    for kind in ("tcp", "unix"):
        lat = measure(kind, a.packets, a.size, a.interval, a.poll_ms)
        if len(lat) == 0:
            print(f"{kind:<10} {0:>8} {'-':>10} {'-':>8} {'-':>8}")
            continue
        med, p95, mx = np.median(lat), np.percentile(lat, 95), lat.max()
        print(f"{kind:<10} {len(lat):>8} {med:>10.3f} {p95:>8.3f} {mx:>8.3f}")
    print()
    print(f"packet at a bin's end -> its step record ({a.bin_ms:g} ms bins, {a.model or 'demo'})")
    print(f"{'transport':<10} {'records':>8} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
    for kind in ("tcp", "unix"):
        lat, line = measure_pipeline(kind, a.packets, a.size, a.interval, a.bin_ms, a.model)
        print(line, file=sys.stderr)
        if len(lat) == 0:
            print(f"{kind:<10} {0:>8} {'-':>10} {'-':>8} {'-':>8}")
            continue
        med, p95, mx = np.median(lat), np.percentile(lat, 95), lat.max()
        print(f"{kind:<10} {len(lat):>8} {med:>10.3f} {p95:>8.3f} {mx:>8.3f}")


if __name__ == "__main__":
    main()
