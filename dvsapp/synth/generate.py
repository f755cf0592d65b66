"""Synthetic DVS128 Gesture-like recordings: a rendered figure through the DVS pixel model.

Each sample draws a *scene* and a *motion* from its seed, renders 128x128 grey frames at
``FPS`` and turns them into events with :class:`~dvsapp.events.emulator.pixel_model.DvsPixelModel`
(timestamps interpolated between frames).

Scene (one per seed; like one subject under one lighting in the real dataset): figure position,
size and limb thickness; background level with optional smooth texture and static clutter
(rectangles); a bright or dark figure (shirt and skin levels, each 2-4.5x from the background);
lighting flicker (none, mains 100/120 Hz of 0.3-1.5 %, or a slow drift of 1-4 %); the pixel
model's thresholds, their mismatch, refractory period, leak and shot-noise rates.
Motion (one per gesture): period, amplitude, phase and class-specific draws
(:func:`dvsapp.synth.figure.draw_motion`). Conventions (image-left = subject's right arm,
clockwise as seen by the camera) are in :mod:`dvsapp.synth.figure`.

Seeds: ``gesture_events(c, seed)`` and ``synth_recording(seed)`` use the same scene for the same
seed, so ``gesture_events(c, s)`` for c in 0..10 are eleven gestures of one subject. Every draw
comes from ``np.random.default_rng`` of a seed-derived key; nothing touches a global RNG, so the
output is identical for identical arguments.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dvsapp.errors import ConfigError
from dvsapp.events.dvsgesture import labels_path_for
from dvsapp.events.emulator.pixel_model import DvsPixelModel, PixelModelConfig
from dvsapp.events.types import DVS_GESTURE_CLASSES, EVENT_DTYPE, LabelSegment
from dvsapp.events.writers import write_aedat4, write_aedat31, write_labels_csv
from dvsapp.synth.figure import (
    N_CLASSES,
    REST_POSE,
    Body,
    Motion,
    blend_poses,
    draw_motion,
)
from dvsapp.synth.render import CapsuleRenderer, draw_static

SENSOR_SIZE: tuple[int, int, int] = (128, 128, 2)
#: Rendering rate; the pixel model interpolates event times between frames.
FPS = 250
FRAME_US = 1_000_000 // FPS
FORMATS = ("aedat31", "aedat4")
#: The ``#Start-Time`` written into synthetic AEDAT 3.1 files (fixed: byte-identical output).
START_TIME = "1970-01-01 00:00:00 (TZ+0000)"
_WRITE_PACKET = 1 << 16

# Seed-derived keys of the independent random streams.
_SCENE, _GESTURE_MOTION, _RECORDING_MOTION, _PIXELS, _ORDER = range(5)

#: Generator versions: 1 (this module's figure; the models shipped before 2026-12-04 trained
#: on it), 2 (:mod:`dvsapp.synth.v2`, a whole body in a realistic scene; the models shipped
#: 2026-12-04..05 trained on it), 3 (:mod:`dvsapp.synth.v3`, version 2 with a dark shirt and
#: bright skin) and 4 (:mod:`dvsapp.synth.v4`, version 3 with the left arm's clockwise
#: circles beside the body: the shipped models' training data). Each is frozen once models
#: are trained on it: the same (version, arguments) give the same bytes. (Version 2's arm
#: circles became brisker on 2026-12-04, before any shipped model trained on it.)
GENERATORS = (1, 2, 3, 4)
DEFAULT_GENERATOR = 1


@dataclass(frozen=True)
class Scene:
    """Everything fixed within one recording: the figure, its levels, background, lighting
    and the sensor's pixel model."""

    body: Body
    background: np.ndarray
    shirt: float
    skin: float
    flicker_amp: float
    flicker_hz: float
    flicker_phase: float
    pixel: PixelModelConfig

    def gain(self, t_s: float) -> float:
        """Global lighting factor at time ``t_s``."""
        if self.flicker_amp == 0.0:
            return 1.0
        return 1.0 + self.flicker_amp * math.sin(
            2 * math.pi * self.flicker_hz * t_s + self.flicker_phase
        )


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, not {seed!r}")
    return int(seed)


def draw_scene(seed: int) -> Scene:
    """The scene of ``seed`` (see the module docstring for what varies)."""
    seed = _check_seed(seed)
    rng = np.random.default_rng([seed, _SCENE])
    w, h = SENSOR_SIZE[0], SENSOR_SIZE[1]
    body = Body(
        cx=w / 2 + rng.uniform(-8, 8),
        cy=70 + rng.uniform(-5, 6),
        scale=rng.uniform(1.0, 1.3),
        thickness=rng.uniform(0.8, 1.25),
    )
    bright = rng.random() < 0.5  # a bright figure on a dark background, or the reverse
    level = rng.uniform(0.05, 0.25) if bright else rng.uniform(0.3, 0.7)
    bg = np.full((h, w), level, dtype=np.float64)
    if rng.random() < 0.6:  # smooth texture: bilinear upsampling of a coarse random grid
        coarse = rng.uniform(-1, 1, (7, 7))
        gy = np.linspace(0, 6, h)
        gx = np.linspace(0, 6, w)
        rows = np.array([np.interp(gx, np.arange(7), r) for r in coarse])
        smooth = np.array([np.interp(gy, np.arange(7), c) for c in rows.T]).T
        bg *= 1 + rng.uniform(0.05, 0.25) * smooth
    for _ in range(int(rng.integers(0, 4))):  # static clutter: furniture, a door frame, ...
        x0, y0 = rng.integers(0, w - 8), rng.integers(0, h - 8)
        x1, y1 = x0 + rng.integers(6, 50), y0 + rng.integers(6, 70)
        bg[y0:y1, x0:x1] *= rng.uniform(0.5, 1.8)
    np.clip(bg, 0.02, 0.98, out=bg)
    c_shirt, c_skin = rng.uniform(2.0, 4.5, 2)
    if bright:
        shirt, skin = min(level * c_shirt, 0.97), min(level * c_skin, 0.97)
    else:
        shirt, skin = level / c_shirt, level / c_skin
    kind = rng.choice(3, p=[0.4, 0.3, 0.3])  # none, mains flicker, slow drift
    amp, hz = 0.0, 0.0
    if kind == 1:
        amp, hz = rng.uniform(0.003, 0.015), float(rng.choice([100.0, 120.0]))
    elif kind == 2:
        amp, hz = rng.uniform(0.01, 0.04), rng.uniform(0.1, 0.5)
    pos = rng.uniform(0.15, 0.25)
    pixel = PixelModelConfig(
        pos_threshold=pos,
        neg_threshold=pos * rng.uniform(0.85, 1.15),
        threshold_sigma=rng.uniform(0.02, 0.05),
        refractory_us=int(rng.integers(100, 1000)),
        leak_rate_hz=rng.uniform(0.01, 0.08),
        shot_noise_rate_hz=rng.uniform(0.01, 0.1),
        seed=int(np.random.SeedSequence([seed, _PIXELS]).generate_state(1)[0]),
    )
    return Scene(
        body=body,
        background=bg.astype(np.float32),
        shirt=float(shirt),
        skin=float(skin),
        flicker_amp=float(amp),
        flicker_hz=float(hz),
        flicker_phase=float(rng.uniform(0, 2 * np.pi)),
        pixel=pixel,
    )


def render_events(scene: Scene, poses: np.ndarray, times_us: np.ndarray) -> np.ndarray:
    """Events of the figure in ``poses`` (T, 4) at frame times ``times_us`` (T, increasing):
    the pixel model is reset on the first frame, so events lie in (times[0], times[-1]]."""
    body = scene.body
    static = draw_static(
        scene.background,
        [(body.static_capsules()[:3], scene.shirt), (body.static_capsules()[3:], scene.skin)],
    )
    renderer = CapsuleRenderer(static)
    model = DvsPixelModel(SENSOR_SIZE[0], SENSOR_SIZE[1], scene.pixel)
    r_up, r_fore, r_hand = body.radii
    joints = body.joints(poses).tolist()  # (T, arm, point, xy) as Python floats: fast to index
    t0_us = int(times_us[0])
    parts = []
    for k, t_us in enumerate(times_us.tolist()):
        shirt_caps = []
        skin_caps = []
        for s, e, w, tip in joints[k]:
            shirt_caps.append((s[0], s[1], e[0], e[1], r_up))
            skin_caps.append((e[0], e[1], w[0], w[1], r_fore))
            skin_caps.append((w[0], w[1], tip[0], tip[1], r_hand))
        gain = scene.gain((t_us - t0_us) * 1e-6)
        frame = renderer.render([(shirt_caps, scene.shirt), (skin_caps, scene.skin)], gain)
        if k == 0:
            model.reset(frame, t_us)
        else:
            ev = model.emit(frame, t_us)
            if len(ev):
                parts.append(ev)
    return np.concatenate(parts) if parts else np.zeros(0, EVENT_DTYPE)


def _check_duration(name: str, value: float, allow_zero: bool = False) -> int:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number of seconds, not {value!r}") from None
    if not (math.isfinite(v) and (v >= 0 if allow_zero else v > 0)) or v > 3600:
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be {bound} and at most 3600 s, not {value!r}")
    return round(v * 1e6)


def check_generator(generator: Any) -> int:
    """A valid generator version (see ``GENERATORS``)."""
    if isinstance(generator, bool) or generator not in GENERATORS:
        raise ConfigError(
            f"generator must be one of {', '.join(map(str, GENERATORS))}, not {generator!r}"
        )
    return int(generator)


def version_module(version: int) -> Any:
    """The module of generator ``version`` > 1 (imported on first use)."""
    import importlib

    if version not in GENERATORS or version < 2:
        raise ConfigError(f"no synthetic generator version {version!r}")
    return importlib.import_module(f"dvsapp.synth.v{version}")


def _check_class(c: Any) -> int:
    if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c < N_CLASSES:
        raise ConfigError(f"class index must be an integer in 0..{N_CLASSES - 1}, not {c!r}")
    return int(c)


def gesture_events(
    class_index: int,
    seed: int,
    duration_s: float = 2.0,
    *,
    t0_us: int = 0,
    amplitude: float | None = None,
    generator: int = DEFAULT_GENERATOR,
) -> np.ndarray:
    """Events (EVENT_DTYPE, time-sorted, t in [t0_us, t0_us + duration)) of one gesture clip,
    deterministic by (class_index, seed); all variation drawn from seed.

    ``amplitude`` overrides the motion's drawn amplitude factor (about 0.75-1.25); 0 holds the
    figure still in the clip's first pose, leaving only noise and flicker events.
    ``generator`` picks the version (``GENERATORS``; 1, the default, is this module's).
    """
    version = check_generator(generator)
    if version > 1:
        module = version_module(version)
        return module.gesture_events(
            class_index, seed, duration_s, t0_us=t0_us, amplitude=amplitude
        )
    c = _check_class(class_index)
    seed = _check_seed(seed)
    dur_us = _check_duration("duration_s", duration_s)
    if isinstance(t0_us, bool) or not isinstance(t0_us, (int, np.integer)) or t0_us < 0:
        raise ConfigError(f"t0_us must be an integer >= 0, not {t0_us!r}")
    t0_us = int(t0_us)
    scene = draw_scene(seed)
    motion = draw_motion(c, np.random.default_rng([seed, _GESTURE_MOTION, c]), amplitude)
    n = -(-dur_us // FRAME_US)
    # One frame before t0 to reset on, then frames up to t0 + duration or just past it.
    times = t0_us + FRAME_US * np.arange(-1, n + 1, dtype=np.int64)
    poses = motion.pose((times - t0_us) * 1e-6, scene.body)
    events = render_events(scene, poses, times)
    t = events["t"]
    return events[(t >= t0_us) & (t < t0_us + dur_us)]


def _recording_plan(
    seed: int, classes: Sequence[int] | None, gesture_us: int, gap_us: int
) -> tuple[list[int], list[Motion], list[LabelSegment], int]:
    if classes is None:
        order = np.random.default_rng([seed, _ORDER]).permutation(N_CLASSES).tolist()
    else:
        if isinstance(classes, (str, bytes)):
            raise ConfigError(f"classes must be a sequence of class indices, not {classes!r}")
        order = [_check_class(c) for c in classes]
        if not order:
            raise ConfigError("classes must name at least one gesture")
    motions = [
        draw_motion(c, np.random.default_rng([seed, _RECORDING_MOTION, i]))
        for i, c in enumerate(order)
    ]
    labels = []
    for i, c in enumerate(order):
        start = gap_us + i * (gesture_us + gap_us)
        labels.append(LabelSegment(c, DVS_GESTURE_CLASSES[c], start, start + gesture_us))
    total = len(order) * gesture_us + (len(order) + 1) * gap_us
    return order, motions, labels, total


def synth_recording(
    seed: int,
    classes: Sequence[int] | None = None,
    gesture_s: float = 2.0,
    gap_s: float = 0.3,
    generator: int = DEFAULT_GENERATOR,
) -> tuple[np.ndarray, list[LabelSegment]]:
    """One continuous recording with several gestures back to back (default: all 11 classes in a
    seed-shuffled order) as in DVS128 Gesture files; labels cover each gesture's span. One figure
    and one scene per recording (like one user/lighting), gestures varying within it; the figure
    keeps moving plausibly (or rests) in the gaps.

    Layout: a gap, gesture 1, a gap, ..., gesture n, a gap; the recording spans
    ``[0, n * gesture_s + (n + 1) * gap_s)``. The figure starts and ends at rest (arms down) and
    in each gap eases from the last gesture's final pose to the next one's first pose.
    ``generator`` picks the version (``GENERATORS``; 1, the default, is this module's).
    """
    version = check_generator(generator)
    if version > 1:
        return version_module(version).synth_recording(seed, classes, gesture_s, gap_s)
    seed = _check_seed(seed)
    gesture_us = _check_duration("gesture_s", gesture_s)
    gap_us = _check_duration("gap_s", gap_s, allow_zero=True)
    scene = draw_scene(seed)
    _, motions, labels, total = _recording_plan(seed, classes, gesture_us, gap_us)
    times = FRAME_US * np.arange(0, -(-total // FRAME_US) + 1, dtype=np.int64)
    poses = np.empty((len(times), 4))
    prev_end_t, prev_pose = 0, REST_POSE
    for motion, seg in zip(motions, labels, strict=True):
        in_gap = (times >= prev_end_t) & (times < seg.t_start_us)
        start_pose = motion.pose(np.zeros(1), scene.body)[0]
        frac = (times[in_gap] - prev_end_t) / max(seg.t_start_us - prev_end_t, 1)
        poses[in_gap] = blend_poses(prev_pose, start_pose, frac)
        inside = (times >= seg.t_start_us) & (times < seg.t_end_us)
        poses[inside] = motion.pose((times[inside] - seg.t_start_us) * 1e-6, scene.body)
        prev_end_t = seg.t_end_us
        prev_pose = motion.pose(np.array([gesture_us * 1e-6]), scene.body)[0]
    tail = times >= prev_end_t
    frac = (times[tail] - prev_end_t) / max(total - prev_end_t, 1)
    poses[tail] = blend_poses(prev_pose, REST_POSE, frac)
    events = render_events(scene, poses, times)
    return events[events["t"] < total], labels


def write_recording(
    out_dir: Path,
    name: str,
    seed: int,
    *,
    formats: Sequence[str] = FORMATS,
    **kwargs: Any,
) -> list[Path]:
    """Writes name.aedat (AEDAT 3.1) + name_labels.csv and/or name.aedat4 (via write_aedat4 with
    labels if it supports them, else the CSV beside it); returns the paths written.

    ``write_aedat4`` takes no labels, so the one ``name_labels.csv`` serves both files (it is
    where :func:`dvsapp.events.dvsgesture.labels_path_for` looks for either). ``kwargs`` go to
    :func:`synth_recording`. The folder is created if missing. Paths come back in the order
    ``.aedat``, ``_labels.csv``, ``.aedat4`` (those written).
    """
    if isinstance(formats, str):
        formats = (formats,)
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ConfigError(f"formats must be among {', '.join(FORMATS)}, not {list(formats)!r}")
    if not name or os.sep in name or "/" in name or name in (".", ".."):
        raise ConfigError(f"recording name must be a plain file name, not {name!r}")
    events, labels = synth_recording(seed, **kwargs)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{out}: cannot create the folder: {e.strerror or e}") from None
    paths = []
    aedat = out / f"{name}.aedat"
    if "aedat31" in formats:
        paths.append(write_aedat31(aedat, events, SENSOR_SIZE[:2], start_time=START_TIME))
    paths.append(write_labels_csv(labels_path_for(aedat), labels))
    if "aedat4" in formats:
        path4 = out / f"{name}.aedat4"
        chunks = (events[i : i + _WRITE_PACKET] for i in range(0, len(events), _WRITE_PACKET))
        write_aedat4(path4, chunks, SENSOR_SIZE, compression="zstd")  # 35% smaller than lz4
        paths.append(path4)
    return paths
