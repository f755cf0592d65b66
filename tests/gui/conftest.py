"""GUI tests run offscreen: the platform is chosen here, before anything imports Qt."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_LOGGING_RULES", "qt.qpa.*=false")

import pytest

pytest.importorskip("PySide6", reason="the GUI extra (PySide6) is not installed")
pytest.importorskip("pyqtgraph", reason="the GUI extra (pyqtgraph) is not installed")
pytest.importorskip("pytestqt", reason="pytest-qt is not installed")


@pytest.fixture(autouse=True)
def _collect_qt_garbage_in_the_gui_thread():
    """Windows a test closed still sit in Python reference cycles; left to the garbage
    collector, they may be destroyed in whatever thread triggers it next, e.g. the next
    test's pipeline worker, and a QWidget destroyed outside the GUI thread deadlocks
    (seen: a QMenu's destructor waiting for the GIL inside the worker's model build).
    Collect them here, in the GUI thread, after every test."""
    import gc

    yield
    gc.collect()


@pytest.fixture
def thread_errors():
    """Exceptions that escaped any thread while the test ran."""
    import threading

    seen: list[BaseException] = []
    old = threading.excepthook
    threading.excepthook = lambda args: seen.append(args.exc_value)
    yield seen
    threading.excepthook = old
