"""The one cross-thread hand-over: the pipeline's mailbox wakes the GUI through one signal.

The worker calls the mailbox's waker (at most once per drain: the mailbox keeps one pending
wake-up). The waker emits :attr:`_Waker.frames_waiting`, which is queued to
:meth:`MailboxBridge.note_frames_waiting`, a ``@Slot`` on a GUI-thread object: it only marks
the bridge dirty. The redraw timer drains the mailbox when it is dirty, so a slow GUI never
builds a backlog of per-step signals (DESIGN.md traps).
"""

from __future__ import annotations

from typing import Protocol

from PySide6.QtCore import QObject, Qt, Signal, Slot

from dvsapp.gui.slots import note_slot
from dvsapp.pipeline import StepFrame


class MailboxLike(Protocol):
    """What the GUI uses of :class:`dvsapp.pipeline.Mailbox`."""

    def set_waker(self, waker: object) -> None: ...
    def drain(self) -> list[StepFrame]: ...
    def latest(self) -> StepFrame | None: ...


class _Waker(QObject):
    """Owns the signal the worker emits (the only signal emitted off the GUI thread)."""

    frames_waiting = Signal()


class MailboxBridge(QObject):
    """Connects a mailbox to the GUI thread; :attr:`dirty` says frames are waiting."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._waker = _Waker(self)
        self._waker.frames_waiting.connect(
            self.note_frames_waiting, Qt.ConnectionType.QueuedConnection
        )
        self._mailbox: MailboxLike | None = None
        self.dirty = False
        self.wakeups = 0

    def attach(self, mailbox: MailboxLike) -> None:
        """Make ``mailbox`` wake this bridge (detaching any previous one)."""
        self.detach()
        self._mailbox = mailbox
        mailbox.set_waker(self._waker.frames_waiting.emit)
        self.dirty = True  # frames may already be waiting

    def detach(self) -> None:
        """Stop being woken (the worker may still be running)."""
        if self._mailbox is not None:
            self._mailbox.set_waker(None)
            self._mailbox = None

    @Slot()
    def note_frames_waiting(self) -> None:
        """GUI thread: the worker put frames in the mailbox."""
        note_slot("MailboxBridge.note_frames_waiting")
        self.wakeups += 1
        self.dirty = True

    def take(self, force: bool = False) -> list[StepFrame]:
        """Every frame waiting (oldest first), or [] when not dirty (``force``: drain anyway);
        clears :attr:`dirty`."""
        if self._mailbox is None or not (self.dirty or force):
            return []
        self.dirty = False
        return self._mailbox.drain()
