"""Streaming readers keep memory bounded: a long recording is never loaded whole, and the
peak does not grow with the recording's length."""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from aedat31_writer import write_large

from dvsapp.events.detect import open_reader
from dvsapp.events.types import EVENT_DTYPE


def write_aedat2(path: Path, n: int) -> Path:
    rng = np.random.default_rng(1)
    body = np.empty((n, 2), dtype=">i4")
    body[:, 0] = (rng.integers(0, 128, n) << 8) | (rng.integers(0, 128, n) << 1)
    body[:, 1] = np.arange(n)
    path.write_bytes(b"#!AER-DAT2.0\r\n" + body.tobytes())
    return path


def write_aedat31(path: Path, n: int) -> Path:
    return write_large(path, n)


def write_npz(path: Path, n: int) -> Path:
    t = np.arange(n, dtype=np.int64)
    zeros = np.zeros(n, dtype=np.int16)
    with open(path, "wb") as f:
        np.savez(f, x=zeros, y=zeros, t=t, p=np.ones(n, bool), width=128, height=128)
    return path


def peak_while_streaming(path: Path, n_expected: int) -> int:
    with open_reader(path) as reader:
        tracemalloc.start()
        n = 0
        for packet in reader.packets(max_events=65_536):
            n += len(packet)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert n == n_expected
    return peak


@pytest.mark.parametrize("make", [write_aedat2, write_aedat31, write_npz])
def test_streaming_peak_memory_does_not_grow_with_the_recording(
    tmp_path: Path, make: Callable[[Path, int], Path]
) -> None:
    small, large = 1_000_000, 4_000_000
    peak_small = peak_while_streaming(make(tmp_path / "small.rec", small), small)
    peak_large = peak_while_streaming(make(tmp_path / "large.rec", large), large)
    decoded_large = large * EVENT_DTYPE.itemsize  # 52 MB if it were loaded whole
    assert peak_large < 1.25 * peak_small + 2_000_000, (peak_small, peak_large)
    assert peak_large < decoded_large / 1.5, (peak_large, decoded_large)
