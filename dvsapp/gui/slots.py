"""Which thread every GUI slot ran in: each slot calls :func:`note_slot` (cheap), tests read
:func:`slot_report`. A Qt slot that ran in a worker thread is a bug (DESIGN.md traps)."""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QThread

_calls: dict[str, int] = {}
_off_thread: dict[str, int] = {}


def note_slot(name: str) -> None:
    """Record that slot ``name`` ran, and whether ``QThread.currentThread()`` was not the
    application's (GUI) thread."""
    _calls[name] = _calls.get(name, 0) + 1
    app = QCoreApplication.instance()
    if app is None or QThread.currentThread() != app.thread():
        _off_thread[name] = _off_thread.get(name, 0) + 1


def slot_report() -> tuple[dict[str, int], dict[str, int]]:
    """(calls per slot, calls per slot that ran off the GUI thread), copies."""
    return dict(_calls), dict(_off_thread)


def reset_slot_report() -> None:
    """Forget the counts (tests)."""
    _calls.clear()
    _off_thread.clear()
