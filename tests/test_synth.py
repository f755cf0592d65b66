"""The synthetic gesture generator: determinism, sanity of the events, and each class's motion
as measured from the events alone (not from the generator's own trajectories)."""

from __future__ import annotations

import numpy as np
import pytest

from dvsapp.errors import ConfigError
from dvsapp.events.types import DVS_GESTURE_CLASSES, EVENT_DTYPE
from dvsapp.synth import SENSOR_SIZE, gesture_events, synth_recording

W, H = SENSOR_SIZE[0], SENSOR_SIZE[1]
CLASS = {name: i for i, name in enumerate(DVS_GESTURE_CLASSES)}


def rate(events: np.ndarray, duration_s: float) -> float:
    return len(events) / duration_s


def test_same_seed_same_events_other_seed_other_events() -> None:
    a = gesture_events(3, seed=7, duration_s=0.4)
    b = gesture_events(3, seed=7, duration_s=0.4)
    c = gesture_events(3, seed=8, duration_s=0.4)
    assert a.dtype == EVENT_DTYPE
    assert a.tobytes() == b.tobytes()
    assert len(a) != len(c) or a.tobytes() != c.tobytes()
    # The class is part of the key too.
    assert gesture_events(4, seed=7, duration_s=0.4).tobytes() != a.tobytes()


@pytest.mark.parametrize("class_index", range(len(DVS_GESTURE_CLASSES)))
def test_every_class_gives_sorted_events_inside_the_sensor_at_a_dvs_like_rate(
    class_index: int,
) -> None:
    t0, dur = 5_000_000, 0.8
    ev = gesture_events(class_index, seed=class_index % 4, duration_s=dur, t0_us=t0)
    assert ev.dtype == EVENT_DTYPE
    assert len(ev) > 0
    assert np.all(np.diff(ev["t"]) >= 0)
    assert ev["t"].min() >= t0 and ev["t"].max() < t0 + int(dur * 1e6)
    assert ev["x"].min() >= 0 and ev["x"].max() < W
    assert ev["y"].min() >= 0 and ev["y"].max() < H
    assert 0.2 < ev["p"].mean() < 0.8  # both polarities
    assert 3e3 < rate(ev, dur) < 2e5
    # Events fill the whole clip, not just its start (the motion goes on).
    halves = np.histogram(ev["t"], bins=2, range=(t0, t0 + dur * 1e6))[0]
    assert halves.min() > 0.3 * halves.max()


@pytest.mark.parametrize("class_index", [CLASS["hand_clapping"], CLASS["right_arm_clockwise"]])
def test_a_still_figure_gives_only_noise_level_events(class_index: int) -> None:
    seed, dur = 2, 0.8
    moving = gesture_events(class_index, seed, dur)
    still = gesture_events(class_index, seed, dur, amplitude=0.0)
    assert rate(still, dur) < 0.2 * rate(moving, dur)
    assert rate(still, dur) < 5e3  # about 0.1-0.3 events per pixel and second
    # Noise is spread over the array: no pixel fires much more than the others.
    counts = np.bincount(still["y"].astype(int) * W + still["x"], minlength=W * H)
    assert counts.max() <= 6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hand_waves_happen_on_the_side_of_the_waving_arm(seed: int) -> None:
    """The subject faces the camera: the RIGHT hand waves on the IMAGE LEFT."""
    right = gesture_events(CLASS["right_hand_wave"], seed, 0.6)
    left = gesture_events(CLASS["left_hand_wave"], seed, 0.6)
    assert np.mean(right["x"] < W // 2) > 0.75
    assert np.mean(left["x"] >= W // 2) > 0.75


def centroid_angles(events: np.ndarray, bin_us: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """Unwrapped angle (radians, counter-clockwise positive AS SEEN BY THE CAMERA, i.e. with the
    image's y axis flipped up) of each 20 ms bin's event centroid about the clip's mean event
    position, and the bin times (s)."""
    t = events["t"] - events["t"][0]
    x, y = events["x"].astype(float), events["y"].astype(float)
    mx, my = x.mean(), y.mean()
    idx = t // bin_us
    counts = np.bincount(idx)
    busy = counts > 0.5 * np.median(counts[counts > 0])
    cx = np.bincount(idx, weights=x)[busy] / counts[busy]
    cy = np.bincount(idx, weights=y)[busy] / counts[busy]
    angles = np.unwrap(np.arctan2(-(cy - my), cx - mx))
    return angles, np.flatnonzero(busy) * bin_us * 1e-6


@pytest.mark.parametrize(
    ("name", "clockwise", "image_side"),
    [
        ("right_arm_clockwise", True, "left"),
        ("right_arm_counter_clockwise", False, "left"),
        ("left_arm_clockwise", True, "right"),
        ("left_arm_counter_clockwise", False, "right"),
    ],
)
@pytest.mark.parametrize(("seed", "generator"), [(0, 1), (5, 1), (0, 2), (5, 2), (0, 4), (5, 4)])
def test_arm_circles_turn_in_the_named_direction_as_seen_by_the_camera(
    name: str, clockwise: bool, image_side: str, seed: int, generator: int
) -> None:
    ev = gesture_events(CLASS[name], seed, duration_s=1.6, generator=generator)
    angles, times = centroid_angles(ev)
    slope = np.polyfit(times, angles, 1)[0]  # rad/s; counter-clockwise (camera view) positive
    turned = angles[-1] - angles[0]
    if clockwise:
        assert slope < 0 and turned < -1.5 * np.pi
    else:
        assert slope > 0 and turned > 1.5 * np.pi
    # Most bins advance in that direction (the centroid does not jitter back and forth).
    steps = np.diff(angles)
    assert np.mean(steps < 0 if clockwise else steps > 0) > 0.8
    # The circling arm is the named one: the subject's right arm is on the image left of the
    # body's midline (taken from the same subject's clapping, symmetric about it).
    clap = gesture_events(CLASS["hand_clapping"], seed, duration_s=0.5, generator=generator)
    mid = clap["x"].mean()
    offset = ev["x"].mean() - mid
    assert offset < -8 if image_side == "left" else offset > 8


@pytest.mark.parametrize("seed", [0, 1, 3])
def test_hand_clapping_is_symmetric_about_the_body_midline(seed: int) -> None:
    ev = gesture_events(CLASS["hand_clapping"], seed, duration_s=1.0)
    x = ev["x"].astype(float)
    mid = x.mean()
    assert abs(mid - W / 2) < 12  # the figure stands near the middle of the image
    left, right = x[x < mid], x[x >= mid]
    assert 0.4 < len(left) / len(x) < 0.6
    spread_ratio = (mid - left).mean() / (right - mid).mean()
    assert 0.75 < spread_ratio < 1.33
    # The x histogram mirrored about the midline matches itself.
    d = np.arange(0, 40)
    hist = np.bincount(x.astype(int), minlength=W + 64).astype(float)
    m = round(mid)
    corr = np.corrcoef(hist[m + d], hist[m - d])[0, 1]
    assert corr > 0.7
    # Both hands move in the same rows (chest height), so the rows match too.
    assert abs(np.median(ev["y"][x < mid]) - np.median(ev["y"][x >= mid])) < 5


def test_air_drums_and_guitar_use_both_hands_below_the_shoulders() -> None:
    drums = gesture_events(CLASS["air_drums"], 1, duration_s=0.8)
    guitar = gesture_events(CLASS["air_guitar"], 1, duration_s=0.8)
    for ev in (drums, guitar):
        x = ev["x"].astype(float)
        assert 0.2 < np.mean(x < x.mean()) < 0.8  # both sides active
    # Drums: the two hands beat alternately, so the left and right event counts per 40 ms bin
    # are anti-correlated.
    x, t = drums["x"].astype(float), drums["t"] // 40_000
    mid = x.mean()
    n_left = np.bincount(t[x < mid], minlength=t.max() + 1)
    n_right = np.bincount(t[x >= mid], minlength=t.max() + 1)
    assert np.corrcoef(n_left, n_right)[0, 1] < -0.1


def test_recording_holds_each_gesture_in_its_labelled_window() -> None:
    classes = [CLASS["right_hand_wave"], CLASS["left_hand_wave"], CLASS["right_arm_clockwise"]]
    events, labels = synth_recording(11, classes=classes, gesture_s=0.6, gap_s=0.2)
    assert [s.label for s in labels] == classes
    assert [s.name for s in labels] == [DVS_GESTURE_CLASSES[c] for c in classes]
    assert [(s.t_start_us, s.t_end_us) for s in labels] == [
        (200_000, 800_000),
        (1_000_000, 1_600_000),
        (1_800_000, 2_400_000),
    ]
    t = events["t"]
    assert np.all(np.diff(t) >= 0) and t.min() >= 0 and t.max() < 2_600_000
    mean_x = [events["x"][(t >= s.t_start_us) & (t < s.t_end_us)].mean() for s in labels]
    assert mean_x[0] < W / 2 < mean_x[1]
    # Same arguments, same recording; one figure per recording, so the same seed's clips
    # and recording share the scene, and a different seed gives a different recording.
    again, labels_again = synth_recording(11, classes=classes, gesture_s=0.6, gap_s=0.2)
    assert again.tobytes() == events.tobytes() and labels_again == labels
    other, _ = synth_recording(12, classes=classes, gesture_s=0.6, gap_s=0.2)
    assert other.tobytes() != events.tobytes()


def test_default_recording_has_all_eleven_classes_in_a_seed_shuffled_order() -> None:
    orders = []
    for seed in (0, 1):
        events, labels = synth_recording(seed, gesture_s=0.12, gap_s=0.04)
        assert sorted(s.label for s in labels) == list(range(11))
        starts = [s.t_start_us for s in labels]
        assert starts == [40_000 + i * 160_000 for i in range(11)]
        assert events["t"].max() < 11 * 120_000 + 12 * 40_000
        orders.append([s.label for s in labels])
    assert orders[0] != orders[1]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: gesture_events(11, 0), "class index"),
        (lambda: gesture_events(-1, 0), "class index"),
        (lambda: gesture_events(0, -3), "seed"),
        (lambda: gesture_events(0, 0, 0.0), "duration_s"),
        (lambda: gesture_events(0, 0, float("nan")), "duration_s"),
        (lambda: gesture_events(0, 0, 0.1, t0_us=-5), "t0_us"),
        (lambda: gesture_events(0, 0, 0.1, amplitude=-1.0), "amplitude"),
        (lambda: synth_recording(0, classes=[]), "at least one"),
        (lambda: synth_recording(0, classes=[0, 12]), "class index"),
        (lambda: synth_recording(0, gap_s=-0.1), "gap_s"),
    ],
)
def test_bad_arguments_raise_one_line_config_errors(call, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


# -- generator version 2 -------------------------------------------------------------------
def test_version_1_is_the_default_and_unchanged_by_version_2() -> None:
    a = gesture_events(3, seed=7, duration_s=0.3)
    assert gesture_events(3, seed=7, duration_s=0.3, generator=1).tobytes() == a.tobytes()
    assert gesture_events(3, seed=7, duration_s=0.3, generator=2).tobytes() != a.tobytes()


def test_version_2_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a = gesture_events(8, seed=7, duration_s=0.3, generator=2)
    assert a.dtype == EVENT_DTYPE and len(a) > 0
    assert gesture_events(8, seed=7, duration_s=0.3, generator=2).tobytes() == a.tobytes()
    assert gesture_events(8, seed=8, duration_s=0.3, generator=2).tobytes() != a.tobytes()
    assert gesture_events(9, seed=7, duration_s=0.3, generator=2).tobytes() != a.tobytes()
    assert np.all(np.diff(a["t"]) >= 0) and a["t"].min() >= 0 and a["t"].max() < 300_000
    events, labels = synth_recording(4, classes=[1, 2], gesture_s=0.2, gap_s=0.1, generator=2)
    again, labels_again = synth_recording(4, classes=[1, 2], gesture_s=0.2, gap_s=0.1, generator=2)
    assert again.tobytes() == events.tobytes() and labels_again == labels


@pytest.mark.parametrize(
    ("generator", "classes"),
    [(2, (0, 3, 6, 8, 9)), (3, (0, 3, 6, 8, 9)), (4, (0, 3, 5, 8, 9))],  # 4: its own class 5
)
def test_clips_have_the_statistics_of_real_dvs128_gesture_clips(
    generator: int, classes: tuple[int, ...]
) -> None:
    """The ranges measured on real recordings (dvsapp.synth.stats.REAL_RANGES) on 1.45 s
    clips of several classes and subjects: the rows and columns holding the central 95% of
    all their events, and the mean event rate, ON fraction and fraction of pixels firing."""
    from dvsapp.synth.stats import REAL_RANGES, event_stats, out_of_range

    dur = 1.45
    clips = [gesture_events(c, 100 + c, dur, generator=generator) for c in classes]
    pooled = event_stats(np.concatenate(clips), dur * len(clips))
    bounds = {k: pooled[k] for k in ("row_lo", "row_hi", "col_lo", "col_hi")}
    assert not out_of_range(bounds), bounds
    stats = [event_stats(ev, dur) for ev in clips]
    for key in ("rate", "on_fraction", "pixels_fired"):
        lo, hi = REAL_RANGES[key]
        assert lo <= np.mean([s[key] for s in stats]) <= hi, [s[key] for s in stats]
    for s in stats:  # no clip far off the real ON fractions
        assert 0.46 < s["on_fraction"] < 0.58


def test_event_stats_of_a_known_clip() -> None:
    from dvsapp.synth.stats import event_stats, out_of_range

    ev = np.zeros(4, EVENT_DTYPE)
    ev["x"], ev["y"], ev["t"], ev["p"] = (
        [0, 1, 1, 127],
        [0, 0, 0, 127],
        [0, 10, 20, 2_000_000],
        [True, False, True, True],
    )
    s = event_stats(ev, 2.0)
    assert s["rate"] == 2.0 and s["on_fraction"] == 0.75
    assert s["pixels_fired"] == 2 / (128 * 128)  # the last event is after 1.45 s
    assert set(out_of_range(s)) >= {"rate", "pixels_fired"}
    with pytest.raises(ConfigError, match="empty"):
        event_stats(ev[:0], 1.0)


def test_version_2_recording_and_its_labels_csv(tmp_path) -> None:
    from dvsapp.events.detect import open_reader
    from dvsapp.events.dvsgesture import parse_labels_csv
    from dvsapp.synth.generate import write_recording

    classes = [CLASS["left_hand_wave"], CLASS["right_hand_wave"], CLASS["air_drums"]]
    kw = {"classes": classes, "gesture_s": 0.3, "gap_s": 0.1, "generator": 2}
    paths = write_recording(tmp_path, "v2", 5, formats=("aedat31",), **kw)
    assert [p.name for p in paths] == ["v2.aedat", "v2_labels.csv"]
    labels = parse_labels_csv(paths[1])
    assert [s.label for s in labels] == classes
    assert [(s.t_start_us, s.t_end_us) for s in labels] == [
        (100_000, 400_000),
        (500_000, 800_000),
        (900_000, 1_200_000),
    ]
    events, expected = synth_recording(5, **kw)
    assert labels == expected
    np.testing.assert_array_equal(open_reader(paths[0]).read_all(), events)
    t = events["t"]
    assert t.max() < 1_300_000
    mean_x = [events["x"][(t >= s.t_start_us) & (t < s.t_end_us)].mean() for s in labels]
    assert mean_x[1] < mean_x[0]  # the right hand waves on the image left


def test_unknown_generator_version_is_a_config_error() -> None:
    for bad in (0, 5, True, "2"):
        with pytest.raises(ConfigError, match="generator must be one of 1, 2, 3, 4,"):
            gesture_events(0, 0, 0.1, generator=bad)
        with pytest.raises(ConfigError, match="generator must be one of 1, 2, 3, 4,"):
            synth_recording(0, generator=bad)


# -- generator version 3 -------------------------------------------------------------------
def test_version_3_is_version_2_with_a_dark_shirt_and_bright_skin() -> None:
    """Everything but the shirt and the skin is version 2's draw; the skin lies 3.5-5x the
    room's level (its inverse for a subject darker than the room) and the shirt far below it;
    same seed, same bytes, and not version 2's bytes."""
    from dvsapp.synth import v2, v3

    seen_dark = False
    for seed in range(12):
        a, b = v2.draw_scene(seed), v3.draw_scene(seed)
        assert b.figure.body == a.figure.body and b.pixel == a.pixel
        np.testing.assert_array_equal(b.background, a.background)
        np.testing.assert_array_equal(b.figure.trousers, a.figure.trousers)
        room = float(np.median(a.background))
        ratio = b.figure.skin / room if a.figure.skin > room else room / b.figure.skin
        assert 3.5 <= ratio <= 5.0 or b.figure.skin == 0.97, (seed, ratio)
        shirt = float(np.median(b.figure.shirt))
        if a.figure.skin > room:
            assert shirt < b.figure.skin / 2 and shirt < float(np.median(a.figure.shirt))
        else:
            seen_dark = True
            assert shirt > b.figure.skin * 2
    assert seen_dark  # the seeds cover a subject darker than the room
    c = gesture_events(8, seed=7, duration_s=0.3, generator=3)
    assert c.dtype == EVENT_DTYPE and len(c) > 0
    assert gesture_events(8, seed=7, duration_s=0.3, generator=3).tobytes() == c.tobytes()
    assert gesture_events(8, seed=7, duration_s=0.3, generator=2).tobytes() != c.tobytes()
    events, labels = synth_recording(4, classes=[1, 2], gesture_s=0.2, gap_s=0.1, generator=3)
    again, labels_again = synth_recording(4, classes=[1, 2], gesture_s=0.2, gap_s=0.1, generator=3)
    assert again.tobytes() == events.tobytes() and labels_again == labels
    assert labels == synth_recording(4, classes=[1, 2], gesture_s=0.2, gap_s=0.1, generator=2)[1]


def test_version_3_is_a_training_and_evaluation_choice() -> None:
    from dvsapp.synth import v3
    from dvsapp.synth.generate import GENERATORS
    from dvsapp.train.cli import GENERATOR_CHOICES
    from dvsapp.train.loop import TrainConfig, synth_generator

    assert GENERATOR_CHOICES == GENERATORS
    assert synth_generator(TrainConfig(synth_generator=3)) is v3.gesture_events


# -- generator version 4 -------------------------------------------------------------------
def _hand_path(generator: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The left wrist's image x, from its shoulder, over 1.2 s of a left-arm clockwise circle
    (the generator's own motion and figure), and the arm's length."""
    from dvsapp.synth import v2, v3, v4

    body = v3.draw_scene(seed).figure.body  # version 4's scenes are version 3's
    draw = v4.draw_motion if generator == 4 else v2.draw_motion
    motion = draw(CLASS["left_arm_clockwise"], v2._rng(seed, v2._GESTURE_MOTION, 5), None)
    wrist = body.joints(motion.pose(np.linspace(0, 1.2, 200), body))[:, 1, 2]
    return wrist[:, 0] - body.shoulders[1, 0], body.upper_len + body.fore_len


def test_version_4_circles_the_left_arm_clockwise_beside_the_body() -> None:
    """Version 3's left-arm clockwise circle sweeps around the shoulder (the wrist goes as far
    inside it as outside); version 4's wrist circles 0.3-0.45 arm lengths out from the
    shoulder with a radius of 0.5-0.65, so it never goes more than 0.35 inside it."""
    for seed in range(6):
        x3, length = _hand_path(3, seed)
        x4, _ = _hand_path(4, seed)
        assert x3.min() < -0.8 * length and x3.max() > 0.8 * length
        assert -0.35 * length - 1e-6 <= x4.min() < -0.02 * length, (seed, x4.min() / length)
        assert x4.max() > 0.75 * length, (seed, x4.max() / length)


def test_version_4_is_version_3_but_for_the_left_arm_clockwise() -> None:
    for c in (0, 4, 6, 8):
        a = gesture_events(c, seed=7, duration_s=0.25, generator=4)
        assert a.tobytes() == gesture_events(c, seed=7, duration_s=0.25, generator=3).tobytes()
    c = CLASS["left_arm_clockwise"]
    a = gesture_events(c, seed=7, duration_s=0.25, generator=4)
    assert a.tobytes() == gesture_events(c, seed=7, duration_s=0.25, generator=4).tobytes()
    assert a.tobytes() != gesture_events(c, seed=7, duration_s=0.25, generator=3).tobytes()
    kw = {"classes": [c, 1], "gesture_s": 0.2, "gap_s": 0.1}
    events, labels = synth_recording(4, generator=4, **kw)
    again, labels_again = synth_recording(4, generator=4, **kw)
    assert again.tobytes() == events.tobytes() and labels_again == labels
    assert events.tobytes() != synth_recording(4, generator=3, **kw)[0].tobytes()
    assert labels == synth_recording(4, generator=3, **kw)[1]


def test_version_4_is_a_training_and_evaluation_choice() -> None:
    from dvsapp.synth import v4
    from dvsapp.train.loop import TrainConfig, synth_generator

    assert synth_generator(TrainConfig(synth_generator=4)) is v4.gesture_events


def test_version_2_feeds_the_training_data_under_its_own_cache_key() -> None:
    """`dvsapp train`'s synthetic dataset takes version 2 as its generator (a module-level
    function, so a worker pool can pickle it), cached apart from version 1's clips."""
    from dvsapp.binning import BinningConfig
    from dvsapp.synth import v2
    from dvsapp.train.datasets import SynthGestures

    b = BinningConfig((128, 128), time_window_us=100_000, input_size=(16, 16))
    kw = {"clip_s": 0.4, "cache_dir": False, "workers": 0}
    ds = SynthGestures("val", 1, b, 4, generator=v2.gesture_events, **kw)
    assert len(ds) == 11
    frames, label = ds[3]
    assert label == 3 and tuple(frames.shape) == (4, 2, 16, 16) and float(frames.sum()) > 0
    assert ds.cache_key() != SynthGestures("val", 1, b, 4, **kw).cache_key()


def test_cli_writes_a_version_2_recording(tmp_path) -> None:
    from dvsapp.cli import main as dvsapp_main
    from dvsapp.events.detect import open_reader

    out = tmp_path / "v2"
    argv = ["synth", str(out), "--seed", "3", "--generator", "2", "--classes", "0,9"]
    argv += ["--gesture-s", "0.2", "--gap-s", "0.05", "--format", "aedat31"]
    assert dvsapp_main(argv) == 0
    events, _ = synth_recording(3, classes=[0, 9], gesture_s=0.2, gap_s=0.05, generator=2)
    np.testing.assert_array_equal(open_reader(out / "synth_seed0003.aedat").read_all(), events)
