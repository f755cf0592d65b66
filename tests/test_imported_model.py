"""The shipped network from elsewhere (models/cnn_sinabs_nmnist): its card, licence and
checkpoint, that it is the NIR paper's file as imported, and that `dvsapp run` reproduces
the card's classes on real N-MNIST samples (the misclassified ones included)."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout
from pathlib import Path

import torch

from dvsapp.cli import main
from dvsapp.snn.checkpoint import load_checkpoint

MODELS = Path(__file__).resolve().parents[1] / "models"
CARD = json.loads((MODELS / "cnn_sinabs_nmnist.import.json").read_text())


def test_checkpoint_card_and_licence_ship_together():
    ckpt = load_checkpoint(MODELS / CARD["checkpoint"])
    assert ckpt.arch == "graph" and ckpt.class_names == [str(d) for d in range(10)]
    assert ckpt.binning.time_window_us == 1000 and ckpt.binning.sensor_size == (34, 34)
    assert ckpt.time_steps == 300 and ckpt.model.readout == "spike_count"
    assert ckpt.extra["source"]["file"] == "cnn_sinabs_nmnist.nir"
    assert list(ckpt.model.spiking_layers()) == ["1", "3", "6", "10", "12"]
    assert "N-MNIST" in ckpt.trained_on
    assert "BSD 3-Clause" in (MODELS / "cnn_sinabs_nmnist.LICENSE").read_text()
    card = (MODELS / "cnn_sinabs_nmnist.md").read_text()
    assert card.startswith("# cnn_sinabs_nmnist") and "7232ada6" in card and "BSD-3" in card


def test_it_is_the_nir_file_as_imported(shared_models_dir):
    from dvsapp.snn.graph.importer import ImportOptions, import_nir

    fresh = import_nir(
        shared_models_dir / "nir" / "cnn_sinabs_nmnist.nir",
        ImportOptions(classes="nmnist", bin_us=1000, time_steps=300),
    )
    shipped = load_checkpoint(MODELS / CARD["checkpoint"])
    a, b = fresh.model.state_dict(), shipped.model.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert fresh.config.graph == shipped.config.graph


def test_run_gives_the_cards_classes_on_real_nmnist(samples_dir):
    """Every sample the card lists as misclassified, and the first right one per digit:
    the same class through `dvsapp run` (a tie on another CPU's rounding may flip one)."""
    root = samples_dir / "nmnist" / "Train"
    wrong = dict(CARD["evaluation"]["misclassified"])
    right = [sorted(d.glob("*.bin"))[0] for d in sorted(root.iterdir())]
    files = [root / f for f in wrong] + [
        f for f in right if f"{f.parent.name}/{f.name}" not in wrong
    ]
    buf = io.StringIO()
    args = ["--model", str(MODELS / CARD["checkpoint"]), "--window", "file", "--json"]
    with redirect_stdout(buf):
        assert main(["run", *map(str, files), *args, "--device", "cpu", "--threads", "1"]) == 0
    windows = [json.loads(s) for s in buf.getvalue().splitlines()][:-1]
    got = {f"{Path(w['file']).parent.name}/{Path(w['file']).name}": w for w in windows}
    differ = [f for f, label in wrong.items() if got[f]["label"] != label]
    differ += [f for f in got if f not in wrong and not got[f]["correct"]]
    assert len(differ) <= 1, differ
    assert sum(not w["correct"] for w in windows) >= len(wrong) - 1
