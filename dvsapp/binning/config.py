"""The binning configuration: how events become frames, stored with every checkpoint.

A frame is ``[C, H, W]`` at the model's ``input_size``. Events are first downsampled the way
``tonic.transforms.Downsample(sensor_size=..., target_size=input_size)`` does it, then
accumulated the way ``tonic.transforms.ToFrame`` does it at the reduced size (see
:mod:`dvsapp.binning`). With ``denoise_us`` set, tonic's ``Denoise(filter_time=denoise_us)``
comes first, at the sensor resolution (:mod:`dvsapp.binning.denoise`).
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np

from dvsapp.errors import ConfigError

Mode = Literal["time", "count"]
Polarity = Literal["split", "sum"]

MODES: tuple[str, ...] = ("time", "count")
POLARITIES: tuple[str, ...] = ("split", "sum")
#: Output dtypes; integer and float16 outputs saturate at the dtype's maximum.
DTYPES: tuple[str, ...] = ("float32", "float16", "float64", "uint8", "int16", "int32")
#: Largest sensor side accepted (event coordinates are int16).
MAX_SIDE = 32767


def _int(name: str, value: Any, minimum: int = 1) -> int:
    """``value`` as a Python int >= ``minimum`` (bools and non-integers are refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"binning: {name} must be an integer, got {value!r}")
    if int(value) < minimum:
        raise ConfigError(f"binning: {name} must be >= {minimum}, got {value!r}")
    return int(value)


def _size(name: str, value: Any) -> tuple[int, int]:
    """A (width, height) pair; a tonic-style (width, height, polarities) is accepted too."""
    if isinstance(value, str) or not hasattr(value, "__len__") or len(value) not in (2, 3):
        raise ConfigError(f"binning: {name} must be (width, height), got {value!r}")
    if len(value) == 3 and _int(f"{name}[2] (polarities)", value[2]) not in (1, 2):
        raise ConfigError(f"binning: {name}[2] (polarities) must be 1 or 2, got {value[2]!r}")
    w, h = _int(f"{name} width", value[0]), _int(f"{name} height", value[1])
    if max(w, h) > MAX_SIDE:
        raise ConfigError(f"binning: {name} {(w, h)} exceeds {MAX_SIDE} pixels per side")
    return w, h


@dataclass(frozen=True)
class BinningConfig:
    """How a stream of events is cut into frames.

    Attributes:
        sensor_size: (width, height) of the camera; events must lie inside it.
        mode: ``"time"`` (one frame per ``time_window_us``) or ``"count"`` (one frame per
            ``event_count`` events).
        time_window_us: frame length in microseconds (time mode only).
        event_count: events per frame (count mode only).
        input_size: (width, height) of the model input, <= sensor_size per axis; ``None``
            means the sensor size. Coordinates map as ``int(x * (input_w / sensor_w))`` in
            float64, exactly as tonic's ``Downsample(sensor_size, target_size)``.
        polarity: ``"split"`` (2 channels, 0 = OFF, 1 = ON, as ToFrame indexes by ``p``) or
            ``"sum"`` (1 channel, both polarities added).
        clip: maximum count per pixel per frame, or ``None``.
        binarize: frames hold 1 where a pixel saw any event (applied after ``clip``).
        dtype: output dtype name, one of :data:`DTYPES`.
        denoise_us: drop events without an event at an edge neighbour pixel less than this
            many microseconds before, as tonic's ``Denoise(filter_time=denoise_us)``, at the
            sensor resolution before downsampling; ``None`` (the default) keeps every event.
            :meth:`to_dict` leaves the key out when ``None``, so configs without it (older
            checkpoints, cache keys) read and hash as before.
    """

    sensor_size: tuple[int, int]
    mode: Mode = "time"
    time_window_us: int | None = None
    event_count: int | None = None
    input_size: tuple[int, int] | None = None
    polarity: Polarity = "split"
    clip: int | None = None
    binarize: bool = False
    dtype: str = "float32"
    denoise_us: int | None = None

    def __post_init__(self) -> None:
        sensor = _size("sensor_size", self.sensor_size)
        size = sensor if self.input_size is None else _size("input_size", self.input_size)
        if size[0] > sensor[0] or size[1] > sensor[1]:
            raise ConfigError(f"binning: input_size {size} is larger than sensor_size {sensor}")
        if self.mode not in MODES:
            raise ConfigError(f"binning: mode must be one of {MODES}, got {self.mode!r}")
        window, count = self._mode_values()
        if self.polarity not in POLARITIES:
            raise ConfigError(
                f"binning: polarity must be one of {POLARITIES}, got {self.polarity!r}"
            )
        clip = None if self.clip is None else _int("clip", self.clip)
        denoise = None if self.denoise_us is None else _int("denoise_us", self.denoise_us)
        if not isinstance(self.binarize, bool | np.bool_):
            raise ConfigError(f"binning: binarize must be true or false, got {self.binarize!r}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"binning: dtype must be one of {DTYPES}, got {self.dtype!r}")
        for name, value in (
            ("sensor_size", sensor),
            ("input_size", size),
            ("time_window_us", window),
            ("event_count", count),
            ("clip", clip),
            ("denoise_us", denoise),
            ("binarize", bool(self.binarize)),
        ):
            object.__setattr__(self, name, value)

    def _mode_values(self) -> tuple[int | None, int | None]:
        """The validated (time_window_us, event_count) pair for the mode."""
        if self.mode == "time":
            if self.event_count is not None:
                raise ConfigError("binning: event_count is set but mode is 'time'")
            if self.time_window_us is None:
                raise ConfigError("binning: mode 'time' needs time_window_us")
            return _int("time_window_us", self.time_window_us), None
        if self.time_window_us is not None:
            raise ConfigError("binning: time_window_us is set but mode is 'count'")
        if self.event_count is None:
            raise ConfigError("binning: mode 'count' needs event_count")
        return None, _int("event_count", self.event_count)

    @property
    def channels(self) -> int:
        """Channels per frame: 2 for split polarity, 1 for summed."""
        return 2 if self.polarity == "split" else 1

    @property
    def frame_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one frame."""
        assert self.input_size is not None  # normalised in __post_init__
        return self.channels, self.input_size[1], self.input_size[0]

    @property
    def downsampled(self) -> bool:
        """True when input_size differs from sensor_size."""
        return self.input_size != self.sensor_size

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict; :meth:`from_dict` restores an equal config."""
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["sensor_size"] = list(self.sensor_size)
        out["input_size"] = list(self.input_size) if self.input_size is not None else None
        if self.denoise_us is None:
            del out["denoise_us"]  # as before the option existed
        return out

    @classmethod
    def from_dict(cls, data: Any) -> BinningConfig:
        """Validate and build from :meth:`to_dict` output (e.g. a checkpoint's JSON metadata)."""
        if not isinstance(data, dict):
            raise ConfigError(f"binning: config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"binning: unknown config keys {unknown}")
        if "sensor_size" not in data:
            raise ConfigError("binning: config lacks sensor_size")
        return cls(**data)


def binning_for_recording(
    trained: BinningConfig, sensor: tuple[int, int, int], path: str | os.PathLike[str]
) -> BinningConfig:
    """A checkpoint's binning, re-based on a recording's sensor when that differs (the frames
    are then downsampled to the model's input size, as tonic's Downsample). A recording smaller
    than the model's input, or with one polarity for a model that takes ON and OFF as two
    channels, is refused with a one-line :class:`ConfigError`."""
    w, h, polarities = sensor
    if trained.channels == 2 and polarities < 2:
        raise ConfigError(
            f"{os.fspath(path)}: the recording has {polarities} polarity channel but the model "
            "takes OFF and ON events as 2 channels"
        )
    if (w, h) == trained.sensor_size:
        return trained
    assert trained.input_size is not None
    iw, ih = trained.input_size
    if iw > w or ih > h:
        raise ConfigError(
            f"{os.fspath(path)}: the recording's {w}x{h} sensor is smaller than the model's "
            f"{iw}x{ih} input (binning can only downsample)"
        )
    return dataclasses.replace(trained, sensor_size=(w, h))
