"""What `dvsapp info` reports: a streaming scan of a recording's events and labels."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from dvsapp.errors import EventFileError
from dvsapp.events.detect import open_reader
from dvsapp.events.types import LabelSegment


@dataclass(frozen=True)
class RecordingSummary:
    """Format, geometry, counts and timing of one recording."""

    path: str
    format: str
    width: int
    height: int
    events: int
    on_events: int
    t_first_us: int
    t_last_us: int
    labels: list[LabelSegment] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    #: Why the sensor size is a guess ("" when the file says it): dvsapp.advisories.
    sensor_guess: str = ""

    @property
    def sensor_text(self) -> str:
        """``W x H``, marked when it is a guess (as `dvsapp info` prints it)."""
        size = f"{self.width} x {self.height}"
        return f"{size} (a guess: {self.sensor_guess})" if self.sensor_guess else size

    @property
    def duration_s(self) -> float:
        return (self.t_last_us - self.t_first_us) / 1e6

    @property
    def mean_rate_eps(self) -> float:
        """Mean event rate in events per second (0 for a single instant)."""
        d = self.duration_s
        return self.events / d if d > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "sensor_size_guessed": bool(self.sensor_guess),
            "sensor_size_guess": self.sensor_guess or None,
            "events": self.events,
            "on_events": self.on_events,
            "t_first_us": self.t_first_us,
            "t_last_us": self.t_last_us,
            "duration_s": self.duration_s,
            "mean_rate_eps": self.mean_rate_eps,
            "labels": [seg.to_dict() for seg in self.labels],
            "metadata": {k: v for k, v in self.metadata.items() if _json_safe(v)},
        }


def _json_safe(v: object) -> bool:
    return isinstance(v, str | int | float | bool | type(None) | list | dict)


def summarize(
    path: str | os.PathLike[str], stream: str | int | None = None, *, fmt: str | None = None
) -> RecordingSummary:
    """Scan a recording once (streaming) and summarise it; zero events is an error. ``fmt``
    forces the input format (see :func:`dvsapp.events.detect.format_names`)."""
    from dvsapp.advisories import sensor_size_guess

    with open_reader(path, stream=stream, fmt=fmt) as reader:
        n = n_on = 0
        t_first: int | None = None
        t_last = 0
        for packet in reader.packets():
            if t_first is None:
                t_first = int(packet["t"][0])
            n += len(packet)
            n_on += int(packet["p"].sum())
            t_last = int(packet["t"][-1])
        if t_first is None:
            raise EventFileError(path, "contains no events")
        w, h, _ = reader.sensor_size
        return RecordingSummary(
            path=os.fspath(path),
            format=reader.format_name,
            width=int(w),
            height=int(h),
            events=n,
            on_events=n_on,
            t_first_us=t_first,
            t_last_us=t_last,
            labels=list(reader.labels),
            metadata=dict(reader.metadata),
            sensor_guess=sensor_size_guess(reader.metadata),
        )
