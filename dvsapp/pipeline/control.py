"""The caller's side of the pipeline: start/stop the worker thread and queue its commands."""

from __future__ import annotations

import atexit
import dataclasses
import os
import queue
import threading
import weakref
from pathlib import Path

import torch

from dvsapp.events.sources import EventSource
from dvsapp.pipeline.mailbox import Mailbox
from dvsapp.pipeline.records import ModelInfo, PipelineSettings, PipelineStats
from dvsapp.pipeline.worker import Command, Worker
from dvsapp.snn.graph.importer import ImportOptions

THREAD_NAME = "dvsapp-pipeline"
#: Pipelines started and not yet stopped (stopped at interpreter exit).
_STARTED: weakref.WeakSet[Pipeline] = weakref.WeakSet()


class Pipeline:
    """Owns the worker thread. Every method returns at once (commands are queued).

    ``settings`` always holds what the caller last asked for (``configure``,
    ``open_recording``, ``load_model`` and ``set_threshold_scale`` update it at once); the
    worker applies the commands in order, between model steps.
    """

    mailbox: Mailbox
    settings: PipelineSettings

    def __init__(self, settings: PipelineSettings, mailbox: Mailbox | None = None) -> None:
        self.settings = _normalised(settings)
        self.mailbox = mailbox if mailbox is not None else Mailbox()
        self._commands: queue.Queue[Command] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # guards read-modify-write of ``settings``

    def start(self, paused: bool = False) -> None:
        """Start the worker (loads the recording and model in the worker, not here).

        ``paused``: load, then wait for ``play`` or ``step_once``. A no-op while running.
        """
        if self.running:
            return
        old = self._thread
        if old is not None and old.is_alive():  # a stop that timed out: let it finish first
            old.join(5.0)
            if old.is_alive():
                raise RuntimeError("the previous pipeline worker has not stopped yet")
        self._stop.clear()
        worker = Worker(
            self.settings, self.mailbox, self._commands, self._stop, paused, torch.get_num_threads()
        )
        self._thread = threading.Thread(target=worker.run, name=THREAD_NAME, daemon=True)
        self._thread.start()
        _STARTED.add(self)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker and join it (at most ``timeout`` s); safe to call twice.

        The worker closes the source as it exits; it sees the flag within one model step.
        """
        _STARTED.discard(self)
        self._stop.set()
        self._commands.put(("stop",))
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def play(self) -> None:
        """Run at the set speed (at the end of a recording: from its start)."""
        self._send("play")

    def pause(self) -> None:
        self._send("pause")

    def step_once(self) -> None:
        """While paused: advance exactly one model step (pauses first when playing)."""
        self._send("step")

    def seek(self, t_us: int) -> None:
        """Continue from the first event at or after ``t_us`` (the recording's own clock);
        the binner and the model start afresh."""
        self._send("seek", int(t_us))

    def configure(self, settings: PipelineSettings) -> None:
        """Apply changed settings live (new recording/model/device rebuild what they must)."""
        with self._lock:
            self._update(settings)

    def open_recording(self, path: str | os.PathLike[str]) -> None:
        """Open (or re-open) a recording; the stream and the model's state start afresh."""
        with self._lock:
            self._update(dataclasses.replace(self.settings, recording=Path(path)), "recording")

    def open_source(self, source: EventSource) -> None:
        """Stream from an event source the caller made (e.g. a live camera); the worker
        starts it and stops it when replaced or stopped."""
        with self._lock:
            self.settings = dataclasses.replace(self.settings, recording=None)
        self._send("source", source)

    def load_model(
        self,
        checkpoint: str | os.PathLike[str] | None,
        import_options: ImportOptions | None = None,
    ) -> None:
        """Load a checkpoint (None: the untrained demo), even the same file again.

        A ``.nir`` graph is imported with ``import_options`` (None: the defaults). When a
        model is running and the new one fails to load, the running one stays.
        """
        path = None if checkpoint is None else Path(checkpoint)
        with self._lock:
            new = dataclasses.replace(self.settings, checkpoint=path, import_options=import_options)
            self._update(new, "model")

    def set_threshold_scale(self, layer: str, scale: float) -> None:
        """Multiply one spiking layer's threshold live (1.0 restores it)."""
        with self._lock:
            scales = {**self.settings.threshold_scale, layer: float(scale)}
            self._update(dataclasses.replace(self.settings, threshold_scale=scales))

    def compare_model(
        self,
        checkpoint: str | os.PathLike[str] | None,
        import_options: ImportOptions | None = None,
    ) -> None:
        """Compare mode: step a second model on the same events (lane 1), binned by its own
        checkpoint; None ends compare mode. A failure leaves the main model running and shows
        in ``stats().compare_error``."""
        path = None if checkpoint is None else Path(checkpoint)
        with self._lock:
            new = dataclasses.replace(
                self.settings, compare_checkpoint=path, compare_import_options=import_options
            )
            self._update(new, "compare")

    def start_export(self, path: str | os.PathLike[str]) -> None:
        """Write one row per model step from now on to ``path`` (Parquet); a path that cannot
        be written fails at once (``stats().export_error``)."""
        self._send("export", Path(path))

    def stop_export(self) -> None:
        """Close the open export (its file is complete and readable once this is done)."""
        self._send("export", None)

    def model_info(self, lane: int = 0) -> ModelInfo | None:
        """The loaded model's layout (None until the worker has loaded it); ``lane=1``: the
        compared model's (None when compare mode is off)."""
        return self.mailbox.model_info(lane)

    def stats(self) -> PipelineStats:
        """The worker's latest stats (published every 50 ms and on every command)."""
        stats = self.mailbox.stats()
        if stats is None:
            state = "starting" if self.running else "idle"
            return PipelineStats(state, "", 0.0, 0.0, 0.0, 0, self.mailbox.dropped, None, None)
        return stats

    @property
    def running(self) -> bool:
        """The worker thread is alive and has not been asked to stop."""
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def _update(self, settings: PipelineSettings, *force: str) -> None:
        settings = _normalised(settings)
        self.settings = settings
        self._send("configure", settings, frozenset(force))

    def _send(self, *command: object) -> None:
        self._commands.put(tuple(command))


def _normalised(settings: PipelineSettings) -> PipelineSettings:
    """Paths as ``Path`` (a str for the same file must not look like a new recording)."""
    rec, ckpt, other = settings.recording, settings.checkpoint, settings.compare_checkpoint
    return dataclasses.replace(
        settings,
        recording=None if rec is None else Path(rec),
        checkpoint=None if ckpt is None else Path(ckpt),
        compare_checkpoint=None if other is None else Path(other),
    )


@atexit.register
def _stop_all() -> None:
    """Stop every pipeline still running at interpreter exit: a daemon thread that is inside
    torch while Python finalizes aborts the process ("terminate called without an active
    exception")."""
    for pipeline in list(_STARTED):
        pipeline.stop(timeout=5.0)
