"""The window's outputs: the per-step export (the pipeline writes a Parquet file) and a
video recording of the window itself (:class:`~dvsapp.gui.video_recorder.VideoRecorder`).

Both start from a toggle button in the controls and ask for a file first; the dialog is
:attr:`Outputs.ask_save_path`, which tests replace.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Slot
from PySide6.QtWidgets import QFileDialog, QWidget

from dvsapp.gui.slots import note_slot
from dvsapp.pipeline import PipelineStats

if TYPE_CHECKING:
    from dvsapp.gui.main_window import MainWindow

EXPORT_FILTER = "Parquet tables (*.parquet);;All files (*)"
MP4_FILTER = "MP4 videos (*.mp4);;All files (*)"
#: Frames per second of a recorded video of the window.
VIDEO_FPS = 15


def ask_save_path(parent: QWidget, caption: str, start: str, filters: str) -> str:
    """The save-file dialog ("" when cancelled)."""
    path, _ = QFileDialog.getSaveFileName(parent, caption, start, filters)
    return path


def with_suffix(path: str, suffix: str) -> Path:
    """``path`` with ``suffix`` added when it has none."""
    p = Path(path)
    return p if p.suffix else p.with_suffix(suffix)


def _one_line(error: BaseException) -> str:
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    return lines[0] if lines else type(error).__name__


class Outputs(QObject):
    """Export and video recording for one window (GUI thread only)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        #: The save-file dialog: (parent, caption, start, filters) -> path or "".
        self.ask_save_path: Callable[[QWidget, str, str, str], str] = ask_save_path
        #: The export file asked for (None: no export open) and the export error the
        #: pipeline already reported when it was asked (an older export's).
        self.export_target: Path | None = None
        self._export_stale = ""
        self._export_open = False  # the pipeline reported the export open
        self.export_rows = 0
        #: The running VideoRecorder (None: not recording) and its file.
        self.recorder: Any = None
        self.video_path: Path | None = None

    # -- export ----------------------------------------------------------------------------
    @Slot(bool)
    def request_export(self, on: bool) -> None:
        """The export button: ask for a .parquet file and start; pressed again: stop."""
        note_slot("Outputs.request_export")
        if on:
            self.start_export()
        else:
            self.stop_export()

    def start_export(self, path: Path | None = None) -> bool:
        """Export to ``path`` (None: ask for it); False when cancelled or refused."""
        win = self.window
        if path is None:
            chosen = self.ask_save_path(win, "Export every step to", "", EXPORT_FILTER)
            if not chosen:
                win.controls.set_exporting(False, "")
                return False
            path = with_suffix(chosen, ".parquet")
        try:
            self._export_stale = win.pipeline.stats().export_error
        except Exception:
            self._export_stale = ""
        self.export_target = Path(path)
        self.export_rows = 0
        self._export_open = False
        win.sync_analysis()  # the rows carry the in-depth probes from the first one
        if not win._guard(win.pipeline.start_export, self.export_target):
            self.export_target = None
            win.controls.set_exporting(False, "export failed")
            return False
        win.controls.set_exporting(True, f"exporting to {self.export_target.name}…")
        self.check(None)
        return self.export_target is not None

    def stop_export(self) -> None:
        """Close the open export (the pipeline completes the file)."""
        target, self.export_target = self.export_target, None
        if target is None:
            self.window.controls.set_exporting(False)
            return
        with contextlib.suppress(Exception):  # the rows so far (the stats tick may lag)
            self.export_rows = max(self.export_rows, int(self.window.pipeline.stats().export_rows))
        self.window._guard(self.window.pipeline.stop_export)
        self.window.controls.set_exporting(
            False, f"{self.export_rows:,} rows written to {target.name}"
        )

    def check(self, st: PipelineStats | None) -> None:
        """Stats tick: rows written so far; an export error stops the export (one line in
        the error banner) and turns the button off; so does a video that failed."""
        recorder = self.recorder
        if recorder is not None and getattr(recorder, "error", ""):
            self.stop_video()
        if self.export_target is None:
            return
        win = self.window
        if st is None:
            try:
                st = win.pipeline.stats()
            except Exception:
                return
        error = st.export_error
        if not error:
            self._export_stale = ""  # the pipeline cleared it: any error now is ours
        elif error != self._export_stale:
            self.export_target = None
            win.show_error(f"export stopped: {error}")
            win.controls.set_exporting(False, "export failed")
            return
        self.export_rows = int(st.export_rows)
        name = self.export_target.name
        if st.export_path is not None and Path(st.export_path) == self.export_target:
            self._export_open = True
        elif self._export_open and st.export_path is None:  # the pipeline closed it
            self.export_target = None  # (e.g. the models changed: its status line says)
            win.controls.set_exporting(False, f"closed: {self.export_rows:,} rows in {name}")
            return
        win.controls.show_export_text(f"{self.export_rows:,} rows → {name}")

    # -- video -----------------------------------------------------------------------------
    @Slot(bool)
    def request_record(self, on: bool) -> None:
        """The record button: ask for an .mp4 file and record the window; again: stop."""
        note_slot("Outputs.request_record")
        if on:
            self.start_video()
        else:
            self.stop_video()

    def start_video(self, path: Path | None = None) -> bool:
        """Record the window to ``path`` (None: ask for it); False when cancelled or failed."""
        win = self.window
        if path is None:
            chosen = self.ask_save_path(win, "Record the window to", "", MP4_FILTER)
            if not chosen:
                win.controls.set_recording_video(False, "")
                return False
            path = with_suffix(chosen, ".mp4")
        try:
            from dvsapp.gui.video_recorder import VideoRecorder

            recorder = VideoRecorder(win, Path(path), fps=VIDEO_FPS, stamp=self.stamp)
            recorder.start()
        except Exception as e:  # no encoder, a folder we cannot write: say so, keep going
            win.show_error(f"cannot record video: {_one_line(e)}")
            win.controls.set_recording_video(False, "video failed")
            return False
        self.recorder, self.video_path = recorder, Path(path)
        win.controls.set_recording_video(True, f"recording {self.video_path.name}…")
        return True

    def stop_video(self) -> None:
        """Stop recording (the file is complete once this returns)."""
        recorder, self.recorder = self.recorder, None
        if recorder is None:
            self.window.controls.set_recording_video(False)
            return
        text = f"saved {self.video_path.name}" if self.video_path else ""
        try:
            recorder.stop()
        except Exception as e:
            recorder.error = getattr(recorder, "error", "") or _one_line(e)
        if getattr(recorder, "error", ""):
            self.window.show_error(f"video recording failed: {recorder.error}")
            text = "video failed"
        self.window.controls.set_recording_video(False, text)

    def stamp(self) -> str:
        """The video's caption: stream time, window and step of the last frame drawn."""
        f = self.window.last_frame
        if f is None:
            return "no step yet"
        t = f.recording_t_us if f.recording_t_us is not None else f.t_start_us
        st = self.window.last_stats
        if st is not None and st.t_first_us is not None and f.recording_t_us is not None:
            t -= st.t_first_us
        steps = self.window.info.window_steps if self.window.info is not None else None
        step = f"{f.step}/{steps}" if steps else str(f.step)
        return f"t {t / 1e6:.3f} s · window {f.window} · step {step}"

    def stop_all(self) -> None:
        """The window closes: stop the video and close the export."""
        self.stop_video()
        if self.export_target is not None:
            self.stop_export()
