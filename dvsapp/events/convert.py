"""`dvsapp convert`: any readable recording to our .npz or to AEDAT4."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from dvsapp.errors import EventFileError
from dvsapp.events.detect import open_reader
from dvsapp.events.writers import write_aedat4, write_npz

FORMATS = {".npz": "npz", ".aedat4": "aedat4"}


def output_format(path: str | os.PathLike[str], fmt: str | None) -> str:
    """The output format: ``fmt`` when given, else from the extension."""
    if fmt is not None:
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise EventFileError(
            path, "cannot tell the output format: use .npz or .aedat4, or --format"
        )
    return FORMATS[suffix]


def convert(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    fmt: str | None = None,
    stream: str | int | None = None,
    *,
    input_fmt: str | None = None,
) -> int:
    """Stream ``src`` into ``dst``; returns the number of events written. ``fmt`` is the
    OUTPUT format; ``input_fmt`` forces the input's (see ``detect.format_names``)."""
    fmt = output_format(dst, fmt)
    if Path(dst).resolve() == Path(src).resolve():
        raise EventFileError(dst, "output would overwrite the input")
    with open_reader(src, stream=stream, fmt=input_fmt) as reader:
        counted = _Counter(reader.packets())
        if fmt == "npz":
            write_npz(dst, counted, reader.sensor_size, labels=reader.labels)
        else:
            write_aedat4(dst, counted, reader.sensor_size)
    if counted.n == 0:
        Path(dst).unlink(missing_ok=True)
        raise EventFileError(src, "contains no events")
    return counted.n


class _Counter:
    """Wraps a packet iterator and counts the events that pass through."""

    def __init__(self, packets: Iterable[np.ndarray]) -> None:
        self._it = iter(packets)
        self.n = 0

    def __iter__(self) -> Iterator[np.ndarray]:
        for packet in self._it:
            self.n += len(packet)
            yield packet
