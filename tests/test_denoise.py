"""Denoising as a binning stage: equal to tonic 1.7.0's ``Denoise(filter_time=T)``.

tonic is the independent reference: on real recordings the streaming filter keeps exactly the
events ``tonic.transforms.Denoise`` keeps from the whole array, in the same order, however the
stream is split into packets; and ``StreamingBinner`` with ``denoise_us`` gives the frames of
tonic's ``Denoise -> Downsample -> ToFrame`` pipeline (NeuroBench's DVS Gesture input).
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tonic.transforms import Denoise, Downsample, ToFrame

from dvsapp.binning import (
    BinningConfig,
    Denoiser,
    Frames,
    StreamingBinner,
    bin_events,
    denoise_events,
)
from dvsapp.errors import ConfigError
from dvsapp.events.types import EVENT_DTYPE, make_events

#: (file under the samples folder, events used): slices keep tonic's per-event loop fast.
RECORDINGS = {
    "dvs128": ("MovingDarkBox.aedat", 60_000),  # DVS128, 128x128, t from ~946 s
    "aedat4": ("sample.aedat4", 40_000),  # 320x240, epoch-microsecond timestamps
    "nmnist": ("nmnist/Train/3/00891.bin", None),  # 34x34, starts at t=3484 < T
    "davis346": ("davis346_trimmed.aedat4", None),  # events span less than the 346x260 sensor
}
FILTER_TIMES = (1_000, 10_000, 100_000)


@functools.cache
def _read(path: Path, limit: int | None) -> tuple[np.ndarray, tuple[int, int]]:
    from dvsapp.events.detect import open_reader

    reader = open_reader(path)
    with reader:
        events = reader.read_all()
        w, h = reader.sensor_size[:2]
    return events[:limit].copy(), (w, h)


@functools.cache
def _tonic(path: Path, limit: int | None, filter_time: int) -> np.ndarray:
    return Denoise(filter_time=filter_time)(_read(path, limit)[0])


@pytest.fixture(params=sorted(RECORDINGS))
def recording(request, samples_dir: Path) -> tuple[str, Path, int | None]:
    name, limit = RECORDINGS[request.param]
    return request.param, samples_dir / name, limit


def random_cuts(rng: np.random.Generator, t: np.ndarray, packets: int) -> np.ndarray:
    """Split points: random ones, 1-event packets, and one inside a same-timestamp group."""
    n = t.size
    cuts = set(rng.integers(0, n + 1, packets).tolist())
    cuts |= {0, 1, 2, 3, n - 1}  # empty and 1-event packets at both ends
    start = int(rng.integers(0, n - 10))
    cuts |= {start, start + 1, start + 2}  # 1-event packets in the middle
    same = np.flatnonzero(t[1:] == t[:-1])  # t[i] == t[i + 1]: a cut between them
    assert same.size, "the recording has no two events with the same timestamp"
    cuts.add(int(same[rng.integers(0, same.size)]) + 1)
    return np.array(sorted(c for c in cuts if 0 <= c <= n))


# -- the filter alone, against tonic on real recordings -----------------------------------


@pytest.mark.parametrize("filter_time", FILTER_TIMES)
def test_streaming_filter_keeps_exactly_tonics_events(recording, filter_time) -> None:
    name, path, limit = recording
    events, sensor = _read(path, limit)
    ref = _tonic(path, limit, filter_time)
    assert 0 < len(ref) < len(events), name  # the filter does something on every sample
    np.testing.assert_array_equal(denoise_events(events, filter_time, sensor), ref)
    np.testing.assert_array_equal(denoise_events(events, filter_time), ref)  # tonic's own extent
    rng = np.random.default_rng(filter_time)
    filt = Denoiser(sensor, filter_time)
    for _ in range(2):
        parts = np.split(events, random_cuts(rng, events["t"], 40))
        kept = np.concatenate([filt(p) for p in parts])
        assert kept.dtype == EVENT_DTYPE
        np.testing.assert_array_equal(kept, ref)
        filt.reset()  # the same stream again, from a fresh memory


def test_every_packet_of_one_event_keeps_tonics_events(samples_dir: Path) -> None:
    events, sensor = _read(samples_dir / RECORDINGS["nmnist"][0], None)
    filt = Denoiser(sensor, 10_000)
    mask = np.concatenate([filt.keep(events[i : i + 1]) for i in range(len(events))])
    np.testing.assert_array_equal(
        events[mask], _tonic(samples_dir / RECORDINGS["nmnist"][0], None, 10_000)
    )


def test_chunks_inside_one_packet_carry_the_memory(monkeypatch, samples_dir: Path) -> None:
    import dvsapp.binning.denoise as module

    name, limit = RECORDINGS["dvs128"]
    events, sensor = _read(samples_dir / name, limit)
    monkeypatch.setattr(module, "CHUNK_EVENTS", 777)
    np.testing.assert_array_equal(
        Denoiser(sensor, 10_000)(events), _tonic(samples_dir / name, limit, 10_000)
    )


# -- tonic's rule, event by event ----------------------------------------------------------


def ev(*rows: tuple[int, int, int, bool]) -> np.ndarray:
    """Events from (x, y, t, p) rows, in that order."""
    x, y, t, p = zip(*rows, strict=True)
    return make_events(np.array(x), np.array(y), np.array(t), np.array(p))


def both(events: np.ndarray, filter_time: int, sensor=(8, 8)) -> np.ndarray:
    """Our mask, checked against tonic's loop on the same events."""
    mask = Denoiser(sensor, filter_time).keep(events)
    np.testing.assert_array_equal(events[mask], Denoise(filter_time=filter_time)(events))
    return mask


def test_tonic_rule_four_neighbours_strict_time_any_polarity() -> None:
    T, t0 = 100, 10_000  # t >= T: no pixel is supported by the initial memory
    # support from the left, right, above, below; of the other polarity; 99 us before
    for dx, dy in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        assert both(ev((3 + dx, 3 + dy, t0, False), (3, 3, t0 + 99, True)), T).tolist() == [
            False,
            True,
        ]
    # not the diagonals, not the pixel itself, not exactly T before (strict), not 2 pixels off
    for rows in (
        [(2, 2, t0, True), (3, 3, t0 + 1, True)],
        [(3, 3, t0, True), (3, 3, t0 + 1, True)],
        [(2, 3, t0, True), (3, 3, t0 + T, True)],
        [(1, 3, t0, True), (3, 3, t0 + 1, True)],
    ):
        assert both(ev(*rows), T).tolist() == [False, False], rows


def test_tonic_rule_order_same_timestamps_and_dropped_events_write_memory() -> None:
    T, t0 = 100, 10_000
    # same timestamp: the earlier event supports the later one, not the reverse
    assert both(ev((3, 3, t0, True), (4, 3, t0, True)), T).tolist() == [False, True]
    # a dropped event still writes its pixel's memory: it supports its neighbours later
    assert both(ev((3, 3, t0, True), (4, 3, t0 + 50, True)), T).tolist() == [False, True]
    # the memory is the LAST event at a pixel (later events overwrite it)
    rows = [(3, 3, t0, True), (3, 3, t0 + 500, True), (4, 3, t0 + 550, True)]
    assert both(ev(*rows), T).tolist() == [False, False, True]
    # out-of-order timestamps: the memory follows array order, as tonic's loop
    rows = [(3, 3, t0 + 500, True), (3, 3, t0, True), (4, 3, t0 + 450, True)]
    assert both(ev(*rows), T).tolist() == [False, False, False]


def test_tonic_memory_starts_at_filter_time() -> None:
    """tonic fills its memory with T, as if every pixel fired at t=0: every event before T
    with a neighbour pixel is kept (N-MNIST starts there); events from T on need support."""
    T = 1_000
    mask = both(ev((5, 5, 0, True), (0, 0, 999, False), (7, 7, 1_000, True)), T)
    assert mask.tolist() == [True, True, False]


def test_only_one_pixel_zero_differs_from_tonic() -> None:
    """tonic sizes its memory from the array's own extent; a stream cannot, so we use the
    sensor. The only difference (non-negative t): every event at pixel (0, 0), before T."""
    events = ev((0, 0, 5, True), (0, 0, 20_000, True))
    assert len(Denoise(filter_time=10_000)(events)) == 0  # a 1x1 extent has no neighbours
    assert Denoiser((4, 4), 10_000).keep(events).tolist() == [True, False]
    assert len(denoise_events(events, 10_000)) == 0  # with the array's extent, as tonic


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 200),
    st.integers(1, 3000),
    st.integers(1, 400),
    st.tuples(st.integers(1, 6), st.integers(1, 6)),
    st.booleans(),
    st.lists(st.integers(0, 200), max_size=8),
)
def test_random_streams_equal_tonic(seed, n, span, filter_time, size, ordered, cuts) -> None:
    """Small sensors, dense events, ties and (unordered) timestamps near the initial memory."""
    rng = np.random.default_rng(seed)
    t = rng.integers(0, span, n)
    events = make_events(
        rng.integers(0, size[0], n),
        rng.integers(0, size[1], n),
        np.sort(t) if ordered else t,
        rng.random(n) < 0.5,
    )
    ref = Denoise(filter_time=filter_time)(events)
    np.testing.assert_array_equal(denoise_events(events, filter_time), ref)
    extent = (int(events["x"].max()) + 1, int(events["y"].max()) + 1)
    filt = Denoiser(extent, filter_time)
    parts = np.split(events, sorted(min(c, n) for c in cuts))
    np.testing.assert_array_equal(np.concatenate([filt(p) for p in parts]), ref)


def test_bad_arguments_raise() -> None:
    for bad in (0, -5, 1.5, True, "10"):
        with pytest.raises(ConfigError, match="filter time"):
            Denoiser((4, 4), bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="outside the sensor"):
        Denoiser((4, 4), 10).keep(ev((4, 0, 1, True)))
    assert len(Denoiser((4, 4), 10)(np.zeros(0, EVENT_DTYPE))) == 0
    assert len(denoise_events(np.zeros(0, EVENT_DTYPE), 10)) == 0


# -- the binning stage ---------------------------------------------------------------------


def tonic_pipeline(events, cfg: BinningConfig) -> np.ndarray:
    """NeuroBench's input: Denoise, then Downsample to the input size, then ToFrame."""
    out = Denoise(filter_time=cfg.denoise_us)(events.copy())
    if cfg.downsampled:
        out = Downsample(sensor_size=(*cfg.sensor_size, 2), target_size=cfg.input_size)(out)
    assert cfg.input_size is not None
    size = (*cfg.input_size, 2)
    if cfg.mode == "count":
        return ToFrame(size, event_count=cfg.event_count, include_incomplete=True)(out)
    return ToFrame(size, time_window=cfg.time_window_us, include_incomplete=True)(out)


def streamed(events, cfg, cuts, backend="numpy") -> Frames:
    binner = StreamingBinner(cfg, backend, max_empty_frames=None)
    parts = [binner.push(p) for p in np.split(events, cuts)]
    frames = Frames.concat([*parts, binner.flush(drop_boundary_tail=True)])
    assert binner.denoised_events == len(events) - len(
        denoise_events(events, cfg.denoise_us, cfg.sensor_size)
    )
    return frames


def host(data) -> np.ndarray:
    return data.cpu().numpy() if isinstance(data, torch.Tensor) else data


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize(
    "options",
    [
        {"time_window_us": 5_000, "input_size": (32, 32)},  # NeuroBench: 0.25 downsample
        {"time_window_us": 20_000},
        {"mode": "count", "event_count": 700, "input_size": (48, 48)},
    ],
)
def test_binner_equals_tonic_denoise_downsample_toframe(samples_dir, backend, options) -> None:
    """``drop_boundary_tail=True`` copies ToFrame's one boundary quirk (see test_binning)."""
    name, limit = RECORDINGS["dvs128"]
    events, sensor = _read(samples_dir / name, limit)
    cfg = BinningConfig(sensor, denoise_us=10_000, **options)
    ref = tonic_pipeline(events, cfg)
    rng = np.random.default_rng(1)
    for cuts in ([], random_cuts(rng, events["t"], 30)):
        ours = streamed(events, cfg, cuts, backend)
        np.testing.assert_array_equal(host(ours.data), ref.astype(np.float32))
    if cfg.mode == "time":  # the grid starts at the first kept event, as ToFrame's
        kept = _tonic(samples_dir / name, limit, 10_000)
        assert ours.t_start_us[0] == kept["t"][0] > events["t"][0]


def test_binner_on_an_nmnist_sample_from_t_zero(samples_dir) -> None:
    """N-MNIST starts before T: the initial memory decides, at the sensor resolution."""
    events, sensor = _read(samples_dir / RECORDINGS["nmnist"][0], None)
    cfg = BinningConfig(sensor, time_window_us=10_000, input_size=(17, 17), denoise_us=10_000)
    ref = tonic_pipeline(events, cfg)
    np.testing.assert_array_equal(bin_events(events, cfg, drop_boundary_tail=True).data, ref)


def test_reset_clears_the_memory_and_flush_ends_the_stream() -> None:
    """A seek resets the binner (pipeline worker): the filter forgets the stream too."""
    T = 100
    cfg = BinningConfig((8, 8), time_window_us=1_000, denoise_us=T)
    a, b = ev((3, 3, 10_000, True)), ev((4, 3, 10_050, True), (4, 4, 10_060, True))
    binner = StreamingBinner(cfg)
    binner.push(a)
    assert binner.flush().data.sum() == 0  # alone: no support
    assert binner.push_and_flush(b).data.sum() == 1  # a's memory is gone after the flush
    binner.push(a)
    binner.reset()
    assert binner.push_and_flush(b).data.sum() == 1
    assert binner.push_and_flush(np.concatenate([a, b])).data.sum() == 2
    assert binner.denoised_events == 1 + 1 + 1 + 1 + 1
    # all events of a packet dropped: no frames, no grid yet
    binner = StreamingBinner(cfg)
    assert len(binner.push(a)) == 0 and binner.open_bin_start_us is None
    assert len(binner.push_and_flush(a[:0])) == 0


def test_without_denoise_nothing_changes() -> None:
    cfg = BinningConfig((8, 8), time_window_us=1_000)
    binner = StreamingBinner(cfg)
    assert binner.denoiser is None
    events = ev((3, 3, 10_000, True))
    assert binner.push_and_flush(events).data.sum() == 1 and binner.denoised_events == 0


# -- configuration, checkpoints, training, play --------------------------------------------


def test_config_validates_and_round_trips() -> None:
    cfg = BinningConfig((128, 128), time_window_us=5_000, input_size=(32, 32), denoise_us=10_000)
    data = json.loads(json.dumps(cfg.to_dict()))
    assert data["denoise_us"] == 10_000 and BinningConfig.from_dict(data) == cfg
    old = BinningConfig((128, 128), time_window_us=5_000)
    assert "denoise_us" not in old.to_dict()  # older files and cache keys stay as they were
    assert BinningConfig.from_dict(old.to_dict()) == old and old.denoise_us is None
    assert BinningConfig.from_dict({**old.to_dict(), "denoise_us": None}) == old
    assert BinningConfig((8, 8), time_window_us=1, denoise_us=np.int64(7)).denoise_us == 7
    for bad in (0, -1, 2.5, True, "10000"):
        with pytest.raises(ConfigError, match="denoise_us"):
            BinningConfig((8, 8), time_window_us=1, denoise_us=bad)  # type: ignore[arg-type]


def test_checkpoint_keeps_the_denoise_setting(tmp_path: Path) -> None:
    from toy_snn import make_toy, single_thread, toy_architectures

    from dvsapp.snn.checkpoint import load_checkpoint, save_checkpoint

    cfg = BinningConfig((16, 16), time_window_us=10_000, input_size=(8, 8), denoise_us=10_000)
    with toy_architectures(), single_thread():
        path = save_checkpoint(
            tmp_path / "m.safetensors",
            make_toy(),
            class_names=["a", "b", "c"],
            binning=cfg,
            sensor_size=(16, 16, 2),
            trained_on="test",
            metrics={},
        )
        assert load_checkpoint(path).binning == cfg


def test_train_flag_reaches_the_binning() -> None:
    from dvsapp.train.cli import add_parsers
    from dvsapp.train.datasets import parse_data_spec
    from dvsapp.train.loop import TrainConfig, make_binning, model_config

    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["train", "--denoise-us", "10000"])
    assert args.denoise_us == 10_000
    assert parser.parse_args(["train"]).denoise_us is None
    cfg = TrainConfig(arch="resnet_small", denoise_us=args.denoise_us, input_size=(32, 32))
    spec = parse_data_spec("synth")
    binning = make_binning(cfg, spec, model_config(cfg, spec))
    assert binning.denoise_us == 10_000
    assert TrainConfig.from_dict(cfg.to_dict()).denoise_us == 10_000
    assert TrainConfig.from_dict({"arch": "vgg9"}).denoise_us is None  # an older run's state


def test_training_windows_see_the_stream_denoised(samples_dir: Path) -> None:
    """A window cut from a recording holds the events the whole stream's filter keeps."""
    from dvsapp.train.datasets import TonicWindows, bin_window, denoise_whole

    events, sensor = _read(samples_dir / RECORDINGS["nmnist"][0], None)
    cfg = BinningConfig(sensor, time_window_us=20_000, denoise_us=10_000)
    kept, plain = denoise_whole(events, cfg)
    np.testing.assert_array_equal(kept, _tonic(samples_dir / RECORDINGS["nmnist"][0], None, 10_000))
    assert plain.denoise_us is None and denoise_whole(events, plain) == (events, plain)

    class FakeTonic:
        sensor_size = (*sensor, 2)
        targets = (3,)

        def __getitem__(self, i):
            return events, 3

    x, y = TonicWindows(FakeTonic(), [0], cfg, 8, [str(i) for i in range(10)])[0]
    t0 = int(kept["t"][0])
    assert y == 3
    np.testing.assert_array_equal(x.numpy(), bin_window(kept, plain, 8, t0))
    assert x.sum() == ((kept["t"] >= t0) & (kept["t"] < t0 + 8 * 20_000)).sum() < len(events)


def test_play_reports_the_kept_events(samples_dir: Path, capsys) -> None:
    from dvsapp.cli import main

    path = samples_dir / RECORDINGS["nmnist"][0]
    assert main(["play", str(path), "--speed", "max", "--denoise-us", "10000"]) == 0
    out = capsys.readouterr().out
    kept = len(_tonic(path, None, 10_000))
    assert "after denoising (10000 us)" in out
    assert f"done: 5,014 events ({kept:,} kept by denoising)" in out
    assert main(["play", str(path), "--speed", "max", "--denoise-us", "0"]) != 0
