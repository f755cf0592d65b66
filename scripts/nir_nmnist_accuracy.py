"""Accuracy of the NIR paper's N-MNIST CNN (``cnn_sinabs_nmnist.nir``) over real N-MNIST
samples: ``dvsapp run`` against sinabs reading the same file, on frames tonic makes itself.

    python scripts/nir_nmnist_accuracy.py [--samples ../shared/samples/nmnist/Train] [--limit N]

dvsapp: every sample through ``dvsapp.session.run.run`` (our .bin reader and binner, 1 ms bins,
one window per sample, class = most output spikes), with NIR's IF (reset to v_reset) and with
``--reset subtract``. sinabs: ``sinabs.from_nir`` on ``tonic.io.read_mnist_file`` +
``tonic.transforms.ToFrame(sensor_size=(34, 34, 2), time_window=1000)`` frames, as sinabs
reads the file (several spikes per step, subtract reset, floor at -threshold) and with its IF
layers set to NIR's IF. Prints one table row per reader.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CNN = ROOT.parent / "shared" / "models" / "nir" / "cnn_sinabs_nmnist.nir"
SAMPLES = ROOT.parent / "shared" / "samples" / "nmnist" / "Train"


def ours(files: list[Path], reset: str | None) -> tuple[float, float]:
    from dvsapp.session.run import run
    from dvsapp.snn.graph.importer import ImportOptions, import_nir

    opts = ImportOptions(classes="nmnist", bin_us=1000, time_steps=300, reset=reset)
    buf = io.StringIO()
    t0 = time.perf_counter()
    run(files, import_nir(CNN, opts), device="cpu", window="file", json_lines=True, out=buf)
    summary = json.loads(buf.getvalue().splitlines()[-1])["summary"]
    return summary["accuracy"], time.perf_counter() - t0


def sinabs_accuracy(files: list[Path], nir_if: bool) -> tuple[float, float]:
    import nir
    import sinabs
    import sinabs.layers as sl
    import tonic
    from sinabs.activation import MembraneReset, SingleSpike

    to_frame = tonic.transforms.ToFrame(sensor_size=(34, 34, 2), time_window=1000)
    net = sinabs.from_nir(nir.read(CNN), batch_size=1)
    if nir_if:
        for m in net.modules():
            if isinstance(m, sl.IAFSqueeze):
                m.spike_fn, m.reset_fn, m.min_v_mem = SingleSpike, MembraneReset(), None
    correct = 0
    t0 = time.perf_counter()
    for f in files:
        events = tonic.io.read_mnist_file(str(f), dtype=tonic.io.events_struct)
        frames = torch.from_numpy(to_frame(events)).float()
        sinabs.reset_states(net)
        with torch.no_grad():
            out = net(frames)
        out = out[0] if isinstance(out, tuple) else out
        correct += int(out.sum(0).argmax()) == int(f.parent.name)
    return correct / len(files), time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=Path, default=SAMPLES)
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    files = sorted(args.samples.rglob("*.bin"))[: args.limit]
    print(f"{len(files)} N-MNIST samples from {args.samples}; 1 ms bins; class = most spikes")
    rows = [
        ("dvsapp run, NIR IF (reset to v_reset)", ours(files, None)),
        ("dvsapp run --reset subtract", ours(files, "subtract")),
        ("sinabs from_nir, IF set to NIR's IF", sinabs_accuracy(files, True)),
        ("sinabs from_nir as it reads the file", sinabs_accuracy(files, False)),
    ]
    print(f"{'reader':<42} {'accuracy':>9} {'seconds':>8}")
    for name, (acc, secs) in rows:
        print(f"{name:<42} {acc:9.4f} {secs:8.1f}")


if __name__ == "__main__":
    main()
