"""The background scan for a recording's last timestamp (what lets a replay seek at once)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from dvsapp.events.detect import open_reader
from dvsapp.events.span import SpanScan, last_timestamp
from dvsapp.events.types import make_events
from dvsapp.events.writers import write_npz

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "recordings").glob("*.aedat*"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_last_timestamp_equals_the_last_event_read_whole(path: Path) -> None:
    with open_reader(path) as reader:
        events = reader.read_all()
    assert last_timestamp(path) == int(events["t"][-1])
    scan = SpanScan(path)
    assert scan.wait(30) and scan.error is None
    assert scan.last_t_us == int(events["t"][-1])


def test_the_real_samples_agree_with_a_whole_read(samples_dir: Path) -> None:
    for path in sorted(samples_dir.iterdir()):
        if path.suffix not in (".aedat", ".aedat4", ".raw", ".dat", ".npy"):
            continue
        with open_reader(path) as reader:
            t = reader.read_all()["t"]
        assert last_timestamp(path) == (int(t[-1]) if len(t) else None), path.name


def test_cancelled_scan_reports_nothing(tmp_path: Path) -> None:
    path = tmp_path / "rec.npz"
    t = np.arange(0, 3_000_000, 10, dtype=np.int64)
    write_npz(path, [make_events(t % 64, t % 48, t, t % 2)], (64, 48, 2))
    cancel = threading.Event()
    cancel.set()
    assert last_timestamp(path, cancel) is None
    assert last_timestamp(path) == int(t[-1])


def test_a_bad_file_leaves_the_span_unknown_without_raising(tmp_path: Path) -> None:
    bad = tmp_path / "bad.aedat4"
    bad.write_bytes(b"#!AER-DV" + b"\x00" * 100)
    scan = SpanScan(bad)
    assert scan.wait(10)
    assert scan.last_t_us is None and scan.error is not None
