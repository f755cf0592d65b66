"""Generator version 2: a whole, swaying body in a DVS128 Gesture-like scene.

Version 1 (:mod:`dvsapp.synth.generate`) draws a small upper-body stick figure; a network
trained on the real DVS128 Gesture names about a third of its clips (docs/BENCHMARKS.md). The
real recordings (Amir et al., CVPR 2017: 29 subjects, 3 lighting conditions, a person standing
in front of a DVS128) differ in what the issue measured on real clips: 44-125 k events/s, ON
fraction 0.49-0.55, 95% of events in rows 23-121 and columns 3-125, 23-58% of pixels firing at
least once in 1.45 s. Version 2 changes, every draw from the seed:

* Figure: head (with hair), neck, chest, torso, hips and legs, 1.35-1.6x version 1's size and
  lower in the frame (shoulders at rows 66-76), so the body fills the lower part of the frame
  down past its bottom edge and the arms' circles reach its sides and about row 20. Limb
  thickness and shoulder width vary per subject; 85% of subjects are brighter than the room.
* Motion of the whole body: sway (two slow sinusoids), a small vertical bob, the torso
  following the arms at the gesture's own frequency, the head moving on its own.
* Clothing: shirt and trousers each carry a smooth random texture (folds, prints) of 10-35%
  contrast that moves with the body, so a swaying torso fires inside its outline too.
* Optics: a Gaussian lens blur of 0.5-1.1 px (a DVS128's small lens is seldom sharp).
* Lighting per recording: fluorescent (100/120 Hz flicker of 1-6%), LED (0-1.5% at 100/120 Hz)
  or natural (a slow drift of 1-4%), with the scene's overall contrast.
* Sensor: DVS128-like thresholds (0.11-0.19 log units, about its 15% contrast; 2-4.5%
  mismatch), refractory period 0.3-1.5 ms, leak of 0.01-0.05 Hz and background activity of
  0.03-0.15 Hz per pixel.
* Per-class arm kinematics after the dataset paper's gesture list (the ``_pose_*`` functions):
  claps high at the chest with the elbows near the body, rolls whose circle turns towards the
  camera (a tall ellipse in the image), alternating drum strokes at the chest, a trailing
  forearm in the arm circles, a drifting tempo, and the idle arm's own resting pose.

The legs are mostly below the frame; what the critic (:mod:`dvsapp.synth.critic`) said about
each choice is in docs/BENCHMARKS.md.

Conventions (handedness, clockwise as seen by the camera, pose angles) are version 1's,
:mod:`dvsapp.synth.figure`. Seeds are keyed as in version 1 but on separate streams, so the
same seed gives a new subject here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from dvsapp.errors import ConfigError
from dvsapp.events.emulator.pixel_model import DvsPixelModel, PixelModelConfig
from dvsapp.events.types import DVS_GESTURE_CLASSES, EVENT_DTYPE, LabelSegment
from dvsapp.synth.figure import N_CLASSES, REST_POSE, TAU, Body, blend_poses, mirror
from dvsapp.synth.figure import _other as _v1_other
from dvsapp.synth.generate import (
    FRAME_US,
    SENSOR_SIZE,
    _check_class,
    _check_duration,
    _check_seed,
)
from dvsapp.synth.render import Capsule, CapsuleRenderer

W, H = SENSOR_SIZE[0], SENSOR_SIZE[1]
#: Version tag mixed into every seed key (version 1's streams stay untouched).
_V = 2
_SCENE, _GESTURE_MOTION, _RECORDING_MOTION, _PIXELS, _ORDER, _SWAY = range(6)
#: Margin of the texture canvases (the body sways at most this far).
_PAD = 8
LIGHTING = ("fluorescent", "led", "natural")


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([_V, *key])


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """Zero-mean smooth noise in about [-1, 1]: bilinear upsampling of a coarse random grid."""
    h, w = shape
    coarse = rng.uniform(-1, 1, (cells + 1, cells + 1))
    gx = np.linspace(0, cells, w)
    gy = np.linspace(0, cells, h)
    rows = np.array([np.interp(gx, np.arange(cells + 1), r) for r in coarse])
    return np.array([np.interp(gy, np.arange(cells + 1), c) for c in rows.T]).T


def _texture(rng: np.random.Generator, level: float, contrast: float) -> np.ndarray:
    """A clothing texture around ``level``: coarse folds, finer print, sometimes stripes."""
    shape = (H + 2 * _PAD, W + 2 * _PAD)
    tex = 0.6 * _smooth_noise(rng, shape, int(rng.integers(4, 9)))
    tex += 0.4 * _smooth_noise(rng, shape, int(rng.integers(14, 30)))
    if rng.random() < 0.35:  # stripes or checks
        period = rng.uniform(5, 12)
        angle = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
        tex += 0.8 * np.sign(np.sin(TAU * (xx * np.cos(angle) + yy * np.sin(angle)) / period))
    tex = level * (1.0 + contrast * tex / max(float(np.abs(tex).max()), 1e-6))
    return np.clip(tex, 0.01, 0.99).astype(np.float32)


@dataclass(frozen=True)
class Figure:
    """A subject: the arm geometry (version 1's :class:`Body`) plus the parts version 1 keeps
    out of the picture, and their looks."""

    body: Body
    shoulder_k: float  # shoulder half-width factor
    leg_spread: float
    shirt: np.ndarray  # textures (H + 2 PAD, W + 2 PAD)
    trousers: np.ndarray
    skin: float
    hair: float

    def torso_capsules(self, dx: float, dy: float) -> list[Capsule]:
        """Chest and torso (shirt), moved by the body offset (dx, dy)."""
        b = self.body
        s, k = b.scale, b.scale * b.thickness
        cx, cy = b.cx + dx, b.cy + dy
        sw = 6 * s * self.shoulder_k
        return [
            (cx - sw, cy - 14 * s, cx + sw, cy - 14 * s, 8.5 * k),
            (cx, cy - 10 * s, cx, cy + 16 * s, 10.5 * k),
        ]

    def leg_capsules(self, dx: float, dy: float) -> list[Capsule]:
        """Hips and legs (trousers); the legs move a third as far as the hips."""
        b = self.body
        s, k = b.scale, b.scale * b.thickness
        cx, cy = b.cx + dx, b.cy + dy
        hip = cy + 20 * s
        foot_dx = dx / 3 - dx
        out = [(cx - 5 * s, hip, cx + 5 * s, hip, 9.5 * k)]
        for side in (-1.0, 1.0):
            x0 = cx + side * 5.5 * s
            x1 = x0 + side * self.leg_spread * s + foot_dx
            out.append((x0, hip + 2 * s, x1, hip + 50 * s, 6.5 * k))
        return out

    def head_capsules(self, dx: float, dy: float) -> tuple[list[Capsule], list[Capsule]]:
        """(neck and face, hair) at the head's own offset."""
        b = self.body
        s, k = b.scale, b.scale * b.thickness
        cx, cy = b.cx + dx, b.cy + dy
        skin = [
            (cx, cy - 26 * s, cx, cy - 20 * s, 3.8 * k),
            (cx, cy - 35 * s, cx, cy - 31 * s, 7.5 * s),
        ]
        hair = [(cx - 2 * s, cy - 38.5 * s, cx + 2 * s, cy - 38.5 * s, 6.2 * s)]
        return skin, hair


@dataclass(frozen=True)
class Scene2:
    """Everything fixed within one recording (one subject under one lighting)."""

    figure: Figure
    background: np.ndarray
    lighting: str
    flicker_amp: float
    flicker_hz: float
    flicker_phase: float
    blur_sigma: float
    pixel: PixelModelConfig

    def gain(self, t_s: float) -> float:
        """Global lighting factor at time ``t_s``."""
        if self.flicker_amp == 0.0:
            return 1.0
        return 1.0 + self.flicker_amp * math.sin(TAU * self.flicker_hz * t_s + self.flicker_phase)


def draw_scene(seed: int) -> Scene2:
    """The scene of ``seed`` (module docstring: what varies)."""
    seed = _check_seed(seed)
    rng = _rng(seed, _SCENE)
    # The subject fills the lower part of the frame: shoulders at rows 66-76, so arm circles
    # reach about row 20 and the hips the bottom edge (the real clips' central 95% of events
    # lie in rows 23-121); a network trained on the real clips names gestures of a figure so
    # placed far more often than of a smaller, higher one (docs/BENCHMARKS.md).
    scale = rng.uniform(1.35, 1.6)
    body = Body(
        cx=W / 2 + rng.uniform(-6, 6),
        cy=rng.uniform(66, 76) + 18 * scale,
        scale=scale,
        thickness=rng.uniform(0.9, 1.25),
    )
    # Mostly a lit subject before a darker room: with the figure brighter than the background
    # the real-data critic tells the left arm's clockwise from counter-clockwise circles (by
    # which polarity leads), with the contrast reversed it swaps them (docs/BENCHMARKS.md).
    bright = rng.random() < 0.85
    level = rng.uniform(0.08, 0.25) if bright else rng.uniform(0.35, 0.7)
    bg = np.full((H, W), level, dtype=np.float64)
    bg *= 1 + rng.uniform(0.05, 0.3) * _smooth_noise(rng, (H, W), int(rng.integers(3, 8)))
    for _ in range(int(rng.integers(0, 5))):  # furniture, a door frame, a poster ...
        x0, y0 = rng.integers(0, W - 8), rng.integers(0, H - 8)
        x1, y1 = x0 + rng.integers(6, 60), y0 + rng.integers(6, 80)
        bg[y0:y1, x0:x1] *= rng.uniform(0.5, 1.8)
    np.clip(bg, 0.02, 0.98, out=bg)

    def level_from(ratio: float) -> float:
        return min(level * ratio, 0.97) if bright else level / ratio

    shirt = level_from(rng.uniform(1.8, 4.5))
    trousers = level_from(rng.uniform(1.3, 3.5))
    skin = level_from(rng.uniform(2.0, 4.5))
    hair = level_from(rng.uniform(0.4, 1.5))
    figure = Figure(
        body=body,
        shoulder_k=float(rng.uniform(0.9, 1.25)),
        leg_spread=float(rng.uniform(0, 6)),
        shirt=_texture(rng, shirt, rng.uniform(0.1, 0.35)),
        trousers=_texture(rng, trousers, rng.uniform(0.05, 0.25)),
        skin=float(skin),
        hair=float(hair),
    )
    lighting = LIGHTING[int(rng.choice(3, p=[0.4, 0.3, 0.3]))]
    if lighting == "fluorescent":
        amp, hz = rng.uniform(0.01, 0.06), float(rng.choice([100.0, 120.0]))
    elif lighting == "led":
        amp, hz = rng.uniform(0.0, 0.015), float(rng.choice([100.0, 120.0]))
    else:
        amp, hz = rng.uniform(0.01, 0.04), rng.uniform(0.05, 0.3)
    pos = rng.uniform(0.11, 0.19)
    pixel = PixelModelConfig(
        pos_threshold=pos,
        neg_threshold=pos * rng.uniform(0.9, 1.04),
        threshold_sigma=rng.uniform(0.02, 0.045),
        refractory_us=int(rng.integers(300, 1500)),
        leak_rate_hz=rng.uniform(0.01, 0.05),
        shot_noise_rate_hz=rng.uniform(0.03, 0.15),
        seed=int(np.random.SeedSequence([_V, seed, _PIXELS]).generate_state(1)[0]),
    )
    return Scene2(
        figure=figure,
        background=bg.astype(np.float32),
        lighting=lighting,
        flicker_amp=float(amp),
        flicker_hz=float(hz),
        flicker_phase=float(rng.uniform(0, TAU)),
        blur_sigma=float(rng.uniform(0.5, 1.1)),
        pixel=pixel,
    )


# -- motion ----------------------------------------------------------------------------------
_OUT = (-1.0, 1.0)


@dataclass(frozen=True)
class Motion2:
    """One gesture: class, period, amplitude factor (0 holds the first pose), phase and
    class-specific draws."""

    class_index: int
    period_s: float
    amplitude: float
    phase: float
    extra: dict[str, Any]

    def cycle(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Times ``t`` (s, at least 1-D) and the gesture's cycle angle ``u`` (rad) at them."""
        t = np.atleast_1d(np.asarray(t_s, dtype=np.float64))
        # A little tempo drift: a real subject does not keep a metronome's time.
        drift = self.extra["tempo"] * np.sin(TAU * t / self.extra["tempo_period"])
        return t, TAU * t / self.period_s + self.phase + drift

    def pose(self, t_s: np.ndarray, body: Body) -> np.ndarray:
        """The (T, 4) arm pose at ``t_s`` seconds from the gesture's start."""
        t, u = self.cycle(t_s)
        return _POSES[self.class_index](self, t, u, body)


#: Period ranges (s) per class.
_PERIODS: tuple[tuple[float, float], ...] = (
    (0.35, 0.6),  # hand_clapping
    (0.4, 0.7),  # right_hand_wave
    (0.4, 0.7),  # left_hand_wave
    # Brisk arm circles (0.5-0.85 s a turn): the real-data critic names circles of 0.8-1.4 s
    # "other_gestures" more often (docs/BENCHMARKS.md).
    (0.5, 0.85),  # right_arm_clockwise
    (0.5, 0.85),  # right_arm_counter_clockwise
    (0.5, 0.85),  # left_arm_clockwise
    (0.5, 0.85),  # left_arm_counter_clockwise
    (0.45, 0.8),  # arm_roll
    (0.35, 0.6),  # air_drums
    (0.25, 0.4),  # air_guitar (strum)
    (1.0, 1.0),  # other_gestures
)


#: ``(class, rng, amplitude) -> motion``: how a version draws a gesture's motion.
MotionDraw = Callable[[int, np.random.Generator, "float | None"], Motion2]


def draw_motion(
    class_index: int, rng: np.random.Generator, amplitude: float | None = None
) -> Motion2:
    """A random variant of class ``class_index``'s motion (every draw from ``rng``)."""
    if not 0 <= class_index < N_CLASSES:
        raise ConfigError(f"class index must be in 0..{N_CLASSES - 1}, not {class_index}")
    lo, hi = _PERIODS[class_index]
    period = float(rng.uniform(lo, hi))
    amp = float(rng.uniform(0.8, 1.2)) if amplitude is None else float(amplitude)
    if not amp >= 0:
        raise ConfigError(f"amplitude must be >= 0, not {amp}")
    extra: dict[str, Any] = {
        "k": float(rng.uniform(0.85, 1.2)),
        "raise": float(rng.uniform(np.radians(-10), np.radians(35))),
        "swing": float(rng.uniform(np.radians(25), np.radians(45))),
        "elbow": float(rng.uniform(0.0, 0.5)),  # elbow bend in arm circles (rad)
        "dir": float(rng.choice([-1.0, 1.0])),
        "swap": float(rng.random() < 0.1),  # air guitar played left-handed (about 1 in 10)
        "slide_ratio": float(rng.uniform(2.0, 4.0)),
        "height": float(rng.uniform(-1.0, 1.0)),
        "flat": float(rng.uniform(0.25, 0.6)),  # arm roll: ellipse width / height
        "tempo": float(rng.uniform(0.0, 0.6)),
        "tempo_period": float(rng.uniform(2.0, 5.0)),
        "idle": rng.uniform(-0.15, 0.15, 4).tolist(),  # the resting arm's own pose
    }
    if class_index == N_CLASSES - 1:
        extra["base"] = rng.uniform(-0.6, 0.9, 4).tolist()
        extra["freq"] = rng.uniform(0.3, 2.0, (4, 3)).tolist()
        extra["amp"] = rng.uniform(0.15, 0.45, (4, 3)).tolist()
        extra["ph"] = rng.uniform(0, TAU, (4, 3)).tolist()
    return Motion2(class_index, period, amp, float(rng.uniform(0, TAU)), extra)


def _rest(m: Motion2, n: int) -> np.ndarray:
    return np.broadcast_to(REST_POSE + np.asarray(m.extra["idle"]), (n, 4)).copy()


def _pose_clap(m: Motion2, t: np.ndarray, u: np.ndarray, b: Body) -> np.ndarray:
    """Hands meet high in front of the chest, about shoulder height, and part by about 6 body
    units each (some 10 cm: the forearms move, the elbows stay near the body), patting a
    little up and down as they meet."""
    s, k = b.scale, m.extra["k"]
    gap = m.amplitude * 6 * s * k * (0.5 - 0.5 * np.cos(u))
    y = b.cy - (21 + 3 * m.extra["height"]) * s + m.amplitude * 4 * s * np.sin(u)
    half = 3.5 * s + gap
    return np.concatenate(
        [b.reach(0, b.cx - half, y, _OUT[0]), b.reach(1, b.cx + half, y, _OUT[1])], axis=-1
    )


def _pose_wave(arm: int):
    def pose(m: Motion2, t: np.ndarray, u: np.ndarray, b: Body) -> np.ndarray:
        """Upper arm out and up, forearm near vertical swinging about the elbow."""
        n = len(t)
        upper = np.full(n, np.pi - m.extra["raise"]) + 0.08 * m.amplitude * np.sin(u)
        fore = np.pi / 2 + m.amplitude * m.extra["swing"] * np.sin(u)
        arm_pose = np.stack([upper, fore], axis=-1)
        if arm == 1:
            arm_pose = mirror(arm_pose)
        out = _rest(m, n)
        out[:, 2 * arm : 2 * arm + 2] = arm_pose
        return out

    return pose


def _pose_circle(arm: int, clockwise: bool):
    def pose(m: Motion2, t: np.ndarray, u: np.ndarray, b: Body) -> np.ndarray:
        """The whole arm sweeps a big circle, the elbow a little bent: the forearm trails."""
        n = len(t)
        sign = -1.0 if clockwise else 1.0  # clockwise as seen by the camera: angle decreases
        a = m.phase + sign * (u - m.phase) * max(m.amplitude, 0.0)
        out = _rest(m, n)
        out[:, 2 * arm] = a
        out[:, 2 * arm + 1] = a - sign * m.extra["elbow"]
        return out

    return pose


def _pose_roll(m: Motion2, t: np.ndarray, u: np.ndarray, b: Body) -> np.ndarray:
    """The forearms roll around each other in front of the chest. The roll turns mostly
    towards the camera, so its circle projects to a tall ellipse (width 25-60% of height)."""
    s, k = b.scale, m.extra["k"]
    r = m.amplitude * 10 * s * k
    rx = r * m.extra["flat"]
    theta = m.extra["dir"] * u
    cy = b.cy - (3 + 3 * m.extra["height"]) * s
    xr = b.cx - 3 * s + rx * np.cos(theta)
    yr = cy - r * np.sin(theta)
    xl = b.cx + 3 * s + rx * np.cos(theta + np.pi)
    yl = cy - r * np.sin(theta + np.pi)
    return np.concatenate([b.reach(0, xr, yr, _OUT[0]), b.reach(1, xl, yl, _OUT[1])], axis=-1)


def _pose_drums(m: Motion2, t: np.ndarray, u: np.ndarray, b: Body) -> np.ndarray:
    """Alternate strokes in front of the chest: each hand goes up and down on a thin loop
    (width 25-60% of its 20-unit height), half a cycle after the other. Lower, wider and
    larger strokes are all named "other_gestures" by the real-data critic."""
    s, k = b.scale, m.extra["k"]
    r = m.amplitude * 10 * s * k
    rx = r * m.extra["flat"]
    theta = m.extra["dir"] * u
    cy = b.cy - (12 + 3 * m.extra["height"]) * s
    xr = b.cx - 3 * s + rx * np.cos(theta)
    yr = cy - r * np.sin(theta)
    xl = b.cx + 3 * s + rx * np.cos(theta + np.pi)  # the mirror image of the right hand's
    yl = cy - r * np.sin(theta + np.pi)
    return np.concatenate([b.reach(0, xr, yr, _OUT[0]), b.reach(1, xl, yl, _OUT[1])], axis=-1)


def _pose_guitar(m: Motion2, t: np.ndarray, u: np.ndarray, b: Body) -> np.ndarray:
    """One hand strums at the hip, the other frets out to the side at shoulder height."""
    s, k = b.scale, m.extra["k"]
    fret = 0 if m.extra["swap"] else 1
    side = 1.0 if fret == 1 else -1.0
    slide = m.amplitude * 5 * s * k * np.sin(u / m.extra["slide_ratio"])
    fx = b.cx + side * (26 * s + slide * 0.9)
    fy = b.shoulders[fret, 1] + 4 * s - slide * 0.45
    sx = b.cx - side * 4 * s + 0 * t
    sy = b.cy + 10 * s + m.amplitude * 10 * s * k * np.sin(u)
    fret_pose = b.reach(fret, fx, fy, -_OUT[fret])
    strum_pose = b.reach(1 - fret, sx, sy, _OUT[1 - fret])
    parts = [fret_pose, strum_pose] if fret == 0 else [strum_pose, fret_pose]
    return np.concatenate(parts, axis=-1)


def _pose_other(m: Motion2, t: np.ndarray, u: np.ndarray, b: Body) -> np.ndarray:
    """Anything else: three sinusoids per joint (version 1's rule, from ``m.extra``)."""
    return _v1_other(m, t, u, b)  # type: ignore[arg-type]


_POSES = (
    _pose_clap,
    _pose_wave(0),
    _pose_wave(1),
    _pose_circle(0, clockwise=True),
    _pose_circle(0, clockwise=False),
    _pose_circle(1, clockwise=True),
    _pose_circle(1, clockwise=False),
    _pose_roll,
    _pose_drums,
    _pose_guitar,
    _pose_other,
)


# -- body motion and rendering ---------------------------------------------------------------
@dataclass(frozen=True)
class Sway:
    """Whole-body motion of one recording: sway, bob, the torso following the arms, the head."""

    amp: tuple[float, float]
    hz: tuple[float, float]
    ph: tuple[float, float]
    bob: float
    bob_hz: float
    follow: float
    head: float
    head_hz: float

    @staticmethod
    def draw(rng: np.random.Generator, scale: float) -> Sway:
        return Sway(
            amp=(float(rng.uniform(0.5, 2.0) * scale), float(rng.uniform(0.2, 1.0) * scale)),
            hz=(float(rng.uniform(0.1, 0.4)), float(rng.uniform(0.4, 1.2))),
            ph=(float(rng.uniform(0, TAU)), float(rng.uniform(0, TAU))),
            bob=float(rng.uniform(0.2, 0.8) * scale),
            bob_hz=float(rng.uniform(0.2, 0.8)),
            follow=float(rng.uniform(0.3, 1.0) * scale),
            head=float(rng.uniform(0.3, 1.2) * scale),
            head_hz=float(rng.uniform(0.2, 0.9)),
        )

    def offsets(self, t_s: np.ndarray, arm_x: np.ndarray) -> tuple[np.ndarray, ...]:
        """Body (dx, dy) and extra head (hx, hy) offsets at ``t_s``; ``arm_x`` is the mean
        horizontal hand position relative to the body, which the torso follows a little."""
        waves = zip(self.amp, self.hz, self.ph, strict=True)
        dx = sum(a * np.sin(TAU * f * t_s + p) for a, f, p in waves)
        dx = dx + self.follow * np.tanh(arm_x / 20.0)
        dy = self.bob * np.sin(TAU * self.bob_hz * t_s + self.ph[1])
        hx = self.head * np.sin(TAU * self.head_hz * t_s + self.ph[0] * 2)
        hy = 0.4 * self.head * np.sin(TAU * self.head_hz * 0.7 * t_s + self.ph[1] * 3)
        return dx, dy, hx, hy


def _blur_kernel(sigma: float) -> np.ndarray:
    r = 2
    x = np.arange(-r, r + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return (k / k.sum()).astype(np.float32)


def _blur(img: np.ndarray, kernel: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """Separable blur with edge padding (kernel of 5 taps), in place into ``img``."""
    r = len(kernel) // 2
    pad = np.pad(img, ((0, 0), (r, r)), mode="edge")
    np.multiply(pad[:, 0 : img.shape[1]], kernel[0], out=tmp)
    for i in range(1, len(kernel)):
        tmp += kernel[i] * pad[:, i : i + img.shape[1]]
    pad = np.pad(tmp, ((r, r), (0, 0)), mode="edge")
    np.multiply(pad[0 : img.shape[0]], kernel[0], out=img)
    for i in range(1, len(kernel)):
        img += kernel[i] * pad[i : i + img.shape[0]]
    return img


def _shifted(tex: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """The (H, W) window of a padded texture moved by (dx, dy) pixels (bilinear)."""
    ox, oy = _PAD - dx, _PAD - dy
    ix, iy = math.floor(ox), math.floor(oy)
    ix = min(max(ix, 0), 2 * _PAD - 1)
    iy = min(max(iy, 0), 2 * _PAD - 1)
    fx, fy = np.float32(min(max(ox - ix, 0.0), 1.0)), np.float32(min(max(oy - iy, 0.0), 1.0))
    a = tex[iy : iy + H, ix : ix + W]
    b = tex[iy : iy + H, ix + 1 : ix + 1 + W]
    c = tex[iy + 1 : iy + 1 + H, ix : ix + W]
    d = tex[iy + 1 : iy + 1 + H, ix + 1 : ix + 1 + W]
    top = a + fx * (b - a)
    bot = c + fx * (d - c)
    return top + fy * (bot - top)


def render_events(scene: Scene2, poses: np.ndarray, times_us: np.ndarray, sway: Sway) -> np.ndarray:
    """Events of the figure in ``poses`` (T, 4) at frame times ``times_us`` (T, increasing);
    the pixel model is reset on the first frame, so events lie in (times[0], times[-1]]."""
    fig = scene.figure
    body = fig.body
    renderer = CapsuleRenderer(scene.background)
    model = DvsPixelModel(W, H, scene.pixel)
    kernel = _blur_kernel(scene.blur_sigma)
    r_up, r_fore, r_hand = body.radii
    joints = body.joints(poses)  # (T, arm, point, xy)
    arm_x = joints[:, :, 2, 0].mean(axis=1) - body.cx
    t_s = (times_us - times_us[0]) * 1e-6
    dx, dy, hx, hy = sway.offsets(t_s, arm_x)
    joints = joints + np.stack([dx, dy], axis=-1)[:, None, None, :]
    jl = joints.tolist()
    cov = np.zeros((H, W), dtype=np.float32)
    frame = np.empty((H, W), dtype=np.float32)
    tmp = np.empty((H, W), dtype=np.float32)
    parts = []
    for k, t_us in enumerate(times_us.tolist()):
        np.copyto(frame, scene.background)
        ddx, ddy = float(dx[k]), float(dy[k])
        sleeves, skin = [], []
        for s, e, w, tip in jl[k]:
            sleeves.append((s[0], s[1], e[0], e[1], r_up))
            skin.append((e[0], e[1], w[0], w[1], r_fore))
            skin.append((w[0], w[1], tip[0], tip[1], r_hand))
        face, hair = fig.head_capsules(ddx + float(hx[k]), ddy + float(hy[k]))
        layers: list[tuple[list[Any], np.ndarray | float]] = [
            (fig.leg_capsules(ddx, ddy), _shifted(fig.trousers, ddx, ddy)),
            (fig.torso_capsules(ddx, ddy), _shifted(fig.shirt, ddx, ddy)),
            (face, fig.skin),
            (hair, fig.hair),
            (sleeves, _shifted(fig.shirt, ddx, ddy)),
            (skin, fig.skin),
        ]
        for caps, level in layers:
            cov.fill(0.0)
            renderer.coverage(cov, caps)
            np.subtract(level, frame, out=tmp)
            tmp *= cov
            frame += tmp
        _blur(frame, kernel, tmp)
        gain = scene.gain(t_s[k])
        if gain != 1.0:
            frame *= np.float32(gain)
        if k == 0:
            model.reset(frame, t_us)
        else:
            ev = model.emit(frame, t_us)
            if len(ev):
                parts.append(ev)
    return np.concatenate(parts) if parts else np.zeros(0, EVENT_DTYPE)


def gesture_events(
    class_index: int,
    seed: int,
    duration_s: float = 2.0,
    *,
    t0_us: int = 0,
    amplitude: float | None = None,
    scene_of: Callable[[int], Scene2] | None = None,
    motion_of: MotionDraw | None = None,
) -> np.ndarray:
    """Version 2 of :func:`dvsapp.synth.generate.gesture_events` (same arguments, same rules).
    ``scene_of``: the seed's scene (default :func:`draw_scene`; a later version's own);
    ``motion_of``: draws a gesture's motion (default :func:`draw_motion`; idem)."""
    c = _check_class(class_index)
    seed = _check_seed(seed)
    dur_us = _check_duration("duration_s", duration_s)
    if isinstance(t0_us, bool) or not isinstance(t0_us, (int, np.integer)) or t0_us < 0:
        raise ConfigError(f"t0_us must be an integer >= 0, not {t0_us!r}")
    t0_us = int(t0_us)
    scene = (scene_of or draw_scene)(seed)
    motion = (motion_of or draw_motion)(c, _rng(seed, _GESTURE_MOTION, c), amplitude)
    sway = Sway.draw(_rng(seed, _SWAY, c), scene.figure.body.scale)
    if amplitude == 0:
        sway = Sway((0.0, 0.0), (0.0, 0.0), (0.0, 0.0), 0.0, 0.0, 0.0, 0.0, 0.0)
    n = -(-dur_us // FRAME_US)
    times = t0_us + FRAME_US * np.arange(-1, n + 1, dtype=np.int64)
    poses = motion.pose((times - t0_us) * 1e-6, scene.figure.body)
    events = render_events(scene, poses, times, sway)
    t = events["t"]
    return events[(t >= t0_us) & (t < t0_us + dur_us)]


def synth_recording(
    seed: int,
    classes: Sequence[int] | None = None,
    gesture_s: float = 2.0,
    gap_s: float = 0.3,
    scene_of: Callable[[int], Scene2] | None = None,
    motion_of: MotionDraw | None = None,
) -> tuple[np.ndarray, list[LabelSegment]]:
    """Version 2 of :func:`dvsapp.synth.generate.synth_recording` (same layout and labels);
    ``scene_of`` and ``motion_of`` as in :func:`gesture_events`."""
    seed = _check_seed(seed)
    gesture_us = _check_duration("gesture_s", gesture_s)
    gap_us = _check_duration("gap_s", gap_s, allow_zero=True)
    scene = (scene_of or draw_scene)(seed)
    body = scene.figure.body
    if classes is None:
        order = _rng(seed, _ORDER).permutation(N_CLASSES).tolist()
    else:
        if isinstance(classes, (str, bytes)):
            raise ConfigError(f"classes must be a sequence of class indices, not {classes!r}")
        order = [_check_class(c) for c in classes]
        if not order:
            raise ConfigError("classes must name at least one gesture")
    draw = motion_of or draw_motion
    motions = [draw(c, _rng(seed, _RECORDING_MOTION, i), None) for i, c in enumerate(order)]
    labels = []
    for i, c in enumerate(order):
        start = gap_us + i * (gesture_us + gap_us)
        labels.append(LabelSegment(c, DVS_GESTURE_CLASSES[c], start, start + gesture_us))
    total = len(order) * gesture_us + (len(order) + 1) * gap_us
    times = FRAME_US * np.arange(0, -(-total // FRAME_US) + 1, dtype=np.int64)
    poses = np.empty((len(times), 4))
    prev_end_t, prev_pose = 0, REST_POSE
    for motion, seg in zip(motions, labels, strict=True):
        in_gap = (times >= prev_end_t) & (times < seg.t_start_us)
        start_pose = motion.pose(np.zeros(1), body)[0]
        frac = (times[in_gap] - prev_end_t) / max(seg.t_start_us - prev_end_t, 1)
        poses[in_gap] = blend_poses(prev_pose, start_pose, frac)
        inside = (times >= seg.t_start_us) & (times < seg.t_end_us)
        poses[inside] = motion.pose((times[inside] - seg.t_start_us) * 1e-6, body)
        prev_end_t = seg.t_end_us
        prev_pose = motion.pose(np.array([gesture_us * 1e-6]), body)[0]
    tail = times >= prev_end_t
    frac = (times[tail] - prev_end_t) / max(total - prev_end_t, 1)
    poses[tail] = blend_poses(prev_pose, REST_POSE, frac)
    sway = Sway.draw(_rng(seed, _SWAY, N_CLASSES), body.scale)
    events = render_events(scene, poses, times, sway)
    return events[events["t"] < total], labels
