"""A non-modal error strip above the panels: the message, selectable, and a dismiss button."""

from __future__ import annotations

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from dvsapp.gui.slots import note_slot


class ErrorBanner(QWidget):
    """Hidden until :meth:`show_message`; a dismissed message does not come back."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel("")
        self.label.setObjectName("errorBanner")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.close_button = QPushButton("dismiss")
        self.close_button.clicked.connect(self.dismiss_banner)
        row.addWidget(self.label, 1)
        row.addWidget(self.close_button)
        self._dismissed = ""
        self.setVisible(False)

    def show_message(self, message: str) -> bool:
        """Show ``message`` unless the user dismissed it; True when shown."""
        if message == self._dismissed:
            return False
        self.label.setText(message)
        self.setVisible(True)
        return True

    def text(self) -> str:
        return self.label.text()

    @Slot()
    def dismiss_banner(self) -> None:
        note_slot("ErrorBanner.dismiss_banner")
        self._dismissed = self.label.text()
        self.setVisible(False)
