"""Record a widget (the dashboard) to an MP4 video while it runs.

A :class:`QTimer` in the GUI thread grabs the widget every ``1/fps`` s, draws a time stamp
into the bottom-left corner and hands the pixels (a BGRA copy) to an encoder thread, which
converts them to yuv420p and encodes them with PyAV (libx264 when its bundled FFmpeg has it,
else mpeg4). The GUI thread only grabs, paints and copies; PyAV releases the GIL while it
converts and encodes. When the encoder falls behind by about a second, ticks are skipped
(:attr:`VideoRecorder.dropped`) rather than stalling the GUI.

Frame times follow the wall clock: a frame's presentation time is its tick's time since
:meth:`VideoRecorder.start`, so the video plays in real time even when ticks come late or
are skipped (the player holds the previous frame).

Every frame has the size of the widget when the recorder was made, rounded up to even (as
yuv420p needs): a widget that grows later is scaled down to fit (aspect kept), a smaller one
is drawn at the top left, and the rest is padded black.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import numpy as np
import shiboken6
from PySide6.QtCore import QPoint, QRect, QSize, Qt, QTimer
from PySide6.QtGui import QColor, QFont, QFontDatabase, QImage, QPainter, QPixmap
from PySide6.QtWidgets import QWidget

from dvsapp.errors import ConfigError

#: Preferred encoders, best first, with their options.
CODECS: tuple[tuple[str, dict[str, str]], ...] = (
    ("libx264", {"preset": "ultrafast", "tune": "zerolatency", "crf": "23"}),
    ("mpeg4", {}),
)
#: mpeg4 has no constant-quality mode here: its bit rate.
MPEG4_BIT_RATE = 8_000_000
MAX_FPS = 60


def choose_codec() -> tuple[str, dict[str, str]]:
    """The first of :data:`CODECS` that PyAV's FFmpeg can encode with."""
    import av

    for name, options in CODECS:
        if name in av.codecs_available:
            try:
                av.Codec(name, "w")
            except Exception:  # listed but not an encoder: try the next
                continue
            return name, dict(options)
    raise ConfigError("no video encoder available (PyAV's FFmpeg has neither libx264 nor mpeg4)")


def format_elapsed(seconds: float) -> str:
    """``m:ss.mmm``, e.g. ``0:03.250``."""
    ms = round(max(0.0, seconds) * 1000)
    return f"{ms // 60000}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


class VideoRecorder:
    """Records ``widget`` to ``path`` (``.mp4``) at ``fps`` frames per second.

    Args:
        widget: what to record (grabbed with ``QWidget.grab``, children included).
        path: the ``.mp4`` file, created (or overwritten) at once.
        fps: frames per second, 1 .. 60.
        stamp: the text drawn in the frame's bottom-left corner, asked at every frame (e.g.
            ``"0:03.250  window 4 step 7"``); None: the time since :meth:`start`.

    Raises ConfigError (one line) when the path cannot be written or the encoder does not
    open. Use from the GUI thread only. :attr:`error` holds the one-line reason when
    encoding failed later (the recording then stops by itself).
    """

    def __init__(
        self,
        widget: QWidget,
        path: str | os.PathLike[str],
        fps: int = 15,
        stamp: Callable[[], str] | None = None,
    ) -> None:
        import av

        self.path = Path(path)
        if isinstance(fps, bool) or not isinstance(fps, int) or not 1 <= fps <= MAX_FPS:
            raise ConfigError(f"video fps must be an integer from 1 to {MAX_FPS}, got {fps!r}")
        self._check_path()
        self.widget = widget
        self.fps = fps
        self.stamp = stamp
        self.frames = 0  # frames handed to the encoder
        self.encoded = 0  # frames the encoder took (all of ``frames`` after stop)
        self.dropped = 0  # ticks skipped because the encoder lagged behind
        self.error = ""  # one line, when encoding failed
        self.grab_ms = 0.0  # mean GUI-thread time per frame (grab, stamp, copy)
        self.encode_ms = 0.0  # mean encoder-thread time per frame (convert, encode, write)
        pix = widget.grab()
        self.size = QSize(pix.width() + pix.width() % 2, pix.height() + pix.height() % 2)
        self.codec, options = choose_codec()
        existed = self.path.exists()
        try:
            self._container = av.open(str(self.path), "w")
        except (OSError, av.FFmpegError) as e:
            raise ConfigError(f"cannot write the video {self.path}: {_reason(e)}") from None
        try:
            stream = self._container.add_stream(self.codec, rate=fps, options=options)
            stream.width, stream.height = self.size.width(), self.size.height()
            stream.pix_fmt = "yuv420p"
            stream.time_base = Fraction(1, fps)
            if self.codec == "mpeg4":
                stream.bit_rate = MPEG4_BIT_RATE
            stream.codec_context.open()
        except Exception as e:  # any failure to open the encoder
            self._discard(existed)
            raise ConfigError(
                f"cannot open the {self.codec} encoder for {self.path}: {_reason(e)}"
            ) from None
        try:
            self._container.start_encoding()  # opens the file and writes the header now
        except Exception as e:
            self._discard(existed)
            raise ConfigError(f"cannot write the video {self.path}: {_reason(e)}") from None
        self._stream = stream
        self._canvas = QImage(self.size, QImage.Format.Format_RGB32)
        self._font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self._font.setPixelSize(max(12, self.size.height() // 45))
        self._font.setStyleHint(QFont.StyleHint.Monospace)
        self._queue: queue.Queue[tuple[np.ndarray, int] | None] = queue.Queue(maxsize=fps)
        self._thread = threading.Thread(target=self._encode_loop, name="video-encoder", daemon=True)
        self._timer = QTimer()
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.setInterval(max(1, round(1000 / fps)))
        self._timer.timeout.connect(self._tick)
        self._t0: float | None = None
        self._last_pts = -1
        self._stopped = False

    def _discard(self, existed: bool) -> None:
        """Close the container of a recorder that failed to open; leave no new file."""
        with contextlib.suppress(Exception):
            self._container.close()
        if not existed:
            self.path.unlink(missing_ok=True)

    def _check_path(self) -> None:
        def fail(reason: str) -> None:
            raise ConfigError(f"cannot write the video {self.path}: {reason}")

        if self.path.suffix.lower() != ".mp4":
            fail("the file name must end in .mp4")
        if self.path.is_dir():
            fail("it is a folder")
        if not self.path.parent.is_dir():
            fail(f"the folder {self.path.parent} does not exist")

    @property
    def recording(self) -> bool:
        """True between :meth:`start` and :meth:`stop`."""
        return self._t0 is not None and not self._stopped

    def start(self) -> None:
        """Grab the first frame now and then every ``1/fps`` s (no-op while recording)."""
        if self._stopped:
            raise RuntimeError(f"the video {self.path} was stopped; make a new recorder")
        if self._t0 is not None:
            return
        self._t0 = time.monotonic()
        self._thread.start()
        self._tick()
        self._timer.start()

    def stop(self) -> Path:
        """Encode what is queued, flush the encoder and close the file; idempotent. A video
        that got no frame yet gets one now, so the file always plays."""
        if self._stopped:
            return self.path
        self._timer.stop()
        if self._t0 is None:
            self._t0 = time.monotonic()
            self._thread.start()
        if self.frames == 0 and not self.error:
            self._tick()
        self._stopped = True
        self._queue.put(None)
        self._thread.join()
        try:
            self._container.close()
        except Exception as e:  # report, the file is as good as it gets
            self.error = self.error or f"closing {self.path} failed: {_reason(e)}"
        return self.path

    # GUI thread -----------------------------------------------------------------------------

    def _tick(self) -> None:
        if self._stopped or self._t0 is None:
            return
        if self.error or not shiboken6.isValid(self.widget):
            self._timer.stop()
            return
        elapsed = time.monotonic() - self._t0
        pts = max(self._last_pts + 1, round(elapsed * self.fps))
        if self._queue.full():
            self.dropped += 1
            return
        t = time.perf_counter()
        frame = self._render(elapsed)
        self._queue.put((frame, pts))
        self._last_pts = pts
        self.frames += 1
        ms = (time.perf_counter() - t) * 1000
        self.grab_ms += (ms - self.grab_ms) / self.frames

    def _render(self, elapsed: float) -> np.ndarray:
        """The widget as drawn now, fitted to the frame size, stamped: uint8 [H, W, 4] BGRA."""
        pix: QPixmap = self.widget.grab()
        canvas, size = self._canvas, self.size
        src = QSize(pix.width(), pix.height())
        painter = QPainter(canvas)
        try:
            if src != size:
                canvas.fill(QColor(0, 0, 0))
            if src.width() > size.width() or src.height() > size.height():
                fit = src.scaled(size, Qt.AspectRatioMode.KeepAspectRatio)
                painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
                painter.drawPixmap(QRect(QPoint(0, 0), fit), pix)
            else:
                painter.drawPixmap(0, 0, pix)
            text = self.stamp() if self.stamp is not None else format_elapsed(elapsed)
            if text:
                self._draw_stamp(painter, text)
        finally:
            painter.end()
        h, w = size.height(), size.width()
        bpl = canvas.bytesPerLine()
        return (
            np.frombuffer(canvas.constBits(), np.uint8, h * bpl)
            .reshape(h, bpl)[:, : w * 4]
            .reshape(h, w, 4)
            .copy()
        )

    def _draw_stamp(self, painter: QPainter, text: str) -> None:
        painter.setFont(self._font)
        metrics = painter.fontMetrics()
        pad = max(3, self._font.pixelSize() // 4)
        box = metrics.boundingRect(text).adjusted(-pad, -pad, pad, pad)
        box.moveBottomLeft(QPoint(0, self.size.height() - 1))
        painter.fillRect(box, QColor(0, 0, 0, 190))
        painter.setPen(QColor(255, 255, 255))
        painter.drawText(box, Qt.AlignmentFlag.AlignCenter, text)

    # encoder thread -------------------------------------------------------------------------

    def _encode_loop(self) -> None:
        import av

        while True:
            item = self._queue.get()
            if item is None:
                break
            if self.error:
                continue  # drain until stop
            pixels, pts = item
            t = time.perf_counter()
            try:
                frame = av.VideoFrame.from_ndarray(pixels, format="bgra")
                frame.pts = pts
                for packet in self._stream.encode(frame):
                    self._container.mux(packet)
            except Exception as e:  # one line for the GUI, then stop
                self.error = f"encoding {self.path} failed: {_reason(e)}"
                continue
            self.encoded += 1
            self.encode_ms += ((time.perf_counter() - t) * 1000 - self.encode_ms) / self.encoded
        if not self.error:
            try:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
            except Exception as e:
                self.error = f"encoding {self.path} failed: {_reason(e)}"


def _reason(e: BaseException) -> str:
    """One line for an OSError / FFmpeg error."""
    if isinstance(e, OSError) and e.errno and e.strerror:
        return e.strerror.lower()
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__
