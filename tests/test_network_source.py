"""NetworkSource against a real dv-processing NetworkWriter run in a subprocess.

The writer (tests/dv_writer_proc.py) is always killed, never destroyed in-process: destroying
a NetworkWriter after a client connected never returns in dv-processing 2.0.4.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dv_processing")

from dv_writer_proc import HEIGHT, WIDTH, known_events

from dvsapp.events.sources.base import SourceState
from dvsapp.events.sources.network import NetworkSource

WRITER = Path(__file__).with_name("dv_writer_proc.py")
pytestmark = pytest.mark.timeout(60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def writer(address: str, *args: str) -> Iterator[subprocess.Popen[str]]:
    """A NetworkWriter subprocess serving ``address``; killed on exit."""
    proc = subprocess.Popen(
        [sys.executable, str(WRITER), address, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 20.0)
        line = proc.stdout.readline() if ready and proc.stdout else ""
        if line.strip() != "READY":
            err = proc.stderr.read() if proc.poll() is not None and proc.stderr else ""
            raise RuntimeError(f"writer did not start: {line!r} {err}")
        yield proc
    finally:
        proc.kill()
        proc.wait(10)
        for f in (proc.stdout, proc.stderr):
            if f:
                f.close()


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short temporary folder for UNIX sockets (sun_path holds 107 bytes)."""
    d = Path(tempfile.mkdtemp(prefix="dvsnet"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def address_pair(kind: str, sock_dir: Path) -> tuple[str, Callable[[], NetworkSource]]:
    """The writer's address argument and a factory for the matching source."""
    if kind == "tcp":
        port = free_port()
        return f"tcp:127.0.0.1:{port}", lambda: NetworkSource.tcp("127.0.0.1", port)
    path = sock_dir / "dv.sock"
    return f"unix:{path}", lambda: NetworkSource.unix(path)


def collect(src: NetworkSource, n: int, timeout_s: float = 10.0) -> np.ndarray:
    parts: list[np.ndarray] = []
    got, deadline = 0, time.monotonic() + timeout_s
    while got < n and time.monotonic() < deadline:
        ev = src.poll()
        if len(ev):
            parts.append(ev)
            got += len(ev)
        else:
            time.sleep(0.005)
    return np.concatenate(parts) if parts else np.zeros(0)


def wait_for(pred: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return pred()


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert len(got) == len(want)
    for ours, theirs in (("t", "t"), ("x", "x"), ("y", "y"), ("p", "p")):
        np.testing.assert_array_equal(got[ours], want[theirs])


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_events_arrive_complete_and_in_order(kind: str, sock_dir: Path) -> None:
    addr, make = address_pair(kind, sock_dir)
    with writer(addr, "--events", "1000", "--batches", "7"):
        src = make()
        src.start()
        try:
            got = collect(src, 1000)
            st = src.status()
        finally:
            src.stop()
    assert_same(got, known_events(1000))
    assert src.sensor_size == (WIDTH, HEIGHT, 2)
    assert st.state in (SourceState.RUNNING, SourceState.STALLED)
    assert st.events_delivered == 1000 and st.events_dropped == 0
    assert st.stream_time_us == int(got["t"][-1])


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_killed_writer_is_reported_and_a_new_one_is_picked_up(kind: str, sock_dir: Path) -> None:
    addr, make = address_pair(kind, sock_dir)
    src = make()
    try:
        with writer(addr, "--events", "500", "--batches", "5"):
            src.start()
            assert_same(collect(src, 500), known_events(500))
        assert wait_for(lambda: src.status().state is SourceState.DISCONNECTED, 5.0)
        msg = src.status().message
        assert "\n" not in msg and src.address in msg and "went away" in msg
        with writer(addr, "--events", "300", "--batches", "3", "--seed", "1"):
            got = collect(src, 300)
            st = src.status()
        assert_same(got, known_events(300, seed=1))
        assert st.state in (SourceState.RUNNING, SourceState.STALLED)
        assert st.extra["connects"] == 2 and st.events_delivered == 800
    finally:
        t0 = time.monotonic()
        src.stop()
        assert time.monotonic() - t0 < 2.5


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_no_writer_is_reported_without_hanging(kind: str, sock_dir: Path) -> None:
    _, make = address_pair(kind, sock_dir)
    src = make()
    t0 = time.monotonic()
    src.start()
    st = src.status()
    assert time.monotonic() - t0 < 2.0
    assert st.state is SourceState.DISCONNECTED
    assert "\n" not in st.message and src.address in st.message and "no writer" in st.message
    assert len(src.poll()) == 0
    t0 = time.monotonic()
    src.stop()
    assert time.monotonic() - t0 < 1.0
    src.stop()  # twice is fine


@pytest.mark.parametrize(
    "make, fragment",
    [
        (lambda d: NetworkSource.tcp("not-an-ip", 7777), "not an IP address"),
        (lambda d: NetworkSource.tcp("127.0.0.1", 70000), "outside 1-65535"),
        (lambda d: NetworkSource.unix(d / "missing" / "dv.sock"), "folder does not exist"),
        (lambda d: NetworkSource.unix(d / ("x" * 120)), "longer than"),
        (lambda d: NetworkSource.unix(d), "not a socket"),
    ],
)
def test_unusable_address_is_an_error(
    make: Callable[[Path], NetworkSource], fragment: str, sock_dir: Path
) -> None:
    src = make(sock_dir)
    src.start()
    st = src.status()
    src.stop()
    assert st.state is SourceState.ERROR
    assert fragment in st.message and src.address in st.message and "\n" not in st.message


def test_quiet_writer_is_stalled(sock_dir: Path) -> None:
    addr, _ = address_pair("tcp", sock_dir)
    port = int(addr.rsplit(":", 1)[1])
    src = NetworkSource.tcp("127.0.0.1", port, stall_after_s=0.3)
    with writer(addr, "--events", "10", "--batches", "1"):
        src.start()
        try:
            assert len(collect(src, 10)) == 10
            assert wait_for(lambda: src.status().state is SourceState.STALLED, 3.0)
            assert "no data" in src.status().message
        finally:
            src.stop()


def test_full_queue_drops_the_oldest(sock_dir: Path) -> None:
    addr, _ = address_pair("tcp", sock_dir)
    port = int(addr.rsplit(":", 1)[1])
    src = NetworkSource.tcp("127.0.0.1", port, queue_events=300)
    with writer(addr, "--events", "1000", "--batches", "4"):
        src.start()
        try:
            assert wait_for(lambda: src.status().extra["events_received"] == 1000)
            got = src.poll()
            st = src.status()
        finally:
            src.stop()
    assert_same(got, known_events(1000)[-300:])
    assert st.events_dropped == 700 and st.events_delivered == 300


def test_poll_respects_max_events(sock_dir: Path) -> None:
    addr, _ = address_pair("unix", sock_dir)
    src = NetworkSource.unix(addr.split(":", 1)[1])
    with writer(addr, "--events", "400", "--batches", "2"):
        src.start()
        try:
            assert wait_for(lambda: src.status().extra["events_received"] == 400)
            parts = [src.poll(max_events=150) for _ in range(4)]
        finally:
            src.stop()
    assert [len(p) for p in parts] == [150, 150, 100, 0]
    assert_same(np.concatenate(parts), known_events(400))
    assert os.path.basename(src.address) == "dv.sock"
