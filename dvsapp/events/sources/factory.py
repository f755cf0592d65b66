"""One string names any event source (the CLI's ``--source``).

==================  ===========================================================
``camera``          the first event camera of any kind (dv-processing, then
                    neuromorphic-drivers)
``camera:SERIAL``   the camera with that serial number
``tcp://HOST:PORT`` a DV network stream (dv-processing ``NetworkWriter``)
``unix:PATH``       a DV network stream on a UNIX socket
``webcam:N``        DVS events emulated from webcam N (OpenCV)
``video:PATH``      DVS events emulated from a video file (OpenCV)
``PATH``            a recording in any readable format, replayed
==================  ===========================================================

``open_source`` only builds the source; call ``start()`` (then read ``sensor_size``, which
live sources learn when they open).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

from dvsapp.errors import ConfigError
from dvsapp.events.sources.base import EventSource

ACCEPTED = (
    "camera, camera:SERIAL, tcp://HOST:PORT, unix:PATH, webcam:N, video:PATH, or a recording path"
)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source spec: ``kind`` is camera, tcp, unix, webcam, video or replay."""

    kind: str
    target: str = ""  # serial, host, socket path, file path ("" for the first camera)
    port: int | None = None  # tcp port, webcam index


def _bad(spec: str, why: str) -> ConfigError:
    return ConfigError(f"bad source {spec!r}: {why}; expected {ACCEPTED}")


def parse_source_spec(spec: str | os.PathLike[str]) -> SourceSpec:
    """Parse a source spec; raise ConfigError (one line, listing the accepted forms)."""
    text = os.fspath(spec)
    if not text.strip():
        raise _bad(text, "empty")
    if text == "camera":
        return SourceSpec("camera")
    if text.startswith("camera:"):
        serial = text[len("camera:") :].strip()
        if not serial:
            raise _bad(text, "no serial number after camera:")
        return SourceSpec("camera", serial)
    if text.startswith("tcp://"):
        host, sep, port = text[len("tcp://") :].rpartition(":")
        host = host.strip("[]")  # tcp://[::1]:7777
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise _bad(text, "tcp needs a host and a port 1..65535")
        return SourceSpec("tcp", host, int(port))
    if text.startswith("unix:"):
        path = text[len("unix:") :]
        if path.startswith("//"):  # unix:///tmp/x.sock
            path = path[2:]
        if not path:
            raise _bad(text, "no socket path after unix:")
        return SourceSpec("unix", path)
    if text == "webcam" or text.startswith("webcam:"):
        index = text.partition(":")[2] or "0"
        if not index.isdigit():
            raise _bad(text, "webcam needs a device number")
        return SourceSpec("webcam", f"webcam:{int(index)}", int(index))
    if text.startswith("video:"):
        path = text[len("video:") :]
        if not path:
            raise _bad(text, "no file after video:")
        return SourceSpec("video", path)
    m = _SCHEME.match(text)
    if m and not os.path.exists(text):  # "ftp://..", "cam:1": a scheme we do not know
        raise _bad(text, f"unknown source kind {m.group(1)!r}")
    return SourceSpec("replay", text)


def open_source(spec: str | os.PathLike[str], **opts: Any) -> EventSource:
    """Build (not start) the source ``spec`` names.

    ``speed`` (replay and video files) and ``loop`` (replay) apply where they make sense and
    are ignored elsewhere; any other option goes to the source's constructor.
    """
    parsed = parse_source_spec(spec)
    speed = float(opts.pop("speed", 1.0))
    loop = bool(opts.pop("loop", False))
    try:
        return _build(parsed, speed, loop, opts)
    except TypeError as e:  # an option this kind of source does not take
        raise ConfigError(f"source {os.fspath(spec)!r}: {e}") from None


def _build(s: SourceSpec, speed: float, loop: bool, opts: dict[str, Any]) -> EventSource:
    if s.kind == "camera":
        from dvsapp.events.sources.cameras import AnyCamera

        return AnyCamera(s.target or None, **opts)
    if s.kind in ("tcp", "unix"):
        try:
            from dvsapp.events.sources.network import NetworkSource
        except ImportError as e:
            raise ConfigError(f"network sources are not available here ({e})") from None
        if s.kind == "tcp":
            assert s.port is not None
            return NetworkSource.tcp(s.target, s.port, **opts)
        return NetworkSource.unix(s.target, **opts)
    if s.kind in ("webcam", "video"):
        try:
            from dvsapp.events.emulator.video_source import VideoSource
        except ImportError as e:
            raise ConfigError(
                f"{s.target}: the emulator needs OpenCV ({e}): pip install 'dvsapp[camera]'"
            ) from None
        if s.kind == "webcam":
            return VideoSource(s.target, **opts)
        return VideoSource(s.target, speed=speed, **opts)
    from dvsapp.events.sources.replay import ReplaySource

    return ReplaySource(s.target, speed=speed, loop=loop, **opts)
