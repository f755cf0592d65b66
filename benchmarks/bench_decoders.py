"""Decoder throughput: each dvsapp reader against the peer that reads the same format.

Prints one table (events/s, best of --repeat runs, whole-file decode into memory) from one
run on this machine. Peers: tonic's AEDAT 2.0 reader (read_aedat_header_from_file +
get_aer_events_from_file), SpikingJelly's load_aedat_v3 (compiled from its installed source:
its package needs torchvision), aedat and dv-processing for AEDAT4, expelliarmus for
Prophesee EVT 2.0 / EVT 3.0 / DAT.

    python benchmarks/bench_decoders.py [--events 10000000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import platform
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Union

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from aedat31_writer import write_large  # noqa: E402  (the tests' independent writer)

from dvsapp.events.detect import open_reader  # noqa: E402
from dvsapp.events.readers.aedat2 import Aedat2Reader  # noqa: E402
from dvsapp.events.writers import write_aedat4  # noqa: E402

Row = tuple[str, str, int, str, float]


def best_time(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    """Best wall time of ``repeat`` runs and the event count the run returned."""
    best, n = float("inf"), 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        n = fn()
        best = min(best, time.perf_counter() - t0)
    return best, n


def ours(path: Path) -> Callable[[], int]:
    def run() -> int:
        with open_reader(path) as r:
            return len(r.read_all())

    return run


# -- peers ---------------------------------------------------------------------------------
def tonic_aedat2(path: Path) -> Callable[[], int]:
    from tonic.io import get_aer_events_from_file, read_aedat_header_from_file

    def run() -> int:
        version, start, _ = read_aedat_header_from_file(str(path))
        return len(get_aer_events_from_file(str(path), version, start))

    return run


def tonic_aedat2_decoded(path: Path) -> Callable[[], int]:
    """tonic's AEDAT 2.0 read plus the address decode of its ``read_dvs_128`` (which itself
    raises before decoding, tonic issue #302): the work our reader does."""
    from tonic.io import (
        get_aer_events_from_file,
        make_structured_array,
        read_aedat_header_from_file,
    )

    def run() -> int:
        version, start, _ = read_aedat_header_from_file(str(path))
        raw = get_aer_events_from_file(str(path), version, start)
        addr = raw["address"]
        x, y, p = (addr >> 8) & 0x7F, (addr >> 1) & 0x7F, addr & 1
        return len(make_structured_array(x, y, raw["timeStamp"], p))

    return run


def spikingjelly_aedat31(path: Path) -> Callable[[], int] | None:
    """SpikingJelly's ``load_aedat_v3`` compiled from its installed ``datasets/utils.py``:
    importing ``spikingjelly.datasets`` needs torchvision, which we never install."""
    spec = importlib.util.find_spec("spikingjelly")
    if spec is None or not spec.submodule_search_locations:
        return None
    source = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "utils.py"
    tree = ast.parse(source.read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "load_aedat_v3")
    namespace: dict[str, object] = {"struct": struct, "np": np, "Union": Union, "Path": Path}
    exec(compile(ast.Module([fn], []), str(source), "exec"), namespace)
    load = namespace["load_aedat_v3"]

    def run() -> int:
        return len(load(str(path))["t"])  # type: ignore[operator]

    return run


def aedat_decoder(path: Path) -> Callable[[], int]:
    import aedat

    def run() -> int:
        parts = [p["events"] for p in aedat.Decoder(str(path)) if "events" in p]
        return len(np.concatenate(parts))

    return run


def dv_processing(path: Path) -> Callable[[], int]:
    import dv_processing as dv

    def run() -> int:
        rec = dv.io.MonoCameraRecording(str(path))
        parts = []
        while True:
            batch = rec.getNextEventBatch()
            if batch is None:
                break
            parts.append(batch.numpy())
        return len(np.concatenate(parts))

    return run


def expelliarmus_read(path: Path, encoding: str) -> Callable[[], int]:
    from expelliarmus import Wizard

    def run() -> int:
        return len(Wizard(encoding=encoding, fpath=str(path)).read())

    return run


# -- inputs --------------------------------------------------------------------------------
def make_aedat2(path: Path, n: int, seed: int = 0) -> Path:
    """A DVS128 AEDAT 2.0 file of ``n`` random events, 1 us apart on average."""
    rng = np.random.default_rng(seed)
    addr = (rng.integers(0, 128, n) << 8) | (rng.integers(0, 128, n) << 1) | rng.integers(0, 2, n)
    t = np.cumsum(rng.integers(0, 3, n))
    body = np.empty((n, 2), dtype=">i4")
    body[:, 0], body[:, 1] = addr, t
    path.write_bytes(b"#!AER-DAT2.0\r\n# synthetic DVS128\r\n" + body.tobytes())
    return path


def find_samples() -> Path | None:
    d = ROOT.parent / "shared" / "samples"
    return d if d.is_dir() else None


def cases(tmp: Path, n: int) -> list[tuple[str, Path, list[tuple[str, Callable[[], int] | None]]]]:
    big2 = make_aedat2(tmp / "synthetic.aedat", n)
    big31 = write_large(tmp / "synthetic31.aedat", n)
    big4 = tmp / "synthetic.aedat4"
    with Aedat2Reader(big2) as r:
        write_aedat4(big4, r.packets(), r.sensor_size)
    out = [
        (
            "AEDAT 2.0",
            big2,
            [("tonic+decode", tonic_aedat2_decoded(big2)), ("tonic raw only", tonic_aedat2(big2))],
        ),
        ("AEDAT 3.1", big31, [("spikingjelly", spikingjelly_aedat31(big31))]),
        ("AEDAT 4", big4, [("aedat", aedat_decoder(big4)), ("dv-processing", dv_processing(big4))]),
    ]
    samples = find_samples()
    if samples is not None:
        box = samples / "MovingDarkBox.aedat"
        out.insert(
            1,
            (
                "AEDAT 2.0",
                box,
                [
                    ("tonic+decode", tonic_aedat2_decoded(box)),
                    ("tonic raw only", tonic_aedat2(box)),
                ],
            ),
        )
        s4 = samples / "sample.aedat4"
        out.append(
            ("AEDAT 4", s4, [("aedat", aedat_decoder(s4)), ("dv-processing", dv_processing(s4))])
        )
        for name, enc in (
            ("evt2_sample.raw", "evt2"),
            ("evt3_sample.raw", "evt3"),
            ("sample_ncars.dat", "dat"),
        ):
            out.append(
                (
                    enc.upper(),
                    samples / name,
                    [("expelliarmus", expelliarmus_read(samples / name, enc))],
                )
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--events", type=int, default=10_000_000, help="synthetic file size")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(
        f"# {platform.processor() or platform.machine()}, {platform.python_version()}, "
        f"numpy {np.__version__}"
    )
    head = f"{'format':<10} {'file':<22} {'events':>11} {'reader':<14} {'s':>8} {'M ev/s':>8}"
    print(f"{head} {'vs peer':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, path, peers in cases(Path(tmp), args.events):
            t_ours, n = best_time(ours(path), args.repeat)
            rows = [("dvsapp", t_ours, n)]
            for name, fn in peers:
                if fn is None:
                    print(f"{fmt:<10} {path.name:<22} {'':>11} {name:<14} not installed")
                    continue
                t, n_peer = best_time(fn, args.repeat)
                rows.append((name, t, n_peer))
            # The first peer is the like-for-like one (decodes to x, y, t, p as we do).
            peer_best = rows[1][1] if len(rows) > 1 else None
            for name, t, count in rows:
                ratio = f"{peer_best / t:7.2f}x" if name == "dvsapp" and peer_best else ""
                print(
                    f"{fmt:<10} {path.name:<22} {count:>11,} {name:<14} {t:8.4f} "
                    f"{count / t / 1e6:8.1f} {ratio:>8}"
                )


if __name__ == "__main__":
    main()
