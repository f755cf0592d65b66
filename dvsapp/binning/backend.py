"""What a binning back end does, and the pieces both back ends share."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from dvsapp.binning.config import BinningConfig
from dvsapp.errors import ConfigError


class Backend(Protocol):
    """Scatters events into count frames on one device.

    ``acc`` is the open frame's running count, flat ``[C*H*W]``, in the back end's own
    accumulator type; frames come out ``[N, C, H, W]`` in the configured dtype.
    """

    def zeros(self) -> Any:
        """A zero accumulator."""
        ...

    def empty(self) -> Any:
        """Zero frames: ``[0, C, H, W]``."""
        ...

    def scatter(
        self, events: np.ndarray, counts: np.ndarray, acc: Any, has_acc: bool, close: bool = False
    ) -> tuple[Any, Any]:
        """Bin ``events`` into ``len(counts)`` frames of ``counts[i]`` consecutive events.

        ``acc`` is added to frame 0 when ``has_acc``. Returns the finished frames (all but
        the last) and the last frame's counts as the new accumulator; with ``close``, the
        last frame is finished too and the accumulator comes back zero.
        """
        ...

    def finish(self, acc: Any) -> Any:
        """The accumulator as one finished frame ``[1, C, H, W]``."""
        ...


def axis_lut(sensor: int, target: int) -> np.ndarray:
    """Downsampled coordinate of every sensor coordinate, as tonic's Downsample computes it.

    tonic multiplies the int16 column by ``np.asarray(target_size) / sensor_size[:-1]`` (a
    float64) and stores the product back into int16, which truncates. For some size pairs the
    float product of an exact multiple falls just below the integer (sensor 44 -> 30 maps
    x=22 to 14, not 15); the table keeps tonic's result so frames match bit for bit.
    """
    factor = np.float64(target) / np.float64(sensor)
    return (np.arange(sensor, dtype=np.int16) * factor).astype(np.int16).astype(np.int64)


def saturation(dtype: str) -> float | None:
    """Largest count the output dtype holds where counts could exceed it, else None."""
    info = np.finfo(dtype) if np.dtype(dtype).kind == "f" else np.iinfo(dtype)
    top = float(info.max)
    return top if top < 2**24 else None


def check_events(events: np.ndarray, config: BinningConfig) -> None:
    """Raise on events outside the sensor (they would wrap or crash the scatter)."""
    w, h = config.sensor_size
    for name, side in (("x", w), ("y", h)):
        col = events[name]
        # int16 as uint16: a negative coordinate becomes >= 32768 and fails the same test.
        top = int(col.view(np.uint16).max())
        if top >= side:
            bad = int(col[col.view(np.uint16) >= side][0])
            raise ConfigError(
                f"binning: event {name}={bad} outside the sensor ({name} must be in "
                f"[0, {side})): check sensor_size {config.sensor_size}"
            )
