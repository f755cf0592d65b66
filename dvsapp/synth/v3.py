"""Generator version 3: version 2's scenes and motions, with a dark shirt and bright skin.

Gradient ascent on the real-data critic's input (``benchmarks/critic_ascent.py``,
docs/BENCHMARKS.md) asked for more events in front of the torso, where version 2's arms move
over a shirt about as bright as their own sleeves and hands, and for fewer at the outer
elbows. Version 3 keeps every draw of version 2 (figure, motion, sway, lighting, sensor: the
same seed gives the same subject doing the same gesture) and redraws two looks from a stream
of its own:

* the shirt: 1.0-1.5x the room's level (version 2: 1.8-4.5x), its texture redrawn at 10-35%
  contrast;
* the skin (face, forearms, hands): 3.5-5x the room's level (version 2: 2-4.5x).

For the 15% of subjects darker than the room, the ratios divide instead, as in version 2.
Everything else is :mod:`dvsapp.synth.v2`'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from dvsapp.events.types import LabelSegment
from dvsapp.synth import v2

#: Version tag of this module's own random stream.
_V = 3
_CLOTHES = 0
SHIRT_RATIO = (1.0, 1.5)
SKIN_RATIO = (3.5, 5.0)


def draw_scene(seed: int) -> v2.Scene2:
    """Version 2's scene of ``seed`` with the shirt and the skin redrawn (module docstring)."""
    scene = v2.draw_scene(seed)
    rng = np.random.default_rng([_V, int(seed), _CLOTHES])
    room = float(np.median(scene.background))
    bright = scene.figure.skin > room  # version 2 draws the skin on the figure's side

    def level(ratio: float) -> float:
        return min(room * ratio, 0.97) if bright else room / ratio

    shirt = v2._texture(rng, level(rng.uniform(*SHIRT_RATIO)), rng.uniform(0.1, 0.35))
    skin = level(rng.uniform(*SKIN_RATIO))
    figure = dataclasses.replace(scene.figure, shirt=shirt, skin=float(skin))
    return dataclasses.replace(scene, figure=figure)


def gesture_events(
    class_index: int,
    seed: int,
    duration_s: float = 2.0,
    *,
    t0_us: int = 0,
    amplitude: float | None = None,
) -> np.ndarray:
    """Version 3 of :func:`dvsapp.synth.generate.gesture_events` (same arguments, same rules)."""
    return v2.gesture_events(
        class_index, seed, duration_s, t0_us=t0_us, amplitude=amplitude, scene_of=draw_scene
    )


def synth_recording(
    seed: int,
    classes: Sequence[int] | None = None,
    gesture_s: float = 2.0,
    gap_s: float = 0.3,
) -> tuple[np.ndarray, list[LabelSegment]]:
    """Version 3 of :func:`dvsapp.synth.generate.synth_recording` (same layout and labels)."""
    return v2.synth_recording(seed, classes, gesture_s, gap_s, scene_of=draw_scene)
