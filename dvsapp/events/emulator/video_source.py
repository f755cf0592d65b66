"""An event source that emulates a DVS from a webcam or a video file (OpenCV).

A reader thread grabs frames into a bounded queue; ``poll()`` takes what is queued and runs
the pixel model on it, so it never waits on the device. Timestamps: for files, the frame index
over the video's frame rate (paced in real time at ``speed=1``, or as fast as possible at
``speed=math.inf``); for webcams, the wall clock since ``start()``.

Webcam frames that the consumer does not take in time are dropped oldest-first; a dropped
frame's events cannot be known, so ``events_dropped`` counts dropped frames (also in
``extra["frames_dropped"]``). File frames are never dropped: the reader waits for room.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from dvsapp.errors import ConfigError
from dvsapp.events.emulator.pixel_model import DvsPixelModel, PixelModelConfig
from dvsapp.events.sources.base import EventSource, SourceState, SourceStatus
from dvsapp.events.types import EVENT_DTYPE

DEFAULT_WEBCAM_SIZE = (640, 480)
DEFAULT_FILE_FPS = 30.0


def parse_spec(spec: str | os.PathLike[str]) -> tuple[int | None, str]:
    """``webcam:N`` (or ``webcam``) -> (N, spec); anything else is a video file path."""
    text = os.fspath(spec)
    if text == "webcam" or text.startswith("webcam:"):
        index = text.partition(":")[2] or "0"
        if not index.isdigit():
            raise ConfigError(f"webcam spec must be webcam:N with N a number, not {text!r}")
        return int(index), f"webcam:{int(index)}"
    return None, text


class VideoSource(EventSource):
    """DVS events emulated from ``webcam:N`` or a video file.

    ``size`` (width, height) resizes frames; without it a file keeps its own size and a
    webcam is asked for 640x480 (and resized to it whatever it delivers).
    """

    def __init__(
        self,
        spec: str | os.PathLike[str],
        config: PixelModelConfig | None = None,
        speed: float = 1.0,
        size: tuple[int, int] | None = None,
        queue_frames: int = 8,
        stall_timeout_s: float = 1.0,
    ) -> None:
        import cv2  # the optional "camera" extra; imported here so dvsapp imports without it

        self._cv2: Any = cv2
        self._webcam, self._label = parse_spec(spec)
        if not (speed > 0):
            raise ConfigError(f"speed must be > 0 (math.inf: as fast as possible), not {speed}")
        if queue_frames < 1:
            raise ConfigError(f"queue_frames must be >= 1, not {queue_frames}")
        self.speed = float(speed)
        self.config = config or PixelModelConfig()
        self.stall_timeout_s = stall_timeout_s
        if size is None and self._webcam is None:
            size = self._probe_file_size()
        w, h = size or DEFAULT_WEBCAM_SIZE
        self._size_fixed = size is not None
        super().__init__(f"emulator:{self._label}", (int(w), int(h), 2))
        self._queue: deque[tuple[np.ndarray, int]] = deque()
        self._queue_max = queue_frames
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._cap: Any = None
        self._model = DvsPixelModel(w, h, self.config)
        self._state = SourceState.IDLE
        self._message = ""
        self._reader_done: tuple[SourceState, str] | None = None  # set by the reader thread
        self._delivered = 0
        self._frames_in = 0
        self._frames_dropped = 0
        self._last_t: int | None = None
        self._last_frame_wall = 0.0
        self._pending = np.zeros(0, dtype=EVENT_DTYPE)
        self._fps = DEFAULT_FILE_FPS

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        if self._state in (SourceState.RUNNING, SourceState.STALLED):
            return
        cv2 = self._cv2
        if self._webcam is None:
            if not Path(self._label).is_file():
                self._fail(SourceState.ERROR, f"video file not found: {self._label}")
                return
            cap = cv2.VideoCapture(self._label)
            if not cap.isOpened():
                cap.release()
                self._fail(SourceState.ERROR, f"cannot open video file {self._label} (OpenCV)")
                return
            fps = cap.get(cv2.CAP_PROP_FPS)
            self._fps = fps if fps and math.isfinite(fps) and fps > 0 else DEFAULT_FILE_FPS
        else:
            cap = cv2.VideoCapture(self._webcam)
            if not cap.isOpened():
                cap.release()
                self._fail(
                    SourceState.DISCONNECTED,
                    f"no camera at {self._label}: OpenCV could not open video device "
                    f"{self._webcam} (is a webcam attached?)",
                )
                return
            w, h = self.sensor_size[:2]
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, w)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, h)
        self._cap = cap
        self._stop.clear()
        self._reader_done = None
        self._state = SourceState.RUNNING
        self._message = ""
        self._last_frame_wall = time.monotonic()
        self._thread = threading.Thread(target=self._read_loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        if self._state in (SourceState.RUNNING, SourceState.STALLED):
            self._state = SourceState.IDLE

    # -- polling -------------------------------------------------------------------------
    def poll(self, max_events: int | None = None) -> np.ndarray:
        limit = None if max_events is None else max(1, int(max_events))
        if len(self._pending) == 0:
            with self._cond:
                frames = list(self._queue)
                self._queue.clear()
                self._cond.notify_all()
            parts = [self._emulate(f, t) for f, t in frames]
            parts = [p for p in parts if len(p)]
            if parts:
                self._pending = np.concatenate(parts) if len(parts) > 1 else parts[0]
        self._update_state()
        if len(self._pending) == 0:
            return np.zeros(0, dtype=EVENT_DTYPE)
        k = len(self._pending) if limit is None else min(limit, len(self._pending))
        out, self._pending = self._pending[:k], self._pending[k:]
        self._delivered += len(out)
        self._last_t = int(out["t"][-1])
        self._update_state()
        return out

    def status(self) -> SourceStatus:
        self._update_state()
        return SourceStatus(
            state=self._state,
            message=self._message,
            events_delivered=self._delivered,
            events_dropped=self._frames_dropped,
            stream_time_us=self._last_t,
            extra={
                "frames_in": self._frames_in,
                "frames_dropped": self._frames_dropped,
                "fps": self._fps if self._webcam is None else None,
                "speed": self.speed,
            },
        )

    # -- internals -----------------------------------------------------------------------
    def _probe_file_size(self) -> tuple[int, int] | None:
        cap = self._cv2.VideoCapture(self._label) if Path(self._label).is_file() else None
        if cap is None:
            return None
        try:
            w = int(cap.get(self._cv2.CAP_PROP_FRAME_WIDTH))
            h = int(cap.get(self._cv2.CAP_PROP_FRAME_HEIGHT))
            return (w, h) if cap.isOpened() and w > 0 and h > 0 else None
        finally:
            cap.release()

    def _emulate(self, frame: np.ndarray, t_us: int) -> np.ndarray:
        w, h = self.sensor_size[:2]
        if frame.shape[1] != w or frame.shape[0] != h:
            frame = self._cv2.resize(frame, (w, h), interpolation=self._cv2.INTER_AREA)
        return self._model.emit(frame, t_us)

    def _update_state(self) -> None:
        if self._state not in (SourceState.RUNNING, SourceState.STALLED):
            return
        with self._cond:
            queued = len(self._queue)
            done = self._reader_done
            last_wall = self._last_frame_wall
        if done is not None and queued == 0 and len(self._pending) == 0:
            self._state, self._message = done
        elif done is None and time.monotonic() - last_wall > self.stall_timeout_s:
            if self._state is not SourceState.STALLED:
                self._message = f"{self._label}: no frame for over {self.stall_timeout_s:g} s"
            self._state = SourceState.STALLED
        elif self._state is SourceState.STALLED:
            self._state, self._message = SourceState.RUNNING, ""

    def _read_loop(self) -> None:
        cap, cv2 = self._cap, self._cv2
        is_file = self._webcam is None
        t_start = time.monotonic()
        index = 0
        last_t = -1
        result = (SourceState.ENDED, f"{self._label}: end of video")
        try:
            while not self._stop.is_set():
                ok, frame = cap.read()
                if not ok or frame is None:
                    if not is_file:
                        result = (
                            SourceState.DISCONNECTED,
                            f"{self._label}: camera stopped delivering frames (unplugged?)",
                        )
                    break
                if is_file:
                    t_us = round(index * 1e6 / self._fps)
                    if math.isfinite(self.speed):  # pace: frame due at its time / speed
                        wait = t_start + t_us * 1e-6 / self.speed - time.monotonic()
                        if wait > 0 and self._stop.wait(wait):
                            break
                else:
                    t_us = round((time.monotonic() - t_start) * 1e6)
                t_us = max(t_us, last_t + 1)
                last_t = t_us
                index += 1
                with self._cond:
                    if is_file:
                        while len(self._queue) >= self._queue_max and not self._stop.is_set():
                            self._cond.wait(0.1)
                    elif len(self._queue) >= self._queue_max:
                        self._queue.popleft()
                        self._frames_dropped += 1
                    self._queue.append((frame, t_us))
                    self._frames_in += 1
                    self._last_frame_wall = time.monotonic()
        except cv2.error as e:  # pragma: no cover - depends on the device
            result = (SourceState.ERROR, f"{self._label}: OpenCV error: {str(e).splitlines()[0]}")
        finally:
            cap.release()
            with self._cond:
                self._reader_done = result

    def _fail(self, state: SourceState, message: str) -> None:
        self._state = state
        self._message = message
