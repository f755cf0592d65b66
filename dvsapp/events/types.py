"""The event dtype, sensor sizes and labelled segments shared by every reader.

Convention (DESIGN.md): tonic's structured dtype, ``t`` in microseconds, origin at the
top-left pixel, ``p=True`` for an ON (brightness increase) event.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: tonic.io.events_struct, so every tonic transform applies to our events as they are.
EVENT_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "?")])

#: (width, height, polarities) as in tonic.
SensorSize = tuple[int, int, int]

#: The 11 DVS128 Gesture classes; index = CSV class id - 1.
DVS_GESTURE_CLASSES: tuple[str, ...] = (
    "hand_clapping",
    "right_hand_wave",
    "left_hand_wave",
    "right_arm_clockwise",
    "right_arm_counter_clockwise",
    "left_arm_clockwise",
    "left_arm_counter_clockwise",
    "arm_roll",
    "air_drums",
    "air_guitar",
    "other_gestures",
)


@dataclass(frozen=True)
class LabelSegment:
    """A labelled span of a recording: class index (0-based), its name, and [start, end) in us."""

    label: int
    name: str
    t_start_us: int
    t_end_us: int

    def to_dict(self) -> dict[str, int | str]:
        return {
            "label": self.label,
            "name": self.name,
            "t_start_us": self.t_start_us,
            "t_end_us": self.t_end_us,
        }


def empty_events(n: int = 0) -> np.ndarray:
    """A zeroed event array of length ``n`` in our dtype."""
    return np.zeros(n, dtype=EVENT_DTYPE)


def make_events(x: np.ndarray, y: np.ndarray, t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Pack column arrays into our structured dtype (casting each column)."""
    out = np.empty(len(t), dtype=EVENT_DTYPE)
    out["x"] = x
    out["y"] = y
    out["t"] = t
    out["p"] = p
    return out
