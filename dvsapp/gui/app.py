"""Start the desktop application: ``dvsapp gui [PATH] [--model CKPT]`` and plain ``dvsapp``."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import (
    QEvent,
    QMessageLogContext,
    QObject,
    QTimer,
    QtMsgType,
    Slot,
    qInstallMessageHandler,
)
from PySide6.QtWidgets import QApplication

from dvsapp.gui.main_window import MainWindow
from dvsapp.gui.pipeline_port import PipelineLike
from dvsapp.gui.slots import note_slot
from dvsapp.pipeline import PipelineSettings
from dvsapp.snn.graph.importer import ImportOptions

#: Shipped checkpoints offered in the model chooser.
MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
WINDOW_SIZE = (1600, 1000)
#: With --quit-after: give up (exit 1) when no frame came this long after the start.
FIRST_FRAME_TIMEOUT_S = 60.0


#: Qt messages that say nothing to a user (the offscreen platform used for screenshots).
_QUIET = ("propagateSizeHints",)


def _qt_message(kind: QtMsgType, context: QMessageLogContext, message: str) -> None:
    """Qt's warnings on stderr, less the noise."""
    if not any(q in message for q in _QUIET):
        print(f"qt: {message}", file=sys.stderr)


def shipped_models(folder: Path = MODELS_DIR) -> list[Path]:
    """The checkpoints in ``models/``: ours and networks imported there by ``dvsapp import``
    (any ``.safetensors``; a ``.nir`` graph is opened with "other checkpoint or .nir…")."""
    return sorted(folder.glob("*.safetensors")) if folder.is_dir() else []


def initial_size(app: QApplication) -> tuple[int, int]:
    """:data:`WINDOW_SIZE`, made to fit the screen's free area (a laptop's 1280x720 or
    1024x700); the offscreen platform's made-up screen (800x600) does not count."""
    w, h = WINDOW_SIZE
    screen = app.primaryScreen()
    if screen is None or app.platformName() == "offscreen":
        return w, h
    free = screen.availableGeometry()
    return min(w, free.width()), min(h, free.height())


def cuda_available() -> bool:
    """Whether the CUDA device entry can be offered."""
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


class TimedExit(QObject):
    """``--quit-after``: after that many seconds of playback (counted from the first frame
    drawn), optionally save a screenshot of the whole window, then quit."""

    def __init__(self, window: MainWindow, seconds: float, screenshot: Path | None) -> None:
        super().__init__(window)
        self.window = window
        self.seconds = seconds
        self.screenshot = screenshot
        self.exit_code = 0
        self.message = ""
        self._start = time.monotonic()
        self._first_frame: float | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(50)
        self._timer.timeout.connect(self.check_timed_exit)
        self._timer.start()

    @Slot()
    def check_timed_exit(self) -> None:
        note_slot("TimedExit.check_timed_exit")
        now = time.monotonic()
        if self._first_frame is None and self.window.seq > 0:
            self._first_frame = now
        st = self.window.last_stats
        if self._first_frame is not None:
            if now - self._first_frame < self.seconds:
                return
        elif st is not None and st.state == "error":
            self.exit_code = 1
            self.message = st.message or "the pipeline failed"
        elif now - self._start < self.seconds + FIRST_FRAME_TIMEOUT_S:
            return
        else:
            self.exit_code = 1
            self.message = f"no model step was drawn within {FIRST_FRAME_TIMEOUT_S:.0f} s"
        self._timer.stop()
        # Lay out what the last stats changed (a status field's longer text) before the grab.
        QApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)
        if self.screenshot is not None and not self.window.grab().save(str(self.screenshot)):
            self.exit_code = 1
            self.message = f"{self.screenshot}: cannot write the screenshot"
        self.window.close()
        QApplication.instance().exit(self.exit_code)  # type: ignore[union-attr]


def run_app(
    recording: Path | None,
    checkpoint: Path | None = None,
    device: str = "auto",
    speed: float = 1.0,
    screenshot: Path | None = None,
    quit_after: float | None = None,
    pipeline_factory: Callable[[PipelineSettings], PipelineLike] | None = None,
    source: str | None = None,
    import_options: ImportOptions | None = None,
    end_process: bool | None = None,
    compare: Path | None = None,
) -> int:
    """Open the main window on ``recording`` with ``checkpoint`` (None: the untrained demo)
    and run the event loop; returns the exit status. ``source``: a source spec
    (factory.open_source's forms) to stream from instead of ``recording``.
    ``import_options``: how to feed ``checkpoint`` when it is a NIR graph. ``compare``: a
    second checkpoint stepped on the same events, its panels beside the first's.

    ``end_process``: once the window is shut (worker joined, screenshot written), end the
    process at once instead of returning: the interpreter's own teardown (torch's, mostly)
    takes about a second, and Ctrl+Q must be quick. None: end it when this call made the
    QApplication (the ``dvsapp`` command), return when one existed already (a test)."""
    if pipeline_factory is None:
        from dvsapp.pipeline import Pipeline

        pipeline_factory = Pipeline
    made_app = QApplication.instance() is None
    app = QApplication.instance() or QApplication([sys.argv[0] if sys.argv else "dvsapp"])
    if end_process is None:
        end_process = made_app
    app.setApplicationName("dvsapp")
    qInstallMessageHandler(_qt_message)
    settings = PipelineSettings(
        recording=None if recording is None else Path(recording),
        checkpoint=None if checkpoint is None else Path(checkpoint),
        device=device,
        speed=speed,
        import_options=import_options,
        compare_checkpoint=None if compare is None else Path(compare),
    )
    window = MainWindow(pipeline_factory(settings), shipped_models(), cuda_available())
    window.resize(*initial_size(app))
    window.show()
    window.start()
    if source is not None and not window.open_source_spec(source):
        window.shutdown()
        print(f"dvsapp: error: {window.status.currentMessage() or source}", file=sys.stderr)
        return 2
    timed = None
    if quit_after is not None or screenshot is not None:
        timed = TimedExit(window, 2.0 if quit_after is None else quit_after, screenshot)
    previous = signal.signal(signal.SIGINT, lambda *_: window.close())
    try:
        code = app.exec()
    finally:
        signal.signal(signal.SIGINT, previous)
        window.shutdown()
    if timed is not None and timed.message:
        print(f"dvsapp: error: {timed.message}", file=sys.stderr)
    if end_process:
        end_now(int(code))
    return int(code)


def end_now(code: int) -> None:
    """Flush the standard streams and end the process with ``code``, skipping the
    interpreter's teardown (everything that needs closing is closed by now)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to say
            stream.flush()
    os._exit(code)
