"""Keyboard shortcuts of the main window (a video player's keys, where they apply).

Window-wide, so they work whichever panel has focus; a spin box or combo box being edited
keeps the keys it uses (Qt gives the focused editor first refusal).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, Slot
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QAbstractButton

from dvsapp.gui.slots import note_slot

if TYPE_CHECKING:
    from dvsapp.gui.help_window import HelpWindow
    from dvsapp.gui.main_window import MainWindow

__all__ = ["SHORTCUTS", "Shortcuts"]

#: (keys, slot name, what it does), in the order the help line lists them.
SHORTCUTS: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("Space",), "toggle_play", "play/pause"),
    (("Right", "."), "step", "one step"),
    (("Home",), "seek_start", "to the start"),
    (("]",), "faster", "faster"),
    (("[",), "slower", "slower"),
    (("Ctrl+O",), "open", "open"),
    (("F1",), "help", "help: keys, panels, flags"),
    (("Ctrl+Q",), "quit", "quit"),
)


def help_line() -> str:
    """One short line listing every shortcut, for the status bar's message area."""
    return " · ".join(f"{'/'.join(keys)} {what}" for keys, _, what in SHORTCUTS)


def _click_if_enabled(button: QAbstractButton) -> None:
    """What a mouse click would do: nothing on a disabled button (e.g. Step while playing)."""
    if button.isEnabled():
        button.click()


class Shortcuts(QObject):
    """Creates the window's shortcuts and carries out each one."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.shortcuts: list[QShortcut] = []
        self.help_window: HelpWindow | None = None
        for keys, slot, _ in SHORTCUTS:
            for key in keys:
                sc = QShortcut(QKeySequence(key), window)
                sc.activated.connect(getattr(self, slot))
                self.shortcuts.append(sc)

    @Slot()
    def toggle_play(self) -> None:
        note_slot("Shortcuts.toggle_play")
        _click_if_enabled(self.window.controls.play_button)

    @Slot()
    def step(self) -> None:
        note_slot("Shortcuts.step")
        _click_if_enabled(self.window.controls.step_button)

    @Slot()
    def seek_start(self) -> None:
        note_slot("Shortcuts.seek_start")
        if self.window.controls.seek.isEnabled():
            self.window.request_seek(0.0)

    @Slot()
    def faster(self) -> None:
        note_slot("Shortcuts.faster")
        self._speed_by(+1)

    @Slot()
    def slower(self) -> None:
        note_slot("Shortcuts.slower")
        self._speed_by(-1)

    def _speed_by(self, delta: int) -> None:
        combo = self.window.controls.speed
        index = min(max(combo.currentIndex() + delta, 0), combo.count() - 1)
        if combo.isEnabled() and index != combo.currentIndex():
            combo.setCurrentIndex(index)
            self.window.controls.speed_chosen(index)
            self.window.status.showMessage(f"speed {combo.currentText()}", 2000)

    @Slot()
    def open(self) -> None:
        note_slot("Shortcuts.open")
        self.window.choose_recording()

    @Slot()
    def help(self) -> None:
        note_slot("Shortcuts.help")
        self.window.status.showMessage(help_line(), 10_000)
        if self.help_window is None:
            from dvsapp.gui.help_window import HelpWindow  # it lists SHORTCUTS (above)

            self.help_window = HelpWindow(self.window)
        self.help_window.show()
        self.help_window.raise_()

    @Slot()
    def quit(self) -> None:
        note_slot("Shortcuts.quit")
        self.window.close()
