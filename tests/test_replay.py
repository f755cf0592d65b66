"""ReplaySource: real-time pacing, speed, pause, seek, loop, and errors mid-file."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dvsapp.errors import ConfigError, EventFileError
from dvsapp.events.readers.base import EventReader
from dvsapp.events.sources import ReplaySource, SourceState
from dvsapp.events.types import EVENT_DTYPE


class MemoryReader(EventReader):
    """A reader over an in-memory array, packets of ``packet`` events; can fail at an index."""

    format_name = "memory"

    def __init__(self, events: np.ndarray, packet: int = 100, fail_at: int | None = None) -> None:
        super().__init__(Path("memory.rec"))
        self.events = events
        self.sensor_size = (32, 32, 2)
        self.packet = packet
        self.fail_at = fail_at
        self.opened = 0

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return False

    def _iter_packets(
        self, start_us: int | None, max_events: int
    ) -> Iterator[tuple[np.ndarray, int | None]]:
        self.opened += 1
        ev = self.events if start_us is None else self.events[self.events["t"] >= start_us]
        for i in range(0, len(ev), self.packet):
            if self.fail_at is not None and i >= self.fail_at:
                raise EventFileError(self.path, "truncated body", 8 * i)
            yield ev[i : i + self.packet], None


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def ramp(n: int = 1000, step_us: int = 1000, t0: int = 5_000_000) -> np.ndarray:
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["t"] = t0 + np.arange(n) * step_us
    ev["x"] = np.arange(n) % 32
    ev["p"] = np.arange(n) % 2 == 0
    return ev


def drain(src: ReplaySource) -> np.ndarray:
    parts = []
    while True:
        got = src.poll()
        if len(got) == 0:
            break
        parts.append(got)
    return np.concatenate(parts) if parts else np.zeros(0, EVENT_DTYPE)


def test_real_time_pacing_delivers_only_due_events() -> None:
    clock = FakeClock()
    src = ReplaySource(MemoryReader(ramp()), speed=1.0, clock=clock)
    src.start()
    first = src.poll()
    assert first["t"].tolist() == [5_000_000]  # only the first event is due at t0
    clock.now += 0.0995  # 99.5 ms later: events up to t0 + 99 ms
    got = drain(src)
    assert got["t"][-1] == 5_099_000 and len(got) == 99
    assert src.status().state is SourceState.RUNNING


def test_speed_factor_scales_stream_time() -> None:
    clock = FakeClock()
    src = ReplaySource(MemoryReader(ramp()), speed=4.0, clock=clock)
    src.start()
    src.poll()
    clock.now += 0.1  # 0.1 s wall at 4x = 400 ms of stream
    assert drain(src)["t"][-1] == 5_400_000
    src.set_speed(0.5)
    clock.now += 0.2  # 0.2 s at 0.5x = 100 ms more
    assert drain(src)["t"][-1] == 5_500_000


def test_as_fast_as_possible_delivers_everything_in_order() -> None:
    events = ramp(5000)
    src = ReplaySource(MemoryReader(events, packet=333), speed=math.inf)
    src.start()
    got = drain(src)
    np.testing.assert_array_equal(got, events)
    assert src.status().state is SourceState.ENDED
    assert src.status().events_delivered == 5000


def test_pause_freezes_and_resume_continues_without_jump() -> None:
    clock = FakeClock()
    src = ReplaySource(MemoryReader(ramp()), clock=clock)
    src.start()
    src.poll()
    clock.now += 0.05
    assert drain(src)["t"][-1] == 5_050_000
    src.pause()
    clock.now += 10.0
    assert len(src.poll()) == 0 and src.status().state is SourceState.PAUSED
    src.resume()
    clock.now += 0.01
    assert drain(src)["t"][-1] == 5_060_000


def test_seek_continues_from_the_requested_time() -> None:
    clock = FakeClock()
    src = ReplaySource(MemoryReader(ramp()), clock=clock)
    src.start()
    src.seek(5_500_000)
    first = src.poll()
    assert first["t"][0] == 5_500_000
    clock.now += 0.02
    assert drain(src)["t"][-1] == 5_520_000


def test_loop_keeps_time_moving_forwards() -> None:
    events = ramp(100)
    src = ReplaySource(MemoryReader(events), speed=math.inf, loop=True)
    src.start()
    got = np.concatenate([src.poll(max_events=70) for _ in range(5)])
    assert len(got) == 350
    assert np.all(np.diff(got["t"]) > 0)
    np.testing.assert_array_equal(got["x"][100:200], events["x"])
    assert src.status().extra["passes"] == 3


def test_error_mid_file_keeps_delivered_events_and_reports_one_line() -> None:
    src = ReplaySource(MemoryReader(ramp(1000), packet=100, fail_at=500), speed=math.inf)
    src.start()
    got = drain(src)
    assert len(got) == 500
    st = src.status()
    assert st.state is SourceState.ERROR
    assert st.message == "memory.rec: truncated body (at byte 4000)"
    assert "\n" not in st.message


def test_bad_speed_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        ReplaySource(MemoryReader(ramp()), speed=0.01)
    with pytest.raises(ConfigError):
        ReplaySource(MemoryReader(ramp()), speed=float("nan"))


@pytest.mark.parametrize("name", ["MovingDarkBox.aedat", "sample.aedat4", "evt3_sample.raw"])
def test_replaying_a_real_file_as_fast_as_possible_gives_every_event(
    samples_dir: Path, name: str
) -> None:
    from dvsapp.events.detect import open_reader

    with open_reader(samples_dir / name) as reader:
        expected = reader.read_all()
    src = ReplaySource(samples_dir / name, speed=math.inf)
    with src:
        got = drain(src)
    np.testing.assert_array_equal(got, expected)
    assert src.status().state is SourceState.ENDED


def test_leaving_as_fast_as_possible_does_not_flood() -> None:
    """set_speed after an unbounded pace continues from the last delivered event."""
    clock = FakeClock()
    src = ReplaySource(MemoryReader(ramp()), speed=math.inf, clock=clock)
    src.start()
    assert src.poll(max_events=10)["t"][-1] == 5_009_000
    src.set_speed(1.0)
    clock.now += 0.005
    assert drain(src)["t"][-1] == 5_014_000
    src.pause()
    src.set_speed(math.inf)
    src.set_speed(2.0)
    src.resume()
    clock.now += 0.005
    assert drain(src)["t"][-1] == 5_024_000


def test_seek_before_the_first_read_still_loops_forwards() -> None:
    src = ReplaySource(MemoryReader(ramp(100)), speed=math.inf, loop=True)
    src.start()
    src.seek(5_050_000)
    got = np.concatenate([src.poll(max_events=40) for _ in range(5)])
    assert got["t"][0] == 5_050_000
    assert np.all(np.diff(got["t"]) > 0)
    assert got["x"][50] == 0  # the second pass starts at the recording's first event
