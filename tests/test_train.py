"""dvsapp.train: training both families, resume, IIR, TensorBoard, evaluation, CLI errors.

Everything runs on the CPU on a tiny fake gesture set (a noisy dot circling left-to-right vs
right-to-left) and tiny models (width 4, 16x16 input, T=4), so it never needs dvsapp.synth.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from dvsapp.errors import ConfigError
from dvsapp.events.types import EVENT_DTYPE

CLASSES = ["left_to_right", "right_to_left"]


def fake_gesture(class_index: int, seed: int, duration_s: float = 2.0, *, t0_us: int = 0):
    """A dot moving across a 128x128 sensor, left to right (class 0) or back (class 1)."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * 3000)
    dur_us = int(duration_s * 1e6)
    t = np.sort(rng.integers(0, dur_us, n))
    pos = (t / dur_us * 2 + rng.uniform(0, 1)) % 1.0
    x = pos * 127 if class_index == 0 else (1 - pos) * 127
    ev = np.empty(n, EVENT_DTYPE)
    ev["x"] = np.clip(x + rng.normal(0, 3, n), 0, 127)
    ev["y"] = np.clip(64 + 30 * np.sin(2 * np.pi * pos) + rng.normal(0, 3, n), 0, 127)
    ev["t"] = t + t0_us
    ev["p"] = rng.random(n) < 0.5
    return ev


@pytest.fixture(autouse=True)
def _fake_synth(monkeypatch):
    """``--data synth`` knows two classes on a 128x128 sensor; small torch thread pool."""
    import dvsapp.train.datasets as ds

    monkeypatch.setattr(ds, "_synth_meta", lambda: (list(CLASSES), (128, 128, 2)))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_config(tmp_path: Path, arch: str = "resnet_small", **kw):
    from dvsapp.train.loop import TrainConfig

    base = {
        "arch": arch,
        "data": "synth",
        "time_steps": 4,
        "bin_ms": 100.0,
        "input_size": (16, 16),
        "width": 4,
        "epochs": 3,
        "batch_size": 8,
        "lr": 1e-2,
        "device": "cpu",
        "workers": 0,
        "gen_workers": 1,
        "n_per_class": 16,
        "val_per_class": 8,
        "cache_dir": str(tmp_path / "cache"),
        "logdir": str(tmp_path / f"run-{arch}"),
        "progress": False,
    }
    base.update(kw)
    return TrainConfig(**base)


def run(cfg, **kw):
    from dvsapp.train.loop import train

    return train(cfg, generator=fake_gesture, **kw)


# -- training -------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["resnet_small", "vgg_small"])
def test_training_lowers_the_loss(tmp_path, arch):
    result = run(tiny_config(tmp_path, arch, epochs=8, out=str(tmp_path / "m.safetensors")))
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0] - 0.05, losses
    from dvsapp.snn.checkpoint import load_checkpoint

    ck = load_checkpoint(tmp_path / "m.safetensors")
    assert ck.class_names == CLASSES and ck.time_steps == 4
    assert ck.binning.time_window_us == 100_000 and ck.binning.input_size == (16, 16)
    assert ck.metrics["val_accuracy"] == result.best_accuracy
    assert len(ck.metrics["val_accuracy_per_step"]) == 4
    assert 1 <= ck.metrics["mean_exit_step"] <= 4
    assert ck.trained_on == "synth" and ck.extra["train"]["lr"] == 1e-2
    assert ck.extra["seed"] == 0


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def test_resume_equals_an_uninterrupted_run(tmp_path):
    from dvsapp.train import resume as rs

    straight = tiny_config(tmp_path, epochs=2, logdir=str(tmp_path / "a"))
    run(straight)
    first = tiny_config(tmp_path, epochs=2, logdir=str(tmp_path / "b"), stop_after_epochs=1)
    r1 = run(first)
    assert [h["epoch"] for h in r1.history] == [0]
    r2 = run(tiny_config(tmp_path, epochs=2, logdir="ignored"), resume=tmp_path / "b")
    assert [h["epoch"] for h in r2.history] == [0, 1]
    for name in (rs.MODEL_FILE, rs.OPTIM_FILE):
        a, b = _tensors(tmp_path / "a" / name), _tensors(tmp_path / "b" / name)
        assert a.keys() == b.keys() and a
        for k in a:
            assert torch.equal(a[k], b[k]), f"{name}: {k} differs"
    sa = json.loads((tmp_path / "a" / rs.STATE_FILE).read_text())
    sb = json.loads((tmp_path / "b" / rs.STATE_FILE).read_text())
    assert sa["history"][1]["train_loss"] == sb["history"][1]["train_loss"]
    with pytest.raises(ConfigError, match="already finished"):
        run(tiny_config(tmp_path, epochs=2), resume=tmp_path / "b")


def test_optimizer_state_round_trips_without_pickle(tmp_path):
    from dvsapp.train.resume import load_training_state, save_training_state

    p = torch.nn.Parameter(torch.randn(3, 2))
    for make in (
        lambda ps: torch.optim.AdamW(ps, lr=0.1),
        lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9),
    ):
        opt = make([p])
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
        for _ in range(2):
            p.grad = torch.ones_like(p)
            opt.step()
            sched.step()
        save_training_state(tmp_path / "o.safetensors", opt, sched)
        assert b"pickle" not in (tmp_path / "o.safetensors").read_bytes()[:8]
        opt2 = make([p])
        sched2 = torch.optim.lr_scheduler.CosineAnnealingLR(opt2, T_max=10)
        load_training_state(tmp_path / "o.safetensors", opt2, sched2)
        s1, s2 = opt.state_dict(), opt2.state_dict()
        assert s1["param_groups"] == s2["param_groups"]
        for k, v in s1["state"][0].items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(s2["state"][0][k]))
        assert sched2.state_dict() == sched.state_dict()


# -- IIR ------------------------------------------------------------------------------------
def test_shrink_keeps_the_first_bntt_tables():
    from dvsapp.snn.registry import build_model, default_config
    from dvsapp.train.iir import shrink_model, stage_steps

    m = build_model(default_config("vgg_small", width=4, input_size=(16, 16), time_steps=4))
    with torch.no_grad():
        for t in m.state_dict().values():
            t.copy_(torch.randn_like(t).abs() if t.is_floating_point() else t)
    s = shrink_model(m, 2)
    assert s.config.time_steps == 2
    big, small = m.state_dict(), s.state_dict()
    for k, v in small.items():
        ref = big[k][:2] if ".bntt." in k else big[k]
        assert torch.equal(v, ref), k
    assert stage_steps(4, 1) == [4, 3, 2, 1] and stage_steps(10, 1, 4) == [10, 6, 2, 1]
    with pytest.raises(ConfigError):
        stage_steps(4, 4)


@pytest.mark.parametrize("arch", ["resnet_small", "vgg_small"])
def test_iir_down_to_one_step(tmp_path, arch):
    from dvsapp.snn.checkpoint import load_checkpoint
    from dvsapp.train.datasets import SynthGestures
    from dvsapp.train.evaluate import accuracy_per_step, collect_step_logits

    cfg = tiny_config(tmp_path, arch, epochs=8, iir=1, iir_epochs=3,
                      out=str(tmp_path / "final.safetensors"))  # fmt: skip
    result = run(cfg)
    run_dir = Path(cfg.logdir)
    assert [s["time_steps"] for s in result.stages] == [4, 3, 2, 1]
    summary = json.loads((run_dir / "iir.json").read_text())
    assert summary["window_us"] == 400_000
    for t in (4, 3, 2, 1):
        ck = load_checkpoint(run_dir / f"stage_T{t}.safetensors")
        assert ck.time_steps == t and ck.model.config.time_steps == t
        assert ck.binning.time_window_us == round(400_000 / t)  # the window stays 400 ms
        if arch == "vgg_small":
            assert ck.model.fc1.bntt.weight.shape[0] == t
        ck.model.reset()
        out = ck.model.step(torch.zeros(1, 2, 16, 16))
        assert out.shape == (1, 2)
        ds = SynthGestures("test", 8, ck.binning, t, generator=fake_gesture, cache_dir=False,
                           class_names=CLASSES, workers=1)  # fmt: skip
        logits, labels = collect_step_logits(ck.model, ds)
        assert accuracy_per_step(logits, labels)[-1] > 0.6, (t, "not better than chance")
    assert load_checkpoint(tmp_path / "final.safetensors").time_steps == 1


# -- logging and evaluation -----------------------------------------------------------------
def test_tensorboard_holds_firing_rates(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from dvsapp.snn.registry import build_model, default_config

    cfg = tiny_config(tmp_path, "vgg_small", epochs=2)
    run(cfg)
    events = list(Path(cfg.logdir).glob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(cfg.logdir))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    layers = build_model(
        default_config("vgg_small", width=4, input_size=(16, 16), time_steps=4, num_classes=2)
    ).spiking_layers()
    for name in layers:
        values = acc.Scalars(f"firing_rate/{name}")
        assert len(values) == 2 and all(0.0 <= v.value <= 1.0 for v in values)
    assert any(v.value > 0 for name in layers for v in acc.Scalars(f"firing_rate/{name}"))
    for tag in ("loss/train", "accuracy/val", "lr"):
        assert tag in tags


@pytest.mark.parametrize("arch", ["resnet_small", "vgg_small"])
def test_mixed_precision_epoch_matches_float32(arch):
    """The AMP branch of ``train_epoch`` (bfloat16 autocast on the CPU, float16 + GradScaler
    on CUDA) runs the network in low precision, gives the float32 loss to within bfloat16's
    error, and updates the weights."""
    from torch.utils.data import DataLoader, TensorDataset

    from dvsapp.snn.registry import build_model, default_config
    from dvsapp.train.loop import train_epoch

    torch.manual_seed(0)
    x = (torch.rand(8, 4, 2, 16, 16) < 0.2).float()  # [B, T, C, H, W], as the loader gives
    y = torch.arange(8) % 2
    cfg = default_config(arch, width=4, input_size=(16, 16), time_steps=4, num_classes=2)
    init = build_model(cfg).state_dict()
    losses, dtypes = {}, {}
    for amp in (False, True):
        model = build_model(cfg)
        model.load_state_dict(init)
        seen: list[torch.dtype] = []
        model.register_forward_hook(lambda _m, _i, out, seen=seen: seen.append(out.dtype))
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
        loss_sum, _, n = train_epoch(
            model, DataLoader(TensorDataset(x, y), batch_size=8), opt, sched, None,
            torch.device("cpu"), amp=amp, grad_clip=1.0, progress=False, desc="",
        )  # fmt: skip
        losses[amp], dtypes[amp] = loss_sum / n, seen
        moved = [not torch.equal(v, init[k]) for k, v in model.state_dict().items()]
        assert any(moved)
    assert dtypes == {False: [torch.float32], True: [torch.bfloat16]}
    assert math.isfinite(losses[True]) and losses[True] == pytest.approx(losses[False], rel=0.05)


def test_firing_rate_monitor_counts_step_and_forward():
    from dvsapp.snn.registry import build_model, default_config
    from dvsapp.train.logging import FiringRateMonitor

    m = build_model(default_config("resnet_small", width=4, input_size=(16, 16), time_steps=4))
    m.eval()
    x = torch.rand(4, 2, 2, 16, 16) * 3
    with FiringRateMonitor(m) as mon, torch.no_grad():
        m(x)
    rates = mon.rates()
    assert set(rates) == set(m.spiking_layers())
    assert "dynamics" not in next(iter(m.spiking_layers().values())).__dict__  # unpatched


def test_evaluate_writes_table_plot_and_json(tmp_path, capsys):
    from dvsapp.train.evaluate import evaluate_checkpoint

    ckpt = tmp_path / "v.safetensors"
    run(tiny_config(tmp_path, "vgg_small", epochs=2, out=str(ckpt)))
    rep = evaluate_checkpoint(ckpt, "synth", out_dir=tmp_path / "ev", device="cpu",
                              n_per_class=4, generator=fake_gesture, cache_dir=False)  # fmt: skip
    assert len(rep["accuracy_per_step"]) == 4 and rep["samples"] == 8
    assert [r["threshold"] for r in rep["confidence_exit"]] == [0.5, 0.7, 0.8, 0.9, 0.95]
    for r in rep["confidence_exit"]:
        assert 1 <= r["mean_exit_step"] <= 4
    te = rep["temporal_exit"]
    assert len(te["mean_gamma"]) == 4 and all(1 <= r["exit_step"] <= 4 for r in te["exits"])
    png = (tmp_path / "ev" / "evaluation.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((tmp_path / "ev" / "evaluation.json").read_text())
    assert saved["accuracy_per_step"] == rep["accuracy_per_step"]
    out = capsys.readouterr().out
    table = out[out.index(" step  accuracy") :].splitlines()[1:5]
    assert [int(line.split()[0]) for line in table] == [1, 2, 3, 4]


# -- data -----------------------------------------------------------------------------------
def test_synth_seeds_are_disjoint_and_cached(tmp_path):
    from dvsapp.binning import BinningConfig
    from dvsapp.train.datasets import SynthGestures, synth_seed

    assert synth_seed("train", 3, 5) == 5 and synth_seed("val", 0, 5) == 1_000_005
    assert synth_seed("test", 1, 0) == 2_000_000
    b = BinningConfig((128, 128), time_window_us=100_000, input_size=(16, 16))
    calls = []

    def gen(c, seed, duration_s=2.0, *, t0_us=0):
        calls.append(seed)
        return fake_gesture(c, seed, duration_s, t0_us=t0_us)

    kw = {"generator": gen, "cache_dir": tmp_path, "class_names": CLASSES, "workers": 1}
    tr = SynthGestures("train", 3, b, 4, **kw)
    va = SynthGestures("val", 3, b, 4, **kw)
    assert not set(tr.seeds) & set(va.seeds)
    n = len(calls)
    again = SynthGestures("train", 3, b, 4, **kw)  # from the cache
    assert len(calls) == n and np.array_equal(again.frames, tr.frames)
    x, y = tr[0]
    assert x.shape == (4, 2, 16, 16) and x.dtype == torch.float32 and y == 0
    assert tr.frames.dtype == np.uint8 and tr.frames.shape[1] == 20
    tr.set_epoch(1)
    crops = {tr[0][0].sum().item() for _ in range(3)}
    assert len(crops) == 1  # the crop depends on (seed, epoch, index) only
    e, _ = va[0]
    assert torch.equal(e, va[0][0])


def test_prebuilt_caches_generate_each_clip_once_and_equal_the_datasets_own(tmp_path):
    """Two input sizes and two set sizes from one generation: each cache holds what the
    dataset builds by itself, and the dataset then reads it without generating."""
    from dvsapp.binning import BinningConfig
    from dvsapp.train.datasets import SynthGestures, prebuild_synth_caches

    big = BinningConfig((128, 128), time_window_us=100_000, input_size=(16, 16))
    small = BinningConfig((128, 128), time_window_us=100_000, input_size=(8, 8))
    calls = []

    def gen(c, seed, duration_s=2.0, *, t0_us=0):
        calls.append((c, seed))
        return fake_gesture(c, seed, duration_s, t0_us=t0_us)

    kw = {"generator": gen, "class_names": CLASSES, "workers": 1}
    paths = prebuild_synth_caches(
        "val", [(big, 3), (small, 3), (big, 2)], 4, cache_dir=tmp_path, **kw
    )
    assert len(paths) == 3 and all(p.is_file() for p in paths)
    assert sorted(calls) == [(c, 1_000_000 + k) for c in range(2) for k in range(3)]
    calls.clear()
    for binning, n in [(big, 3), (small, 3), (big, 2)]:
        cached = SynthGestures("val", n, binning, 4, cache_dir=tmp_path, **kw)
        assert not calls  # read from the prebuilt cache
        own = SynthGestures("val", n, binning, 4, cache_dir=False, **kw)
        assert own.frames.shape[0] == 2 * n
        assert np.array_equal(cached.frames, own.frames)
        calls.clear()
    assert prebuild_synth_caches("val", [(small, 3)], 4, cache_dir=tmp_path, **kw) == paths[1:2]
    assert not calls  # nothing to do


def test_recording_windows_follow_label_segments(tmp_path):
    from dvsapp.binning import BinningConfig
    from dvsapp.events.types import LabelSegment
    from dvsapp.events.writers import write_npz
    from dvsapp.train.datasets import RecordingWindows, make_datasets

    segs, parts, t0 = [], [], 0
    for k in range(5):
        c = k % 2
        ev = fake_gesture(c, k, 1.0, t0_us=t0)
        parts.append(ev)
        segs.append(LabelSegment(c, CLASSES[c], t0, t0 + 1_000_000))
        t0 += 1_200_000
    for i in range(5):
        write_npz(tmp_path / f"rec{i}.npz", [np.concatenate(parts)], (128, 128, 2), segs)
    b = BinningConfig((128, 128), time_window_us=100_000, input_size=(16, 16))
    ds = RecordingWindows([tmp_path / "rec0.npz"], b, 4, CLASSES)
    assert len(ds) == 5 * 2  # two 400 ms windows per 1 s segment
    assert ds.targets() == [0, 0, 1, 1, 0, 0, 1, 1, 0, 0]
    x, y = ds[3]
    assert x.shape == (4, 2, 16, 16) and y == 1 and x.sum() > 0
    train, val = make_datasets(f"synth:{tmp_path}", b, 4)
    assert len(train) == 4 * 10 and len(val) == 10  # rec4 (index 4) is the val file


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("imagenet", "unknown kind"),
        ("dvsgesture", "needs a folder"),
        ("dvsgesture:{missing}", "is not a directory"),
        ("dvsgesture:{empty}", "trials_to_train"),
        ("cifar10dvs:{empty}", "no class folders"),
        ("tonic-dvsgesture:{empty}", "never downloads"),
        ("tonic-cifar10dvs:{empty}", "never downloads"),
        ("synth:{empty}", "no recordings"),
    ],
)
def test_bad_data_specs_are_one_line_errors(tmp_path, spec, match):
    from dvsapp.train.datasets import parse_data_spec

    (tmp_path / "empty").mkdir()
    text = spec.format(missing=tmp_path / "nope", empty=tmp_path / "empty")
    with pytest.raises(ConfigError, match=match) as e:
        parse_data_spec(text)
    assert "\n" not in str(e.value)


def test_cli_train_and_evaluate(tmp_path, monkeypatch, capsys):
    import dvsapp.train.datasets as ds
    from dvsapp.cli import build_parser, main  # the real entry point: one line, status 2

    monkeypatch.setattr(ds, "_default_generator", lambda: fake_gesture)
    parser = build_parser()

    ckpt = tmp_path / "c.safetensors"
    common = ["--cache-dir", str(tmp_path / "cache"), "--device", "cpu", "--workers", "0"]
    argv = ["train", "--arch", "resnet_small", "--data", "synth", "--n-per-class", "4",
            "--time-steps", "4", "--bin-ms", "100", "--input-size", "16x16", "--width", "4",
            "--epochs", "1", "--batch-size", "4", "--logdir", str(tmp_path / "r"),
            "--neuron", "threshold=0.3", "--out", str(ckpt), *common]  # fmt: skip
    assert main(argv) == 0 and ckpt.is_file()
    from dvsapp.snn.checkpoint import load_checkpoint

    model = load_checkpoint(ckpt).model  # --neuron reached the model and its checkpoint
    assert model.config.neuron["threshold"] == 0.3
    assert {layer.threshold for layer in model.spiking_layers().values()} == {0.3}
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--neuron", "threshold"])
    capsys.readouterr()
    again = [*argv[: argv.index("--out")], "--out", str(tmp_path / "c2.safetensors"), *common]
    assert main([*again, "--init", str(ckpt), "--logdir", str(tmp_path / "r2")]) == 0
    assert f"initialised from {ckpt}" in capsys.readouterr().err
    assert main(["evaluate", str(ckpt), "--data", "synth", "--n-per-class", "2",
                 "--out-dir", str(tmp_path / "e"), "--device", "cpu"]) == 0  # fmt: skip
    assert (tmp_path / "e" / "evaluation.png").is_file()
    capsys.readouterr()
    assert main(["train", "--data", "nosuch:x", *common]) == 2
    assert main(["train", "--data", f"dvsgesture:{tmp_path / 'no'}", *common]) == 2
    assert main(["train", "--resume", str(tmp_path / "no"), *common]) == 2
    assert main(["evaluate", str(ckpt), "--data", "cifar10dvs:/nonexistent"]) == 2
    nope = tmp_path / "nope"
    assert main(["train", "--arch", "bogus", "--logdir", str(nope), *common]) == 2
    assert not nope.exists()  # a bad arch fails before the run folder is made
    out, err = capsys.readouterr()
    lines = [ln for ln in err.splitlines() if ln.startswith("dvsapp: error: ")]
    assert len(lines) == 5, err
    assert "dvsapp:" not in out and "Traceback" not in err


def test_tonic_samples_become_our_events_and_windows():
    """tonic's DVSGesture gives structured x, y, p, t (t already in us, int64) and CIFAR10DVS
    t, x, y, p (uint64/uint16): both become our dtype and bin like our own events."""
    from dvsapp.binning import BinningConfig
    from dvsapp.train.datasets import TonicWindows, as_events

    ev = fake_gesture(1, 3, 1.0)
    gesture = np.empty(len(ev), [("x", "<i2"), ("y", "<i2"), ("p", "?"), ("t", "<i8")])
    cifar = np.empty(len(ev), [("t", "<u8"), ("x", "<u2"), ("y", "<u2"), ("p", "?")])
    for arr in (gesture, cifar):
        for f in ("x", "y", "t", "p"):
            arr[f] = ev[f]
        assert np.array_equal(as_events(arr), ev) and as_events(arr).dtype == EVENT_DTYPE

    class FakeTonic:
        sensor_size = (128, 128, 2)
        targets = (1,)

        def __getitem__(self, i):
            return gesture, 1

    b = BinningConfig((128, 128), time_window_us=100_000, input_size=(16, 16))
    ds = TonicWindows(FakeTonic(), [0], b, 4, CLASSES)
    x, y = ds[0]
    assert y == 1 and x.shape == (4, 2, 16, 16)
    assert x.sum() == ((ev["t"] >= ev["t"][0]) & (ev["t"] < ev["t"][0] + 400_000)).sum()


def test_init_copies_matching_tensors_from_the_shipped_models():
    """--init: fine-tune the shipped synthetic-gesture models to another task or T."""
    from pathlib import Path

    from dvsapp.snn.checkpoint import load_checkpoint
    from dvsapp.snn.registry import build_model, default_config
    from dvsapp.train.init import init_from_checkpoint

    models = Path(__file__).resolve().parents[1] / "models"
    resnet = models / "resnet_small_synth.safetensors"
    shipped = load_checkpoint(resnet).model.state_dict()
    five = build_model(default_config("resnet_small", num_classes=5, time_steps=10))
    kept = init_from_checkpoint(five, resnet)
    assert kept == ["fc.weight", "fc.bias"]  # only the classifier differs
    for name, tensor in five.state_dict().items():
        if name not in kept:
            assert torch.equal(tensor, shipped[name]), name

    vgg = models / "vgg_small_synth.safetensors"
    tables = load_checkpoint(vgg).model.state_dict()
    short = build_model(default_config("vgg_small", input_size=(32, 32), time_steps=6))
    assert init_from_checkpoint(short, vgg) == []
    gamma = "features.0.bntt.weight"
    assert torch.equal(short.state_dict()[gamma], tables[gamma][:6])  # the first 6 steps
    long = build_model(default_config("vgg_small", input_size=(32, 32), time_steps=12))
    assert gamma in init_from_checkpoint(long, vgg)  # no tables for steps 11-12: fresh
    with pytest.raises(ConfigError, match="needs a vgg_small checkpoint"):
        init_from_checkpoint(short, resnet)


def test_synth_generator_2_is_chosen_and_named(tmp_path):
    """``dvsapp train --synth-generator 2`` trains on the second generator's clips (its own
    cache key) and its checkpoints say so; the default stays the first."""
    from dvsapp.cli import build_parser
    from dvsapp.synth import v2
    from dvsapp.train.datasets import parse_data_spec
    from dvsapp.train.loop import TrainConfig, synth_generator, trained_on_text

    args = build_parser().parse_args(["train", "--synth-generator", "2"])
    assert args.synth_generator == 2
    two, one = TrainConfig(synth_generator=2), TrainConfig()
    assert synth_generator(two) is v2.gesture_events
    assert synth_generator(one) is None  # the datasets' default: version 1
    injected = object()
    assert synth_generator(two, injected) is injected  # a test's fake wins
    assert trained_on_text(parse_data_spec("synth"), two) == "synth (generator 2)"
    assert trained_on_text(parse_data_spec("synth"), one) == "synth"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--synth-generator", "5"])
    from dvsapp.pipeline.advice import SYNTHETIC, training_data

    assert training_data("synth (generator 2)") == SYNTHETIC


def test_evaluate_draws_synthetic_clips_from_the_generator_the_checkpoint_trained_on(
    monkeypatch,
):
    """`dvsapp evaluate --data synth`: a checkpoint trained on generator 2 ("synth (generator
    2)") is evaluated on generator 2's clips, one trained on version 1 on version 1's, and
    --synth-generator overrides either."""
    from pathlib import Path

    import dvsapp.train.datasets as ds
    from dvsapp.synth import v2
    from dvsapp.train.evaluate import evaluate_checkpoint, trained_generator

    assert trained_generator("synth (generator 2)") == 2
    assert trained_generator("synth") == trained_generator("") == 1
    seen = []

    class Stop(Exception):
        pass

    def capture(*args, generator=None, **kw):
        seen.append(generator)
        raise Stop

    monkeypatch.setattr(ds, "SynthGestures", capture)
    vgg = Path(__file__).resolve().parents[1] / "models" / "vgg_small_synth.safetensors"
    for version in (None, 1, 2):
        with pytest.raises(Stop):
            evaluate_checkpoint(vgg, "synth", device="cpu", synth_generator=version)
    from dvsapp.snn.checkpoint import inspect_checkpoint
    from dvsapp.synth.generate import version_module

    shipped = trained_generator(inspect_checkpoint(vgg)["trained_on"])
    assert shipped > 1  # the shipped models train on a later version
    assert seen[0] is version_module(shipped).gesture_events
    assert seen[1:] == [None, v2.gesture_events]  # None: the datasets' default, version 1
