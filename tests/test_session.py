"""The session core: one source, one or more models stepped on the same events.

References: the sequence run (the whole recording binned at once by ``bin_events``, then the
Stepper over the frames), a model running alone (each lane of a two-model session must give
exactly its solo records), ``dvsapp run`` and the app's worker on the same recording.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from toy_snn import single_thread

from dvsapp.binning import bin_events, binning_for_recording
from dvsapp.cli import main
from dvsapp.events.detect import open_reader
from dvsapp.events.sources import ReplaySource
from dvsapp.events.writers import write_npz
from dvsapp.pipeline import Mailbox, Pipeline, PipelineSettings
from dvsapp.session.core import Lane, LaneStep, Session
from dvsapp.session.loading import LaneSettings, LoadedModel, layer_shapes
from dvsapp.snn.checkpoint import load_checkpoint
from dvsapp.snn.stepper import Stepper

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
RESNET = MODELS / "resnet_small_synth.safetensors"
COLLAPSED = MODELS / "resnet_small_synth_nonorm_collapsed.safetensors"
GESTURE = MODELS / "snntorch_dvs_gesture.safetensors"  # 32x32, 40 ms bins, denoised 10 ms
SPAN_US = 2_600_000  # the first 2.6 s of the shipped recording (two gestures)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with single_thread():
        yield


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped synthetic recording's first seconds, with its labels."""
    reader = open_reader(ROOT / "recordings" / "synth_seed9000000.aedat4")
    events = reader.read_all()
    events = events[events["t"] < events["t"][0] + SPAN_US]
    path = tmp_path_factory.mktemp("session") / "head.npz"
    labels = ROOT / "recordings" / "synth_seed9000000.aedat"
    write_npz(path, [events], reader.sensor_size, labels=open_reader(labels).labels)
    return path


def _loaded(path: Path) -> LoadedModel:
    ckpt = load_checkpoint(path, "cpu")
    dev = torch.device("cpu")
    return LoadedModel(ckpt, path.stem, True, dev, layer_shapes(ckpt.model, dev))


def _drive(recording: Path, models: list[Path], settings: LaneSettings) -> list[LaneStep]:
    source = ReplaySource(recording, speed=math.inf)
    lanes = [
        Lane(i, _loaded(p), settings, source.sensor_size, recording) for i, p in enumerate(models)
    ]
    session = Session(lanes, source)
    with source:
        steps = list(session.drive())
    session.close()
    return steps


def _solo_records(steps: list[LaneStep], lane: int) -> list[tuple]:
    out = []
    for s in steps:
        if s.lane != lane:
            continue
        r = s.record
        wr = s.window_result
        out.append(
            (
                None if r is None else (r.window, r.step, r.t_start_us, r.pred, r.probs.tolist()),
                None if r is None or r.rates is None else r.rates.tolist(),
                None if wr is None else (wr.window, wr.pred, wr.exit_step, wr.probs.tolist()),
            )
        )
    return out


SHIPPED = [
    RESNET,
    COLLAPSED,
    MODELS / "vgg_small_synth.safetensors",
    GESTURE,
    MODELS / "cnn_sinabs_nmnist.safetensors",  # 1 ms bins, the recording downsampled to 34x34
]


@pytest.mark.parametrize("model", SHIPPED, ids=lambda p: p.stem)
def test_one_lane_equals_the_sequence_run(recording: Path, model: Path) -> None:
    """The session's steps are the Stepper over the whole recording binned at once (every
    shipped model, on the shipped recording's first seconds)."""
    ckpt = load_checkpoint(model, "cpu")
    reader = open_reader(recording)
    config = binning_for_recording(ckpt.binning, reader.sensor_size, recording)
    frames = bin_events(reader.read_all(), config)
    stepper = Stepper(ckpt.model, "cpu", class_names=ckpt.class_names, rates=True)
    ref = [
        stepper.push(frames.data[i], int(frames.t_start_us[i]), int(frames.t_end_us[i]))
        for i in range(len(frames))
    ]
    steps = [s for s in _drive(recording, [model], LaneSettings(health=None)) if s.record]
    assert len(steps) == len(ref) > 40
    for s, r in zip(steps, ref, strict=True):
        assert s.record is not None
        assert (s.t_start_us, s.t_end_us) == (r.t_start_us, r.t_end_us)
        assert s.record.pred == r.pred
        np.testing.assert_allclose(s.record.probs, r.probs, atol=1e-6)
        np.testing.assert_allclose(s.record.rates, r.rates, atol=1e-7)


def test_two_models_each_equal_running_it_alone(recording: Path) -> None:
    """Different binnings (64x64 / 50 ms against 32x32 / 40 ms, denoised) and class sets on
    one stream: each lane's records equal the model alone, and the lanes advance together."""
    settings = LaneSettings(exit_threshold=0.9, analysis=True)
    both = _drive(recording, [RESNET, GESTURE], settings)
    alone = [_drive(recording, [m], settings) for m in (RESNET, GESTURE)]
    for lane, solo in enumerate(alone):
        mine = _solo_records(both, lane)
        assert mine == _solo_records(solo, 0)
        assert len(mine) > 40
        a = [s.analysis for s in both if s.lane == lane and s.record is not None]
        b = [s.analysis for s in solo if s.record is not None]
        assert [x.sparsity for x in a] == [y.sparsity for y in b]  # type: ignore[union-attr]
    starts = [s.t_start_us for s in both if s.record is not None]
    assert starts == sorted(starts)  # stream order across the lanes
    assert {s.lane for s in both} == {0, 1}


def test_probes_do_not_change_what_the_model_does(recording: Path) -> None:
    """Taps and in-depth probes on or off: the same predictions, probabilities and rates."""
    plain = _drive(recording, [COLLAPSED], LaneSettings())
    probed = LaneSettings(raster_neurons=64, analysis=True, channel_layer="layer1.0.lif1")
    tapped = _drive(recording, [COLLAPSED], probed)
    assert _solo_records(plain, 0) == _solo_records(tapped, 0)
    step = next(s for s in tapped if s.record is not None)
    assert step.analysis is not None and step.spike_map is not None
    assert step.spike_map.shape == _loaded(COLLAPSED).shapes["layer1.0.lif1"]
    assert all(len(v) == 64 for v in step.raster.values() if v.size)
    # on a CPU the stepper's rates are the probes' own array (the layers skipped theirs)
    assert all(s.record.rates is s.analysis.layer_rates for s in tapped if s.record)


def test_probes_on_a_cpu_give_the_stepper_its_rates(recording: Path) -> None:
    """With the in-depth probes on a CPU, the layers skip their own rate reduction and the
    stepper's rates and health reports are the probes' counts: the same float32 figures,
    step for step, as without the probes."""
    source = ReplaySource(recording, speed=math.inf)
    loaded = _loaded(RESNET)
    lanes = [Lane(i, loaded if i else _loaded(RESNET), LaneSettings(analysis=bool(i)),
                  source.sensor_size, recording) for i in (0, 1)]  # fmt: skip
    stepper = lanes[1].chain.stepper
    assert stepper.rates_from_analysis and stepper.analyzer is lanes[1].analyzer
    session = Session(lanes, source)
    got: dict[int, list] = {0: [], 1: []}
    with source:
        for s in session.drive():
            if s.record is None:
                continue
            r = s.record
            got[s.lane].append((r.rates.tobytes(), r.health))
            if s.lane == 1:
                assert r.analysis is s.analysis is not None
                layers = loaded.ckpt.model.spiking_layers().values()
                assert all(lay.record.rate is None for lay in layers)
    assert got[0] == got[1] and len(got[1]) > 40
    lanes[1].retap(LaneSettings())  # probes off: the layers' own rates again
    assert stepper.analyzer is None and not stepper.rates_from_analysis
    session.close()


def _run_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[list[dict], str]:
    assert main(["run", *args, "--json", "--threads", "1"]) == 0
    cap = capsys.readouterr()
    return [json.loads(line) for line in cap.out.splitlines()], cap.err


def test_run_two_models_names_every_line(recording: Path, capsys: pytest.CaptureFixture) -> None:
    lines, err = _run_json(
        [str(recording), "--model", str(RESNET), "--model", str(GESTURE)], capsys
    )
    windows, summary = lines[:-1], lines[-1]["summary"]
    assert {w["model"] for w in windows} == {RESNET.stem, GESTURE.stem}
    assert [m["model"] for m in summary["models"]] == [RESNET.stem, GESTURE.stem]
    assert "bin the stream differently" in err and "each bins for itself" in err
    solo, _ = _run_json([str(recording), "--model", str(GESTURE)], capsys)
    mine = [w for w in windows if w["model"] == GESTURE.stem]
    assert [(w["pred"], w["exit_step"], w["probs"]) for w in mine] == [
        (w["pred"], w["exit_step"], w["probs"]) for w in solo[:-1]
    ]
    assert solo[-1]["summary"]["windows"] == len(mine)


def test_run_export_path_fails_before_anything_runs(
    recording: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "missing" / "out.parquet"
    t0 = time.perf_counter()
    assert main(["run", str(recording), "--model", str(RESNET), "--export", str(bad)]) == 2
    assert time.perf_counter() - t0 < 30
    cap = capsys.readouterr()
    assert cap.out == ""
    err = [line for line in cap.err.splitlines() if line.strip()]
    assert len(err) == 1 and str(bad) in err[0] and "does not exist" in err[0]
    assert not bad.parent.exists()


def test_run_export_rows_per_step_and_model(
    recording: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pd = pytest.importorskip("pandas")
    out = tmp_path / "session.parquet"
    lines, _ = _run_json(
        [str(recording), "--model", str(RESNET), "--model", str(COLLAPSED), "--export", str(out)],
        capsys,
    )
    table = pd.read_parquet(out)
    summary = {m["model"]: m for m in lines[-1]["summary"]["models"]}
    for name in (RESNET.stem, COLLAPSED.stem):
        rows = table[table["model"] == name]
        assert len(rows) == summary[name]["steps"]
        windows = [w for w in lines[:-1] if w["model"] == name]
        ends = rows[rows["exit_step"].notna()]
        assert list(ends["pred_name"]) == [w["label"] for w in windows]
    healthy = table[table["model"] == RESNET.stem]["rate/layer3.0.lif2"].mean()
    collapsed = table[table["model"] == COLLAPSED.stem]["rate/layer3.0.lif2"].mean()
    assert healthy > 10 * collapsed


@pytest.mark.parametrize("model", [RESNET, GESTURE], ids=lambda p: p.stem)
def test_the_app_steps_as_run_does(
    recording: Path, model: Path, capsys: pytest.CaptureFixture
) -> None:
    """The app's worker (the same session, driven by its own thread) gives the windows that
    ``dvsapp run`` gives on the same recording and model."""
    lines, _ = _run_json([str(recording), "--model", str(model)], capsys)
    settings = PipelineSettings(
        recording=recording, checkpoint=model, speed=math.inf, loop=False, device="cpu"
    )
    pipe = Pipeline(settings, Mailbox(maxlen=100_000))
    frames = []
    pipe.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            frames += pipe.mailbox.drain()
            if pipe.stats().state == "ended":
                break
            time.sleep(0.01)
        frames += pipe.mailbox.drain()
    finally:
        pipe.stop()
    got = [(f.window_result.pred, f.window_result.exit_step) for f in frames if f.window_result]
    assert got == [(w["pred"], w["exit_step"]) for w in lines[:-1]]
    assert all(f.analysis is not None for f in frames)


def test_silent_channels_equal_the_spike_maps_of_the_window(recording: Path) -> None:
    """Every conv layer's silent-channel count, step by step, equals the channels with no
    spike in the window so far, counted from the whole spike maps (the collapsed model,
    whose last layer is 1-D and silent: it must not count as a channel of the one before)."""
    source = ReplaySource(recording, speed=math.inf)
    loaded = _loaded(COLLAPSED)
    settings = LaneSettings(raster_neurons=1, analysis=True)  # the tap keeps whole spike maps
    lane = Lane(0, loaded, settings, source.sensor_size, recording)
    layers = loaded.ckpt.model.spiking_layers()
    convs = [n for n, shape in loaded.shapes.items() if len(shape) == 3]
    acc: dict[str, np.ndarray] = {}
    checked = 0
    with source:
        for st in Session([lane], source).drive():
            if st.record is None:
                continue
            assert st.analysis is not None
            for name in convs:
                spikes = layers[name].record.spikes[0].sum(dim=(1, 2)).numpy()
                acc[name] = spikes if st.record.step == 1 else acc[name] + spikes
                stats = st.analysis.channels[name]
                assert stats.silent == int((acc[name] == 0).sum()) <= len(stats.rates)
                checked += stats.silent
    lane.close()
    assert checked > 1000  # the collapsed model's deep layers are silent


def test_run_no_probes_keeps_the_windows_and_drops_the_probe_keys(
    recording: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with_probes, _ = _run_json([str(recording), "--model", str(RESNET), "--rates"], capsys)
    without, _ = _run_json(
        [str(recording), "--model", str(RESNET), "--rates", "--no-probes"], capsys
    )
    assert {"vm", "synops", "silent_channels", "sparsity"} <= set(with_probes[0])
    assert not {"vm", "synops", "silent_channels", "sparsity", "vm_hist"} & set(without[0])
    keys = ("window", "pred", "probs", "exit_step", "rates")
    assert [[w[k] for k in keys] for w in without[:-1]] == [
        [w[k] for k in keys] for w in with_probes[:-1]
    ]
