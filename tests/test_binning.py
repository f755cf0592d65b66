"""Streaming binner: bit-for-bit parity with tonic, packet invariance, back ends, options.

The reference is tonic 1.7.0 itself: ``Downsample(sensor_size, target_size)`` on the events,
then ``ToFrame(..., include_incomplete=True)`` at the reduced size. Tests named
``test_tonic_*`` pin tonic's own odd behaviour, so an upgrade that changes it is noticed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tonic.transforms import Downsample, ToFrame

import dvsapp.binning.numpy_backend as numpy_backend
from dvsapp.binning import BinningConfig, Frames, StreamingBinner, bin_events
from dvsapp.errors import ConfigError
from dvsapp.events.types import EVENT_DTYPE, make_events

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: (sensor, input) pairs; 44 -> 30 is where tonic's float arithmetic rounds 22*30/44 down.
SIZES = [((12, 9), (12, 9)), ((16, 12), (8, 6)), ((44, 30), (30, 21)), ((10, 7), (7, 3))]


def stream(rng: np.random.Generator, n: int, span: int, size: tuple[int, int]) -> np.ndarray:
    """``n`` time-sorted random events in ``[0, span)`` on a ``size`` sensor."""
    t = np.sort(rng.integers(0, span, n))
    return make_events(
        rng.integers(0, size[0], n), rng.integers(0, size[1], n), t, rng.random(n) < 0.5
    )


def tonic_frames(events: np.ndarray, cfg: BinningConfig, t0: int | None = None) -> np.ndarray:
    """The reference: tonic Downsample on events, then ToFrame at the reduced size."""
    ev = events.copy()
    if cfg.downsampled:
        ev = Downsample(sensor_size=(*cfg.sensor_size, 2), target_size=cfg.input_size)(ev)
    assert cfg.input_size is not None
    size = (*cfg.input_size, 2)
    if cfg.mode == "time":
        to_frame = ToFrame(
            size, time_window=cfg.time_window_us, include_incomplete=True, start_time=t0
        )
    else:
        to_frame = ToFrame(size, event_count=cfg.event_count, include_incomplete=True)
    return to_frame(ev)


def streamed(
    events: np.ndarray,
    cfg: BinningConfig,
    cuts: list[int],
    backend: str = "numpy",
    drop_boundary_tail: bool = False,
    **kwargs: object,
) -> Frames:
    """Frames of ``events`` pushed as packets split at ``cuts``, then flushed."""
    binner = StreamingBinner(cfg, backend, **kwargs)  # type: ignore[arg-type]
    parts = [binner.push(p) for p in np.split(events, sorted(cuts))]
    return Frames.concat([*parts, binner.flush(drop_boundary_tail=drop_boundary_tail)])


def host(data: np.ndarray | torch.Tensor) -> np.ndarray:
    return data.cpu().numpy() if isinstance(data, torch.Tensor) else data


def assert_same(a: Frames, b: Frames) -> None:
    da, db = host(a.data), host(b.data)
    assert da.dtype == db.dtype and da.shape == db.shape
    np.testing.assert_array_equal(da, db)
    np.testing.assert_array_equal(a.t_start_us, b.t_start_us)
    np.testing.assert_array_equal(a.t_end_us, b.t_end_us)


streams = st.builds(
    lambda seed, n, span: (seed, n, span),
    st.integers(0, 2**32 - 1),
    st.integers(1, 120),
    st.integers(1, 2000),
)


# -- parity with tonic ------------------------------------------------------------------


@SETTINGS
@given(
    streams,
    st.integers(1, 300),
    st.sampled_from(SIZES),
    st.lists(st.integers(0, 120), max_size=6),
    st.sampled_from(["numpy", "torch"]),
)
def test_time_mode_equals_tonic(s, window, sizes, cuts, backend) -> None:
    seed, n, span = s
    ev = stream(np.random.default_rng(seed), n, span, sizes[0])
    cfg = BinningConfig(sizes[0], time_window_us=window, input_size=sizes[1])
    cuts = [min(c, n) for c in cuts]
    ours = streamed(ev, cfg, cuts, backend, drop_boundary_tail=True, max_empty_frames=None)
    ref = tonic_frames(ev, cfg)  # tonic has no cap on empty frames
    np.testing.assert_array_equal(host(ours.data), ref.astype(np.float32))
    grid = ev["t"][0] + window * np.arange(len(ref))
    np.testing.assert_array_equal(ours.t_start_us, grid)
    np.testing.assert_array_equal(ours.t_end_us, grid + window)


@SETTINGS
@given(
    streams, st.integers(1, 40), st.sampled_from(SIZES), st.lists(st.integers(0, 120), max_size=6)
)
def test_count_mode_equals_tonic(s, count, sizes, cuts) -> None:
    seed, n, span = s
    ev = stream(np.random.default_rng(seed), n, span, sizes[0])
    cfg = BinningConfig(sizes[0], mode="count", event_count=count, input_size=sizes[1])
    ours = streamed(ev, cfg, [min(c, n) for c in cuts])
    ref = tonic_frames(ev, cfg)
    np.testing.assert_array_equal(ours.data, ref.astype(np.float32))
    firsts = np.arange(len(ref)) * count
    np.testing.assert_array_equal(ours.t_start_us, ev["t"][firsts])
    lasts = np.minimum(firsts + count, n) - 1
    np.testing.assert_array_equal(ours.t_end_us, ev["t"][lasts] + 1)


@SETTINGS
@given(streams, st.integers(1, 200), st.integers(0, 500))
def test_t0_equals_tonic_start_time(s, window, lead) -> None:
    seed, n, span = s
    ev = stream(np.random.default_rng(seed), n, span, (12, 9))
    ev["t"] += lead
    cfg = BinningConfig((12, 9), time_window_us=window)
    ours = bin_events(ev, cfg, t0_us=0, drop_boundary_tail=True, max_empty_frames=None)
    np.testing.assert_array_equal(ours.data, tonic_frames(ev, cfg, t0=0))
    assert ours.t_start_us[0] == 0


def test_many_frames_across_memory_blocks_equal_tonic(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(numpy_backend, "BLOCK_ELEMS", 3 * 2 * 9 * 12)  # 3 frames a block
    ev = stream(np.random.default_rng(7), 3000, 100_000, (12, 9))
    cfg = BinningConfig((12, 9), time_window_us=1000)
    ref = tonic_frames(ev, cfg)
    assert len(ref) > 90
    for cuts in ([], [5, 1000, 1001, 2500]):
        ours = streamed(ev, cfg, cuts, drop_boundary_tail=True)
        np.testing.assert_array_equal(ours.data, ref)


# -- tonic's edge cases, and what we chose -------------------------------------------------


def events_at(*ts: int, x: int = 1, y: int = 2, p: bool = True) -> np.ndarray:
    n = len(ts)
    return make_events(np.full(n, x), np.full(n, y), np.array(ts), np.full(n, p))


def test_tonic_drops_the_last_events_on_a_window_boundary() -> None:
    cfg = BinningConfig((4, 4), time_window_us=100)
    ev = events_at(0, 50, 100, 100)
    ref = tonic_frames(ev, cfg)
    assert len(ref) == 1 and ref.sum() == 2  # the two events at t=100 vanish
    ours = bin_events(ev, cfg)  # we keep them, in a frame of their own
    assert len(ours) == 2 and ours.data[1].sum() == 2
    np.testing.assert_array_equal(ours.t_start_us, [0, 100])
    np.testing.assert_array_equal(bin_events(ev, cfg, drop_boundary_tail=True).data, ref)


def test_events_inside_the_last_window_and_single_events_match_tonic() -> None:
    cfg = BinningConfig((4, 4), time_window_us=100)
    for ts in [(0, 99), (7,), (5, 5, 5), (0, 100, 101), (0, 250)]:
        ev = events_at(*ts)
        ref = tonic_frames(ev, cfg)
        np.testing.assert_array_equal(bin_events(ev, cfg).data, ref, err_msg=str(ts))
        assert ref.sum() == len(ts)


def test_tonic_empty_recording_gives_one_transposed_float_frame() -> None:
    cfg = BinningConfig((6, 4), time_window_us=100)
    ref = ToFrame((6, 4, 2), time_window=100, include_incomplete=True)(np.zeros(0, EVENT_DTYPE))
    assert ref.shape == (1, 2, 6, 4) and ref.dtype == np.float64  # W and H swapped
    ours = bin_events(np.zeros(0, EVENT_DTYPE), cfg)
    assert len(ours) == 0 and ours.data.shape == (0, 2, 4, 6)


def test_tonic_int16_frames_wrap_and_ours_do_not() -> None:
    ev = events_at(*([0] * 40_000))
    cfg = BinningConfig((4, 4), time_window_us=100)
    assert tonic_frames(ev, cfg)[0, 1, 2, 1] == 40_000 - 65_536
    assert bin_events(ev, cfg).data[0, 1, 2, 1] == 40_000


def test_tonic_downsample_rounds_exact_multiples_down_and_we_follow() -> None:
    cfg = BinningConfig((44, 44), time_window_us=100, input_size=(30, 30))
    ev = events_at(0, x=22, y=0)
    ds = Downsample(sensor_size=(44, 44, 2), target_size=(30, 30))(ev)
    assert ds["x"][0] == 14  # 22 * 30 / 44 is exactly 15
    assert bin_events(ev, cfg).data[0, 1, 0, 14] == 1


# -- streaming: packets, advance_to, cap, late events ---------------------------------------


def gappy(rng: np.random.Generator, n: int) -> np.ndarray:
    """Events in bursts separated by gaps of 0 to 60 windows of 10 us."""
    t = np.cumsum(rng.choice([0, 1, 3, 10, 200, 600], size=n))
    return make_events(rng.integers(0, 5, n), rng.integers(0, 4, n), t, rng.random(n) < 0.5)


@SETTINGS
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 80),
    st.lists(st.integers(0, 80), max_size=8),
    st.sampled_from(["time", "count"]),
    st.sampled_from(["numpy", "torch"]),
    st.sampled_from([0, 2, 7, None]),
    st.data(),
)
def test_packets_and_advance_give_the_same_frames_as_one_packet(
    seed, n, cuts, mode, backend, cap, data
) -> None:
    ev = gappy(np.random.default_rng(seed), n)
    kw = {"time_window_us": 10} if mode == "time" else {"event_count": 3}
    cfg = BinningConfig((5, 4), mode=mode, **kw)  # type: ignore[arg-type]
    whole = bin_events(ev, cfg, backend, max_empty_frames=cap)
    binner = StreamingBinner(cfg, backend, max_empty_frames=cap)  # type: ignore[arg-type]
    parts, prev = [], 0
    for packet in np.split(ev, sorted(min(c, n) for c in cuts)):
        if len(packet):  # a quiet source's clock may run up to the next event
            parts.append(binner.advance_to(data.draw(st.integers(prev, int(packet["t"][0])))))
            prev = int(packet["t"][-1])
        parts.append(binner.push(packet))
    parts.append(binner.flush())
    assert_same(Frames.concat(parts), whole)
    assert sum(host(p.data).sum() for p in parts) == n


def test_absurd_gap_is_capped_and_keeps_true_timestamps() -> None:
    cfg = BinningConfig((8, 8), time_window_us=1000)
    binner = StreamingBinner(cfg, max_empty_frames=5)
    assert len(binner.push(events_at(0))) == 0
    out = binner.push(events_at(3_600_000_000))  # one hour later, 1 ms bins
    assert len(out) == 1 + 5 and out.data.sum() == 1
    np.testing.assert_array_equal(out.t_start_us, np.arange(6) * 1000)
    assert binner.skipped_frames == 3_600_000 - 1 - 5
    last = binner.flush()
    np.testing.assert_array_equal(last.t_start_us, [3_600_000_000])


def test_default_cap_bounds_a_gap() -> None:
    binner = StreamingBinner(BinningConfig((4, 4), time_window_us=1))
    binner.push(events_at(0))
    assert len(binner.push(events_at(10**9))) == 1 + binner.max_empty_frames


def test_advance_to_closes_bins_that_end_by_then() -> None:
    cfg = BinningConfig((4, 4), time_window_us=100)
    binner = StreamingBinner(cfg)
    assert len(binner.advance_to(10**6)) == 0  # no grid before the first event
    binner.push(events_at(1000))
    assert len(binner.advance_to(1099)) == 0
    first = binner.advance_to(1100)
    np.testing.assert_array_equal(first.t_start_us, [1000])
    assert first.data.sum() == 1
    empties = binner.advance_to(1350)
    np.testing.assert_array_equal(empties.t_start_us, [1100, 1200])
    assert empties.data.sum() == 0 and binner.open_bin_start_us == 1300
    binner.push(events_at(1310))
    np.testing.assert_array_equal(binner.flush().t_start_us, [1300])


def test_t0_grid_and_advance_before_any_event() -> None:
    binner = StreamingBinner(BinningConfig((4, 4), time_window_us=100), t0_us=50)
    np.testing.assert_array_equal(binner.advance_to(260).t_start_us, [50, 150])
    assert (
        len(StreamingBinner(BinningConfig((4, 4), mode="count", event_count=2)).advance_to(9)) == 0
    )


def test_late_events_join_the_open_bin_and_are_counted() -> None:
    cfg = BinningConfig((4, 4), time_window_us=100)
    binner = StreamingBinner(cfg)
    binner.push(events_at(0, 150))
    out = binner.push(events_at(120, 90, 260))  # 90 is before the open bin [100, 200)
    assert binner.late_events == 1
    np.testing.assert_array_equal(out.t_start_us, [100])
    assert out.data.sum() == 3 and binner.flush().data.sum() == 1


def test_reset_starts_a_new_grid() -> None:
    binner = StreamingBinner(BinningConfig((4, 4), time_window_us=100))
    binner.push(events_at(0, 10))
    binner.reset()
    assert binner.pending_events == 0
    binner.push(events_at(1234))
    np.testing.assert_array_equal(binner.flush().t_start_us, [1234])


# -- back ends and options -------------------------------------------------------------


OPTIONS = [
    {},
    {"polarity": "sum"},
    {"clip": 2},
    {"binarize": True},
    {"dtype": "uint8"},
    {"dtype": "float16", "polarity": "sum"},
    {"input_size": (3, 2), "dtype": "int16"},
]


@pytest.mark.parametrize("mode", ["time", "count"])
@pytest.mark.parametrize("options", OPTIONS)
def test_torch_equals_numpy(mode: str, options: dict) -> None:
    rng = np.random.default_rng(3)
    ev = stream(rng, 5000, 40_000, (7, 5))
    kw = {"time_window_us": 700} if mode == "time" else {"event_count": 300}
    cfg = BinningConfig((7, 5), mode=mode, **kw, **options)  # type: ignore[arg-type]
    cuts = list(rng.integers(0, 5000, 20))
    a, b = streamed(ev, cfg, cuts), streamed(ev, cfg, cuts, "torch")
    assert isinstance(b.data, torch.Tensor) and b.data.dtype == getattr(torch, cfg.dtype)
    assert_same(a, b)


def split_counts(ev: np.ndarray, **kw: object) -> np.ndarray:
    return tonic_frames(ev, BinningConfig((7, 5), time_window_us=500, **kw)).astype(np.int64)  # type: ignore[arg-type]


def test_polarity_sum_clip_binarize_and_saturation() -> None:
    ev = stream(np.random.default_rng(4), 4000, 3000, (7, 5))
    ev = np.concatenate([ev, events_at(*([2999] * 300))])  # 300 hits on one pixel
    counts = split_counts(ev)
    assert counts.max() > 255

    def ours(**kw: object) -> np.ndarray:
        return bin_events(ev, BinningConfig((7, 5), time_window_us=500, **kw)).data  # type: ignore[arg-type]

    np.testing.assert_array_equal(ours(polarity="sum"), counts.sum(axis=1, keepdims=True))
    np.testing.assert_array_equal(ours(clip=3), np.minimum(counts, 3))
    np.testing.assert_array_equal(ours(binarize=True), counts > 0)
    np.testing.assert_array_equal(ours(clip=2, binarize=True), counts > 0)
    np.testing.assert_array_equal(ours(dtype="uint8"), np.minimum(counts, 255))
    assert ours(dtype="uint8").dtype == np.uint8 and ours().dtype == np.float32


def test_bad_events_and_backends_raise() -> None:
    binner = StreamingBinner(BinningConfig((4, 4), time_window_us=100))
    with pytest.raises(ConfigError, match="x=4"):
        binner.push(events_at(0, x=4))
    with pytest.raises(ConfigError, match="y=-1"):
        binner.push(events_at(0, y=-1))
    with pytest.raises(TypeError):
        binner.push(np.zeros(3, [("t", "<i8")]))
    with pytest.raises(ConfigError):
        StreamingBinner(BinningConfig((4, 4), time_window_us=1), "numpy", "cuda")
    with pytest.raises(ConfigError):
        StreamingBinner(BinningConfig((4, 4), time_window_us=1), "jax")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        StreamingBinner(BinningConfig((4, 4), time_window_us=1), max_empty_frames=-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_equals_numpy() -> None:
    ev = stream(np.random.default_rng(5), 200_000, 1_000_000, (128, 128))
    cfg = BinningConfig((128, 128), time_window_us=10_000, input_size=(64, 64))
    cuts = [1, 70_000, 150_000]
    gpu = streamed(ev, cfg, cuts, "torch", device="cuda")
    assert gpu.data.device.type == "cuda"
    assert_same(streamed(ev, cfg, cuts), gpu)


# -- config ------------------------------------------------------------------------------


def test_config_round_trips_through_json() -> None:
    cfgs = [
        BinningConfig((128, 128, 2), time_window_us=10_000, input_size=(64, 48), clip=4),
        BinningConfig((346, 260), mode="count", event_count=5000, polarity="sum", binarize=True),
        BinningConfig((32, 32), time_window_us=np.int64(5), dtype="uint8"),
    ]
    for cfg in cfgs:
        back = BinningConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert back == cfg and back.to_dict() == cfg.to_dict()
        assert type(back.time_window_us) in (int, type(None))
    assert cfgs[1].input_size == (346, 260) and cfgs[1].frame_shape == (1, 260, 346)
    assert cfgs[0].sensor_size == (128, 128) and cfgs[0].frame_shape == (2, 48, 64)


@pytest.mark.parametrize(
    "data",
    [
        {"sensor_size": [4, 4], "mode": "time"},
        {"sensor_size": [4, 4], "mode": "time", "time_window_us": 0},
        {"sensor_size": [4, 4], "mode": "time", "time_window_us": 1.5},
        {"sensor_size": [4, 4], "mode": "time", "time_window_us": True},
        {"sensor_size": [4, 4], "mode": "time", "time_window_us": 5, "event_count": 3},
        {"sensor_size": [4, 4], "mode": "count"},
        {"sensor_size": [4, 4], "mode": "frames", "time_window_us": 5},
        {"sensor_size": [4], "time_window_us": 5},
        {"sensor_size": "4x4", "time_window_us": 5},
        {"sensor_size": [4, 4, 3], "time_window_us": 5},
        {"sensor_size": [4, -4], "time_window_us": 5},
        {"sensor_size": [4, 4], "time_window_us": 5, "input_size": [8, 4]},
        {"sensor_size": [4, 4], "time_window_us": 5, "polarity": "on"},
        {"sensor_size": [4, 4], "time_window_us": 5, "clip": 0},
        {"sensor_size": [4, 4], "time_window_us": 5, "binarize": "yes"},
        {"sensor_size": [4, 4], "time_window_us": 5, "dtype": "int8"},
        {"sensor_size": [4, 4], "time_window_us": 5, "window": 5},
        {"time_window_us": 5},
        [4, 4],
    ],
)
def test_bad_config_raises_config_error(data: object) -> None:
    with pytest.raises(ConfigError, match="binning"):
        BinningConfig.from_dict(data)
