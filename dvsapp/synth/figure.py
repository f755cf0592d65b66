"""An articulated 2-D figure facing the camera, and the arm motion of each DVS128 Gesture class.

Coordinates are image pixels: x to the right, y down, origin at the top-left pixel's centre
(our event convention). Angles are radians in the camera's view with y pointing UP: direction
``a`` is the image vector ``(cos a, -sin a)``, so 0 points image-right, pi/2 points up, and an
increasing angle turns COUNTER-CLOCKWISE AS SEEN BY THE CAMERA (in the rendered frames and in
any event image drawn with y down).

Handedness: the subject faces the camera, so the subject's RIGHT arm appears on the IMAGE LEFT
(smaller x) and the LEFT arm on the image right, as in the DVS128 Gesture recordings.

Rotation classes (3-6): "clockwise" means clockwise AS SEEN BY THE CAMERA: the hand goes top ->
image-right -> bottom -> image-left; "counter-clockwise" the other way round.

A pose is four absolute angles per frame, ``[right upper arm, right forearm, left upper arm,
left forearm]`` (shape ``(..., 4)``); the hand continues the forearm. Classes that move the
hands to places (clapping, arm roll, drums, guitar) solve a two-link inverse kinematics with the
elbow kept on the same side for the whole clip, so the arm never flips.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dvsapp.errors import ConfigError
from dvsapp.events.types import DVS_GESTURE_CLASSES

TAU = 2.0 * np.pi
N_CLASSES = len(DVS_GESTURE_CLASSES)
#: Rest pose: both arms hanging down, slightly away from the body.
REST_POSE = np.array([-np.pi / 2 - 0.15, -np.pi / 2 - 0.1, -np.pi / 2 + 0.15, -np.pi / 2 + 0.1])
#: Elbow side for the inverse kinematics: -1 turns the upper arm clockwise from the line to the
#: hand. Right arm (image left): -1 puts the elbow outward-down; left arm: +1.
_OUT = (-1.0, 1.0)


def direction(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Image-space unit vector (dx, dy) of camera-view angle ``a`` (y down in the image)."""
    return np.cos(a), -np.sin(a)


def mirror(a: np.ndarray | float) -> np.ndarray:
    """The angle mirrored about the vertical axis (right arm <-> left arm)."""
    return np.pi - np.asarray(a)


@dataclass(frozen=True)
class Body:
    """Size and place of the figure: torso centre ``(cx, cy)``, ``scale`` (1 = about 60 px from
    the top of the head to the hips) and a ``thickness`` factor for every limb and the torso."""

    cx: float = 64.0
    cy: float = 70.0
    scale: float = 1.0
    thickness: float = 1.0

    @property
    def shoulders(self) -> np.ndarray:
        """(2, 2): right shoulder (image left), then left shoulder, as (x, y)."""
        s = self.scale
        y = self.cy - 18 * s
        return np.array([[self.cx - 12 * s, y], [self.cx + 12 * s, y]])

    @property
    def upper_len(self) -> float:
        return 16.0 * self.scale

    @property
    def fore_len(self) -> float:
        return 14.0 * self.scale

    @property
    def hand_len(self) -> float:
        return 3.5 * self.scale

    @property
    def radii(self) -> tuple[float, float, float]:
        """Capsule radii of upper arm, forearm and hand."""
        k = self.scale * self.thickness
        return 3.6 * k, 2.9 * k, 3.4 * k

    def static_capsules(self) -> list[tuple[float, float, float, float, float]]:
        """(ax, ay, bx, by, r) of the parts that do not move: torso, neck; the head is last."""
        s, k = self.scale, self.scale * self.thickness
        cx, cy = self.cx, self.cy
        return [
            (cx - 4 * s, cy - 14 * s, cx + 4 * s, cy - 14 * s, 8.5 * k),  # chest and shoulders
            (cx, cy - 10 * s, cx, cy + 22 * s, 9.5 * k),  # torso
            (cx, cy - 26 * s, cx, cy - 20 * s, 3.5 * k),  # neck
            (cx, cy - 35 * s, cx, cy - 32 * s, 7.5 * s),  # head
        ]

    def joints(self, pose: np.ndarray) -> np.ndarray:
        """Joint positions ``(..., 2 arms, 4 points [shoulder, elbow, wrist, hand tip], 2)``."""
        pose = np.asarray(pose, dtype=np.float64)
        out = np.empty((*pose.shape[:-1], 2, 4, 2))
        for arm in range(2):
            a1, a2 = pose[..., 2 * arm], pose[..., 2 * arm + 1]
            sx, sy = self.shoulders[arm]
            ux, uy = direction(a1)
            fx, fy = direction(a2)
            ex, ey = sx + self.upper_len * ux, sy + self.upper_len * uy
            wx, wy = ex + self.fore_len * fx, ey + self.fore_len * fy
            out[..., arm, 0, 0], out[..., arm, 0, 1] = sx, sy
            out[..., arm, 1, 0], out[..., arm, 1, 1] = ex, ey
            out[..., arm, 2, 0], out[..., arm, 2, 1] = wx, wy
            out[..., arm, 3, 0] = wx + self.hand_len * fx
            out[..., arm, 3, 1] = wy + self.hand_len * fy
        return out

    def reach(self, arm: int, x: np.ndarray, y: np.ndarray, bend: float) -> np.ndarray:
        """Two-link inverse kinematics: the (T, 2) angles that put ``arm``'s wrist at (x, y),
        or as near as the arm reaches. ``bend`` -1/+1 picks the elbow's side (see ``_OUT``)."""
        sx, sy = self.shoulders[arm]
        l1, l2 = self.upper_len, self.fore_len
        dx, dy = np.asarray(x) - sx, -(np.asarray(y) - sy)  # y up
        d = np.clip(np.hypot(dx, dy), abs(l1 - l2) + 1e-3, l1 + l2 - 1e-3)
        phi = np.arctan2(dy, dx)
        alpha = np.arccos(np.clip((l1 * l1 + d * d - l2 * l2) / (2 * l1 * d), -1.0, 1.0))
        a1 = phi + bend * alpha
        ex, ey = l1 * np.cos(a1), l1 * np.sin(a1)
        tx, ty = d * np.cos(phi), d * np.sin(phi)
        a2 = np.arctan2(ty - ey, tx - ex)
        return np.stack([a1, a2], axis=-1)


def _rest(arm: int, n: int) -> np.ndarray:
    return np.broadcast_to(REST_POSE[2 * arm : 2 * arm + 2], (n, 2)).copy()


@dataclass(frozen=True)
class Motion:
    """One gesture's arm motion: the class, its period, an amplitude factor (0 = the figure
    holds the clip's starting pose), a phase, and class-specific draws in ``extra``."""

    class_index: int
    period_s: float
    amplitude: float
    phase: float
    extra: dict[str, Any] = field(default_factory=dict)

    def pose(self, t_s: np.ndarray, body: Body) -> np.ndarray:
        """The (T, 4) pose at times ``t_s`` (seconds from the gesture's start)."""
        t = np.atleast_1d(np.asarray(t_s, dtype=np.float64))
        u = TAU * t / self.period_s + self.phase  # phase angle of the main oscillation
        return _POSES[self.class_index](self, t, u, body)


def draw_motion(
    class_index: int, rng: np.random.Generator, amplitude: float | None = None
) -> Motion:
    """A random variant of class ``class_index``'s motion (every draw from ``rng``)."""
    if not 0 <= class_index < N_CLASSES:
        raise ConfigError(f"class index must be in 0..{N_CLASSES - 1}, not {class_index}")
    lo, hi = _PERIODS[class_index]
    period = float(rng.uniform(lo, hi))
    amp = float(rng.uniform(0.75, 1.25)) if amplitude is None else float(amplitude)
    if not amp >= 0:
        raise ConfigError(f"amplitude must be >= 0, not {amp}")
    phase = float(rng.uniform(0, TAU))
    extra = {
        "k": float(rng.uniform(0.8, 1.2)),  # size of the motion's path
        "raise": float(rng.uniform(np.radians(5), np.radians(40))),  # waving upper-arm lift
        "swing": float(rng.uniform(np.radians(30), np.radians(50))),  # waving half-angle
        "dir": float(rng.choice([-1.0, 1.0])),  # arm-roll direction
        "swap": float(rng.random() < 0.25),  # air guitar played left-handed
        "slide_ratio": float(rng.uniform(2.0, 4.0)),  # air guitar slide period / strum period
    }
    if class_index == N_CLASSES - 1:  # other_gestures: 3 sinusoids per joint
        extra["base"] = rng.uniform(-0.6, 0.9, 4).tolist()
        extra["freq"] = rng.uniform(0.3, 2.0, (4, 3)).tolist()
        extra["amp"] = (rng.uniform(0.15, 0.45, (4, 3))).tolist()
        extra["ph"] = rng.uniform(0, TAU, (4, 3)).tolist()
    return Motion(class_index, period, amp, phase, extra)


#: Period ranges (seconds) per class.
_PERIODS: tuple[tuple[float, float], ...] = (
    (0.4, 0.65),  # hand_clapping
    (0.35, 0.6),  # right_hand_wave
    (0.35, 0.6),  # left_hand_wave
    (0.9, 1.5),  # right_arm_clockwise
    (0.9, 1.5),  # right_arm_counter_clockwise
    (0.9, 1.5),  # left_arm_clockwise
    (0.9, 1.5),  # left_arm_counter_clockwise
    (0.35, 0.6),  # arm_roll
    (0.35, 0.6),  # air_drums
    (0.2, 0.35),  # air_guitar (strum)
    (1.0, 1.0),  # other_gestures (frequencies drawn per joint)
)


def _clap(m: Motion, t: np.ndarray, u: np.ndarray, b: Body) -> np.ndarray:
    s, k = b.scale, m.extra["k"]
    gap = m.amplitude * 15 * s * k * (0.5 - 0.5 * np.cos(u))  # 0: hands together
    y = b.cy - 6 * s + m.amplitude * 1.5 * s * np.sin(u)
    half = 4.5 * s + gap
    return np.concatenate(
        [b.reach(0, b.cx - half, y, _OUT[0]), b.reach(1, b.cx + half, y, _OUT[1])], axis=-1
    )


def _wave(arm: int):
    def pose(m: Motion, t: np.ndarray, u: np.ndarray, b: Body) -> np.ndarray:
        n = len(t)
        upper = np.full(n, np.pi - m.extra["raise"])  # right arm: out to the image left, raised
        fore = np.pi / 2 + m.amplitude * m.extra["swing"] * np.sin(u)
        arm_pose = np.stack([upper, fore], axis=-1)
        if arm == 1:
            arm_pose = mirror(arm_pose)
        out = np.concatenate([_rest(0, n), _rest(1, n)], axis=-1)
        out[:, 2 * arm : 2 * arm + 2] = arm_pose
        return out

    return pose


def _circle(arm: int, clockwise: bool):
    def pose(m: Motion, t: np.ndarray, u: np.ndarray, b: Body) -> np.ndarray:
        n = len(t)
        sign = -1.0 if clockwise else 1.0  # clockwise as seen by the camera: angle decreases
        a = m.phase + sign * m.amplitude * TAU * t / m.period_s
        out = np.concatenate([_rest(0, n), _rest(1, n)], axis=-1)
        out[:, 2 * arm] = a
        out[:, 2 * arm + 1] = a  # straight arm
        return out

    return pose


def _arm_roll(m: Motion, t: np.ndarray, u: np.ndarray, b: Body) -> np.ndarray:
    s, k = b.scale, m.extra["k"]
    r = m.amplitude * 7 * s * k
    theta = m.extra["dir"] * u
    cy = b.cy - 4 * s
    xr = b.cx - 4 * s + r * np.cos(theta)
    yr = cy - r * np.sin(theta)
    xl = b.cx + 4 * s + r * np.cos(theta + np.pi)
    yl = cy - r * np.sin(theta + np.pi)
    return np.concatenate([b.reach(0, xr, yr, _OUT[0]), b.reach(1, xl, yl, _OUT[1])], axis=-1)


def _drums(m: Motion, t: np.ndarray, u: np.ndarray, b: Body) -> np.ndarray:
    s, k = b.scale, m.extra["k"]
    y0 = b.cy + 6 * s
    lift = m.amplitude * 15 * s * k
    # Alternate beats: each hand rises and strikes in its half of the cycle and rests on the
    # "drum" (y0) in the other half, while the other hand plays.
    yr = y0 - lift * np.maximum(np.sin(u), 0.0)
    yl = y0 - lift * np.maximum(-np.sin(u), 0.0)
    x = 10 * s
    return np.concatenate(
        [b.reach(0, b.cx - x, yr, _OUT[0]), b.reach(1, b.cx + x, yl, _OUT[1])], axis=-1
    )


def _guitar(m: Motion, t: np.ndarray, u: np.ndarray, b: Body) -> np.ndarray:
    s, k = b.scale, m.extra["k"]
    fret = 0 if m.extra["swap"] else 1  # usually the left hand (image right) on the neck
    side = 1.0 if fret == 1 else -1.0  # image direction of the neck
    slow = u / m.extra["slide_ratio"]
    slide = m.amplitude * 3.5 * s * k * np.sin(slow)
    fx = b.cx + side * (25 * s + slide * 0.9)
    fy = b.shoulders[fret, 1] + 3 * s - slide * 0.45
    sx = b.cx - side * 4 * s + 0 * t
    sy = b.cy + 12 * s + m.amplitude * 8 * s * k * np.sin(u)
    fret_pose = b.reach(fret, fx, fy, -_OUT[fret])  # elbow below the neck
    strum_pose = b.reach(1 - fret, sx, sy, _OUT[1 - fret])
    parts = [fret_pose, strum_pose] if fret == 0 else [strum_pose, fret_pose]
    return np.concatenate(parts, axis=-1)


def _other(m: Motion, t: np.ndarray, u: np.ndarray, b: Body) -> np.ndarray:
    base = np.asarray(m.extra["base"])
    freq = np.asarray(m.extra["freq"])
    amp = np.asarray(m.extra["amp"])
    ph = np.asarray(m.extra["ph"])
    # joint j: 0/2 upper-arm lift from hanging, 1/3 elbow bend
    wave = np.sin(TAU * freq[None] * t[:, None, None] + ph[None]) * amp[None]
    q = base[None] + m.amplitude * wave.sum(axis=-1)  # (T, 4)
    upper_r = -np.pi / 2 - 0.15 - 1.3 * (1 + np.tanh(1.5 * q[:, 0]))  # lifts out to image left
    fore_r = upper_r + 1.2 * q[:, 1]
    upper_l = mirror(-np.pi / 2 - 0.15 - 1.3 * (1 + np.tanh(1.5 * q[:, 2])))
    fore_l = upper_l - 1.2 * q[:, 3]
    return np.stack([upper_r, fore_r, upper_l, fore_l], axis=-1)


_POSES = (
    _clap,
    _wave(0),
    _wave(1),
    _circle(0, clockwise=True),
    _circle(0, clockwise=False),
    _circle(1, clockwise=True),
    _circle(1, clockwise=False),
    _arm_roll,
    _drums,
    _guitar,
    _other,
)


def blend_poses(p0: np.ndarray, p1: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Poses easing from ``p0`` (``frac`` 0) to ``p1`` (``frac`` 1), shape ``(len(frac), 4)``;
    each joint turns the short way round."""
    p0 = np.asarray(p0, dtype=np.float64)
    delta = (np.asarray(p1) - p0 + np.pi) % TAU - np.pi
    f = np.clip(np.asarray(frac, dtype=np.float64), 0.0, 1.0)[:, None]
    ease = 0.5 - 0.5 * np.cos(np.pi * f)
    return p0[None] + ease * delta[None]
