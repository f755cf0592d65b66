"""A real dv-processing NetworkWriter serving known events; run as a subprocess by the tests.

    python tests/dv_writer_proc.py tcp:127.0.0.1:PORT --events 1000 --batches 5
    python tests/dv_writer_proc.py unix:/tmp/x/dv.sock --wall-clock --batches 200

It prints ``READY`` once the server listens, waits (bounded) for a client, sends the events in
batches, prints ``SENT n`` and then sleeps until it is killed: destroying a NetworkWriter after
a client connected never returns in dv-processing 2.0.4, so the test kills this process.

Events are ``known_events(n, seed)``; with ``--wall-clock`` each batch is one event per pixel
row whose timestamp is the wall time of the write (``time.time()`` in microseconds), for the
latency benchmark.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import stat
import sys
import time

import numpy as np

WIDTH, HEIGHT = 346, 260


def known_events(n: int, seed: int = 0) -> np.ndarray:
    """``n`` deterministic events (t strictly increasing from 1000 us) as (t, x, y, p) columns."""
    rng = np.random.default_rng(seed)
    out = np.empty(n, dtype=[("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "?")])
    out["t"] = 1000 + np.cumsum(rng.integers(1, 50, n))
    out["x"] = rng.integers(0, WIDTH, n)
    out["y"] = rng.integers(0, HEIGHT, n)
    out["p"] = rng.integers(0, 2, n).astype(bool)
    return out


def _store(t: list[int], x: list[int], y: list[int], p: list[bool]) -> object:
    import dv_processing as dv

    store = dv.EventStore()
    for row in zip(t, x, y, p, strict=True):
        store.push_back(*row)
    return store


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("address", help="tcp:HOST:PORT or unix:PATH")
    ap.add_argument("--events", type=int, default=1000)
    ap.add_argument("--batches", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--interval", type=float, default=0.02, help="seconds between batches")
    ap.add_argument("--wall-clock", action="store_true", help="timestamps = write wall time")
    ap.add_argument("--batch-size", type=int, default=100, help="events a batch (wall-clock)")
    ap.add_argument("--connect-timeout", type=float, default=20.0)
    ap.add_argument("--hold", type=float, default=60.0, help="seconds to wait before exiting")
    args = ap.parse_args(argv)

    import dv_processing as dv

    stream = dv.io.Stream.EventStream(0, "events", "dvsapp-test", (WIDTH, HEIGHT))
    kind, _, rest = args.address.partition(":")
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        writer = dv.io.NetworkWriter(host, int(port), stream)
    else:
        # A killed writer leaves its socket file behind, and NetworkWriter refuses to bind
        # over an existing file: remove a stale socket first.
        with contextlib.suppress(FileNotFoundError):
            if stat.S_ISSOCK(os.stat(rest).st_mode):
                os.unlink(rest)
        writer = dv.io.NetworkWriter(rest, stream)
    print("READY", flush=True)

    deadline = time.monotonic() + args.connect_timeout
    while writer.getClientCount() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    if writer.getClientCount() == 0:
        print("NO CLIENT", flush=True)
        time.sleep(args.hold)
        return 1
    time.sleep(0.1)  # let the client read the stream definition

    sent = 0
    if args.wall_clock:
        for _ in range(args.batches):
            now = time.time_ns() // 1000
            k = args.batch_size
            t = [now] * k
            writer.writeEvents(_store(t, [i % WIDTH for i in range(k)], [0] * k, [True] * k))
            sent += k
            time.sleep(args.interval)
    else:
        ev = known_events(args.events, args.seed)
        for chunk in np.array_split(ev, args.batches):
            if len(chunk):
                cols = [chunk[c].tolist() for c in ("t", "x", "y", "p")]
                writer.writeEvents(_store(*cols))
                sent += len(chunk)
            time.sleep(args.interval)
    print(f"SENT {sent}", flush=True)
    time.sleep(args.hold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
