"""Deterministic synthetic DVS128 Gesture-like recordings (figure, rasteriser, pixel model).

See :mod:`dvsapp.synth.generate` for the public functions and :mod:`dvsapp.synth.figure` for the
conventions (the subject's right arm is on the image left; "clockwise" is as seen by the camera).
The names below load on first use, so ``dvsapp`` builds its command line without numpy work.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SENSOR_SIZE", "gesture_events", "synth_recording", "write_recording"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from dvsapp.synth import generate

        return getattr(generate, name)
    raise AttributeError(f"module 'dvsapp.synth' has no attribute {name!r}")
