"""Layering rules from DESIGN.md: Qt only in dvsapp/gui; the core never imports upwards."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "dvsapp"
QT_MODULES = ("PySide6", "PyQt5", "PyQt6", "shiboken6", "pyqtgraph", "qtpy")
#: Core packages (and the training / synthetic-data layers) that must not reach up into the app.
#: The session (one source, one or more models: what `run`, `play` and the app's worker drive)
#: is core too: it never reaches up into the worker, the GUI or the CLI.
CORE = ("events", "binning", "snn", "synth", "train", "session")
UPPER = ("dvsapp.gui", "dvsapp.pipeline", "dvsapp.cli")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _modules(exclude_gui: bool = True) -> list[Path]:
    return [p for p in PKG.rglob("*.py") if not (exclude_gui and "gui" in p.relative_to(PKG).parts)]


def test_no_qt_outside_gui() -> None:
    offenders = [
        f"{p.relative_to(PKG.parent)} imports {name}"
        for p in _modules()
        for name in _imports(p)
        if name.split(".")[0] in QT_MODULES
    ]
    assert not offenders, offenders


def test_core_does_not_import_app_layers() -> None:
    offenders = []
    for p in _modules():
        rel = p.relative_to(PKG)
        if rel.parts[0].removesuffix(".py") not in CORE:
            continue
        offenders += [f"{rel} imports {n}" for n in _imports(p) if n.startswith(UPPER)]
    assert not offenders, offenders


def test_rule_catches_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from PySide6.QtCore import QObject\nimport pyqtgraph as pg\n")
    assert sorted(n for n in _imports(bad) if n.split(".")[0] in QT_MODULES) == [
        "PySide6.QtCore",
        "pyqtgraph",
    ]


def test_importing_every_core_module_loads_no_qt() -> None:
    mods = sorted(
        ".".join(p.relative_to(PKG.parent).with_suffix("").parts).removesuffix(".__init__")
        for p in _modules()
        if p.name != "__main__.py"
    )
    code = (
        "import importlib, sys\n"
        f"for m in {mods!r}: importlib.import_module(m)\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {QT_MODULES!r}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
