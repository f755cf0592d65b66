"""Graph models on small NIR graphs written here: every node type against the documented
equations (an independent numpy loop), nested graphs, recurrence, the checkpoint round trip,
the spike-count readout, and one-line refusals of bad files."""

from __future__ import annotations

import json
import re
import sys
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import torch

from dvsapp.cli import main
from dvsapp.snn.checkpoint import load_checkpoint
from dvsapp.snn.graph.importer import ImportOptions, import_nir, save_imported
from dvsapp.snn.graph.nir_reader import NirError
from dvsapp.snn.stepper import Stepper
from tests.graph_helpers import nir_model, step_all

nir = pytest.importorskip("nir")

DT = 1e-4


def _io(shape):
    return nir.Input({"input": np.array(shape)}), nir.Output({"output": np.array(shape)})


def _write(tmp_path: Path, nodes: dict, edges: list, name: str = "g.nir") -> Path:
    path = tmp_path / name
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=edges, type_check=False))
    return path


def _chain(tmp_path: Path, middle: dict, n_in: int, n_out: int, name: str = "g.nir") -> Path:
    """input -> middle nodes in order -> output."""
    inp, _ = _io([n_in])
    _, out = _io([n_out])
    names = list(middle)
    edges = [("input", names[0]), *pairwise(names), (names[-1], "output")]
    return _write(tmp_path, {"input": inp, **middle, "output": out}, edges, name)


def _x(t: int, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((t, 1, n), generator=g) * 2 - 0.5


def _ref_lif(x: np.ndarray, w: np.ndarray, tau, r, v_leak, thr, v_reset) -> np.ndarray:
    """NIR's LIF by forward Euler at DT, membrane starting at v_leak (numpy, float64)."""
    v = np.broadcast_to(v_leak, (w.shape[0],)).astype(np.float64).copy()
    out = []
    for x_t in x:
        v = v + DT / tau * (v_leak - v) + DT * r / tau * (w @ x_t)
        z = (v > thr).astype(np.float64)
        v = np.where(z > 0, v_reset, v)
        out.append(z)
    return np.array(out)


def test_lif_matches_the_documented_euler_equations(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.normal(0, 1, (6, 4)).astype(np.float32)
    tau = np.full(6, 2e-3, np.float32)
    r = np.linspace(5, 20, 6).astype(np.float32)
    v_leak = np.full(6, 0.1, np.float32)
    thr = np.linspace(0.2, 0.7, 6).astype(np.float32)
    v_reset = np.full(6, -0.1, np.float32)
    lif = nir.LIF(tau=tau, r=r, v_leak=v_leak, v_threshold=thr, v_reset=v_reset)
    path = _chain(tmp_path, {"w": nir.Linear(weight=w), "lif": lif}, 4, 6)
    x = _x(200, 4)
    ours = step_all(nir_model(path, input_size=(4, 1), dt=DT), x)[:, 0].numpy()
    ref = _ref_lif(x[:, 0].double().numpy(), w.astype(np.float64), tau, r, v_leak, thr, v_reset)
    assert ref.sum() > 20
    assert np.array_equal(ours, ref)


def test_integrators_scale_threshold_and_pools(tmp_path):
    """I integrates r*x per step; LI leaks by Euler; Threshold is x > t; Scale multiplies."""
    n = 3
    r = np.array([0.5, 1.0, 2.0], np.float32)
    nodes = {
        "s": nir.Scale(scale=np.array([1.0, -1.0, 2.0], np.float32)),
        "i": nir.I(r=r),
        "th": nir.Threshold(threshold=np.full(n, 0.8, np.float32)),
    }
    path = _chain(tmp_path, nodes, n, n)
    x = _x(50, n, seed=1)
    ours = step_all(nir_model(path, input_size=(n, 1), readout="mean_softmax"), x)[:, 0].numpy()
    v = np.cumsum(r * np.array([1.0, -1.0, 2.0]) * x[:, 0].double().numpy(), axis=0)
    assert np.array_equal(ours, (v > 0.8).astype(np.float32))

    li = nir.LI(tau=np.full(n, 1e-3, np.float32), r=r, v_leak=np.zeros(n, np.float32))
    path = _chain(tmp_path, {"li": li}, n, n)
    ours = step_all(nir_model(path, input_size=(n, 1), readout="mean_softmax"), x)[:, 0]
    v, ref = np.zeros(n), []
    for x_t in x[:, 0].double().numpy():
        v = v + 0.1 * (0 - v) + 0.1 * r * x_t
        ref.append(v)
    np.testing.assert_allclose(ours.numpy(), np.array(ref), atol=1e-5)


def test_cuba_li_and_delay(tmp_path):
    n = 2
    cuba = nir.CubaLI(
        tau_syn=np.full(n, 5e-4, np.float32),
        tau_mem=np.full(n, 1e-3, np.float32),
        r=np.ones(n, np.float32),
        v_leak=np.zeros(n, np.float32),
        w_in=np.full(n, 2.0, np.float32),
    )
    delay = nir.Delay(delay=np.array([0.0, 3 * DT], np.float32))
    path = _chain(tmp_path, {"d": delay, "c": cuba}, n, n)
    x = _x(30, n, seed=2)
    ours = step_all(nir_model(path, input_size=(n, 1), readout="mean_softmax"), x)[:, 0].numpy()
    xs = x[:, 0].double().numpy()
    delayed = np.stack([xs[:, 0], np.r_[np.zeros(3), xs[:-3, 1]]], 1)
    i = v = np.zeros(n)
    ref = []
    for x_t in delayed:
        i = i + 0.2 * (-i) + 0.2 * 2.0 * x_t
        v = v + 0.1 * (-v) + 0.1 * i
        ref.append(v)
    np.testing.assert_allclose(ours, np.array(ref), atol=1e-5)


def test_delay_that_is_not_whole_steps_is_refused(tmp_path):
    path = _chain(tmp_path, {"d": nir.Delay(delay=np.array([1.5 * DT], np.float32))}, 1, 1)
    with pytest.raises(NirError, match=r"'d' \(Delay\).*whole multiples of dt"):
        nir_model(path, input_size=(1, 1))


def test_conv1d_avgpool_and_nested_subgraph_with_recurrence(tmp_path):
    """A Conv1d over a [C, L] input, then a nested graph holding a recurrent IF layer."""
    rng = np.random.default_rng(3)
    conv = nir.Conv1d(
        input_shape=8,
        weight=rng.normal(0, 1, (4, 2, 3)).astype(np.float32),
        stride=1,
        padding=1,
        dilation=1,
        groups=1,
        bias=np.zeros(4, np.float32),
    )
    w_rec = rng.normal(0, 0.5, (32, 32)).astype(np.float32)
    sub_in, sub_out = _io([32])
    sub = nir.NIRGraph(
        nodes={
            "in": sub_in,
            "lif": nir.IF(r=np.ones(32, np.float32), v_threshold=np.ones(32, np.float32)),
            "rec": nir.Linear(weight=w_rec),
            "out": sub_out,
        },
        edges=[("in", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "out")],
        type_check=False,
    )
    inp, _ = _io([2, 8])
    _, out = _io([32])
    path = _write(
        tmp_path,
        {
            "input": inp,
            "conv": conv,
            "flat": nir.Flatten({"input": np.array([4, 8])}, start_dim=0),
            "rnn": sub,
            "output": out,
        },
        [("input", "conv"), ("conv", "flat"), ("flat", "rnn"), ("rnn", "output")],
    )
    model = nir_model(path, input_size=(8, 1))
    assert list(model.spiking_layers()) == ["rnn.lif"]
    x = (torch.rand((40, 1, 2, 1, 8), generator=torch.Generator().manual_seed(4)) < 0.5).float()
    ours = step_all(model, x)[:, 0].numpy()
    # reference: conv in torch, then the IF with last step's spikes through w_rec
    w = torch.from_numpy(conv.weight)
    v, s_prev, ref = np.zeros(32), np.zeros(32), []
    for x_t in x[:, 0, :, 0]:
        cur = torch.nn.functional.conv1d(x_t[None], w, padding=1).flatten().double().numpy()
        v = v + cur + w_rec.astype(np.float64) @ s_prev
        s_prev = (v > 1.0).astype(np.float64)
        v = np.where(s_prev > 0, 0.0, v)
        ref.append(s_prev)
    assert np.array(ref).sum() > 10
    np.testing.assert_allclose(ours, np.array(ref), atol=0)


# -- checkpoints ----------------------------------------------------------------------------
def _cnn(shared_models_dir: Path) -> Path:
    return shared_models_dir / "nir" / "cnn_sinabs_nmnist.nir"


def test_import_round_trip_loads_without_nir_or_pickle(shared_models_dir, tmp_path, monkeypatch):
    ckpt = import_nir(_cnn(shared_models_dir), ImportOptions(classes="nmnist", time_steps=50))
    out = save_imported(ckpt, tmp_path / "cnn.safetensors")
    monkeypatch.setitem(sys.modules, "nir", None)  # loading needs no nir
    loaded = load_checkpoint(out)
    assert loaded.arch == "graph" and loaded.class_names == [str(i) for i in range(10)]
    assert loaded.binning.time_window_us == 1000 and loaded.time_steps == 50
    assert loaded.extra["source"]["framework"] == "nir"
    x = (torch.rand((30, 1, 2, 34, 34), generator=torch.Generator().manual_seed(5)) < 0.1) * 2.0
    torch.testing.assert_close(step_all(loaded.model, x), step_all(ckpt.model, x), atol=0, rtol=0)


def test_spike_count_readout_probabilities(shared_models_dir):
    ckpt = import_nir(_cnn(shared_models_dir), ImportOptions(classes="nmnist", time_steps=40))
    stepper = Stepper(ckpt.model, "cpu", 40, class_names=ckpt.class_names)
    counts = np.zeros(10)
    x = (torch.rand((40, 2, 34, 34), generator=torch.Generator().manual_seed(6)) < 0.1) * 2.0
    first = stepper.push(np.zeros((2, 34, 34), np.float32), 0, 1000)
    assert np.allclose(first.probs, 0.1)  # no output spike yet: uniform
    for i, frame in enumerate(x[1:]):
        rec = stepper.push(frame.numpy(), (i + 1) * 1000, (i + 2) * 1000)
        counts += rec.output
        np.testing.assert_allclose(rec.probs, (counts + 0.1) / (counts.sum() + 1), rtol=1e-6)
        assert rec.pred == int(np.argmax(counts))
    assert counts.sum() > 0


def test_confidence_exit_waits_for_evidence_on_real_nmnist(shared_models_dir, samples_dir, capsys):
    """With spike shares smoothed by a prior worth one spike, the 0.9 exit needs several
    output spikes for one class, not the first one: it fires mid-window, on the right digit."""
    files = [sorted((samples_dir / "nmnist" / "Train" / d).glob("*.bin"))[0] for d in "147"]
    args = ["--classes", "nmnist", "--window", "file", "--json", "--exit-threshold", "0.9"]
    assert main(["run", *map(str, files), "--model", str(_cnn(shared_models_dir)), *args]) == 0
    windows = [json.loads(s) for s in capsys.readouterr().out.splitlines()][:-1]
    for w in windows:
        assert w["exit_reason"] is not None and 20 < w["exit_step"] < w["steps"]
        assert w["exit_label"] == w["label"] == w["true"]


# -- bad input ------------------------------------------------------------------------------
def _bad_files(tmp_path: Path, cnn: Path) -> dict[str, tuple[Path, str]]:
    text = tmp_path / "text.nir"
    text.write_text("not a graph\n")
    cut = tmp_path / "cut.nir"
    data = cnn.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    import h5py

    unknown = tmp_path / "unknown.nir"
    unknown.write_bytes(data)
    with h5py.File(unknown, "r+") as f:
        del f["node/nodes/5/type"]
        f["node/nodes/5/type"] = np.bytes_("Conv3d")
    io = {"input": _io([2])[0], "output": _io([2])[1]}
    edge = _write(tmp_path, io, [("input", "gone")], "edge.nir")
    w = np.ones((3, 5), np.float32)
    affine = nir.Affine(weight=w, bias=np.zeros(3, np.float32))
    shapes = _chain(tmp_path, {"fc": affine}, 4, 3, "shapes.nir")
    nan_w = nir.Linear(weight=np.full((2, 2), np.nan, np.float32))
    nan = _chain(tmp_path, {"fc": nan_w}, 2, 2, "nan.nir")
    return {
        "not HDF5": (text, "not a NIR file"),
        "truncated": (cut, "truncated or corrupt"),
        "unknown node": (unknown, "'5'"),
        "missing edge": (edge, "'gone'"),
        "shapes": (shapes, r"'fc' \(Affine\): shapes do not chain"),
        "NaN": (nan, r"'fc' \(Linear\): weight has NaN"),
    }


def test_bad_nir_files_fail_with_one_line_and_exit_2(shared_models_dir, tmp_path, capsys):
    for what, (path, message) in _bad_files(tmp_path, _cnn(shared_models_dir)).items():
        out = tmp_path / f"{path.stem}.safetensors"
        assert main(["import", str(path), "-o", str(out), "--input-size", "2x1"]) == 2, what
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(path) in err, (what, err)
        assert re.search(message, err), (what, err)
        assert not out.exists() and not list(tmp_path.glob(".*.part")), what


def test_cli_import_then_run_on_real_nmnist(shared_models_dir, samples_dir, tmp_path, capsys):
    out = tmp_path / "cnn.safetensors"
    args = ["--classes", "nmnist", "--bin-us", "1000", "--time-steps", "300"]
    assert main(["import", str(_cnn(shared_models_dir)), "-o", str(out), *args]) == 0
    files = sorted((samples_dir / "nmnist" / "Train" / "7").glob("*.bin"))[:3]
    capsys.readouterr()
    assert main(["run", *map(str, files), "--model", str(out), "--window", "file", "--json"]) == 0
    lines = [json.loads(s) for s in capsys.readouterr().out.splitlines()]
    windows, summary = lines[:-1], lines[-1]["summary"]
    assert [w["file"] for w in windows] == list(map(str, files))
    assert all(w["true"] == "7" for w in windows)
    assert summary["recordings"] == 3 and summary["labelled_windows"] == 3
    # the same files through --model X.nir directly give the same predictions
    direct_args = ["--model", str(_cnn(shared_models_dir)), *args, "--window", "file", "--json"]
    assert main(["run", *map(str, files), *direct_args]) == 0
    direct = [json.loads(s) for s in capsys.readouterr().out.splitlines()][:-1]
    assert [w["pred"] for w in direct] == [w["pred"] for w in windows]


def test_classes_option_count_list_and_known_sets():
    from dvsapp.errors import ConfigError
    from dvsapp.snn.graph.importer import class_names

    assert class_names(None, 3) == ["0", "1", "2"]
    assert class_names("3", 3) == ["0", "1", "2"]
    assert class_names(" left, right ", 2) == ["left", "right"]
    assert class_names("DVSGesture", 11)[0] == "hand_clapping"
    assert class_names("ncaltech101", 101)[1] == "Faces_easy"
    with pytest.raises(ConfigError, match="gives 10 classes but the network's readout has 11"):
        class_names("nmnist", 11)
