"""open_source / parse_source_spec: every accepted form, and one-line errors for bad ones."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import numpy as np
import pytest

from dvsapp.errors import ConfigError, EventFileError
from dvsapp.events.sources import (
    AnyCamera,
    ReplaySource,
    SourceSpec,
    open_source,
    parse_source_spec,
)
from dvsapp.events.sources.factory import ACCEPTED
from dvsapp.events.types import make_events
from dvsapp.events.writers import write_npz


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("camera", SourceSpec("camera")),
        ("camera:00000123", SourceSpec("camera", "00000123")),
        ("tcp://127.0.0.1:7777", SourceSpec("tcp", "127.0.0.1", 7777)),
        ("tcp://[::1]:7777", SourceSpec("tcp", "::1", 7777)),
        ("tcp://localhost:1", SourceSpec("tcp", "localhost", 1)),
        ("unix:/tmp/dv.sock", SourceSpec("unix", "/tmp/dv.sock")),
        ("unix:///tmp/dv.sock", SourceSpec("unix", "/tmp/dv.sock")),
        ("webcam:2", SourceSpec("webcam", "webcam:2", 2)),
        ("webcam", SourceSpec("webcam", "webcam:0", 0)),
        ("video:clip.avi", SourceSpec("video", "clip.avi")),
        ("video:/data/a b.mp4", SourceSpec("video", "/data/a b.mp4")),
        ("rec.aedat4", SourceSpec("replay", "rec.aedat4")),
        ("/data/x.npz", SourceSpec("replay", "/data/x.npz")),
    ],
)
def test_parses_every_form(spec: str, expected: SourceSpec) -> None:
    assert parse_source_spec(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "camera:",
        "tcp://host",
        "tcp://host:",
        "tcp://:7777",
        "tcp://host:http",
        "tcp://host:70000",
        "unix:",
        "webcam:x",
        "video:",
        "ftp://host/file",
        "bogus:thing",
    ],
)
def test_rejects_bad_specs_with_one_line(spec: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_source_spec(spec)
    message = str(info.value)
    assert "\n" not in message and ACCEPTED in message
    with pytest.raises(ConfigError):
        open_source(spec)


def test_a_real_path_with_a_colon_is_a_recording(tmp_path: Path) -> None:
    path = tmp_path / "odd:name.npz"
    events = make_events(np.array([1]), np.array([2]), np.array([10]), np.array([True]))
    write_npz(path, [events], (4, 4, 2))
    spec = parse_source_spec(str(path))
    assert spec == SourceSpec("replay", str(path))
    assert isinstance(open_source(str(path)), ReplaySource)


def test_builds_each_kind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, object]] = []

    class FakeNetworkSource:
        @classmethod
        def tcp(cls, host: str, port: int, **kw: object) -> str:
            calls.append(("tcp", (host, port, kw)))
            return "tcp-source"

        @classmethod
        def unix(cls, path: str, **kw: object) -> str:
            calls.append(("unix", (path, kw)))
            return "unix-source"

    fake = types.ModuleType("dvsapp.events.sources.network")
    fake.NetworkSource = FakeNetworkSource  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "dvsapp.events.sources.network", fake)
    assert open_source("tcp://10.0.0.2:7777") == "tcp-source"
    assert open_source("unix:/tmp/s", queue_events=5) == "unix-source"
    assert calls == [("tcp", ("10.0.0.2", 7777, {})), ("unix", ("/tmp/s", {"queue_events": 5}))]

    cam = open_source("camera:ABC")
    assert isinstance(cam, AnyCamera) and cam.serial == "ABC"
    assert isinstance(open_source("camera"), AnyCamera)

    pytest.importorskip("cv2")
    from dvsapp.events.emulator import VideoSource

    web = open_source("webcam:3")
    assert isinstance(web, VideoSource) and web.name == "emulator:webcam:3"
    vid = open_source(f"video:{tmp_path / 'missing.avi'}", speed=2.0)
    assert isinstance(vid, VideoSource) and vid.speed == 2.0


def test_replay_options_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "r.npz"
    events = make_events(np.array([1, 2]), np.array([2, 3]), np.array([10, 20]), np.array([1, 0]))
    write_npz(path, [events], (4, 4, 2))
    src = open_source(str(path), speed=float("inf"), loop=True)
    assert isinstance(src, ReplaySource) and src.loop and src.speed == float("inf")
    with pytest.raises(ConfigError, match="does_not_take"):
        open_source(str(path), does_not_take=1)
    with pytest.raises(EventFileError) as info:  # from the reader, one line
        open_source(str(tmp_path / "nope.aedat4"))
    assert "\n" not in str(info.value)
