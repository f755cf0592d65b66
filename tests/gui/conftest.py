"""GUI tests run offscreen: the platform is chosen here, before anything imports Qt."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("QT_LOGGING_RULES", "qt.qpa.*=false")

import pytest

pytest.importorskip("PySide6", reason="the GUI extra (PySide6) is not installed")
pytest.importorskip("pyqtgraph", reason="the GUI extra (pyqtgraph) is not installed")
pytest.importorskip("pytestqt", reason="pytest-qt is not installed")
