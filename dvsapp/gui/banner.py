"""Strips above the panels: a non-modal error (selectable, dismissable) and a suggestion
with one action (e.g. "use the model trained on real DVS128 Gesture")."""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
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

    def clear(self) -> None:
        """Hide: what went wrong has been put right (a later open or load worked)."""
        self.label.setText("")
        self._dismissed = ""
        self.setVisible(False)

    @Slot()
    def dismiss_banner(self) -> None:
        note_slot("ErrorBanner.dismiss_banner")
        self._dismissed = self.label.text()
        self.setVisible(False)


class NoticeBanner(QWidget):
    """A suggestion strip above the panels: a message, one action button and a dismiss
    button. Hidden until :meth:`show_notice`; the window decides when it applies."""

    action_requested = Signal(object)  # the notice's payload (e.g. a checkpoint Path)
    dismissed = Signal(object)  # the notice's key

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("noticeBanner")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 3, 4, 3)
        self.label = QLabel("")
        self.label.setObjectName("noticeText")
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.action_button = QPushButton("")
        self.action_button.setObjectName("noticeAction")
        self.action_button.clicked.connect(self.notice_action_clicked)
        self.close_button = QPushButton("dismiss")
        self.close_button.clicked.connect(self.dismiss_notice)
        row.addWidget(self.label, 1)
        row.addWidget(self.action_button)
        row.addWidget(self.close_button)
        self.key: object = None
        self.payload: object = None
        self.setVisible(False)

    def show_notice(
        self, key: object, message: str, action: str, payload: object, tooltip: str = ""
    ) -> None:
        """Show ``message`` with an ``action`` button that emits ``payload``."""
        self.key, self.payload = key, payload
        self.label.setText(message)
        self.label.setToolTip(tooltip)
        self.action_button.setText(action)
        self.action_button.setToolTip(tooltip)
        self.action_button.setVisible(bool(action))  # no action: a note only
        self.setVisible(True)

    def clear(self) -> None:
        """Hide (the notice no longer applies)."""
        self.key = self.payload = None
        self.setVisible(False)

    def text(self) -> str:
        return self.label.text()

    @Slot()
    def notice_action_clicked(self) -> None:
        note_slot("NoticeBanner.notice_action_clicked")
        payload = self.payload
        self.clear()
        self.action_requested.emit(payload)

    @Slot()
    def dismiss_notice(self) -> None:
        note_slot("NoticeBanner.dismiss_notice")
        key = self.key
        self.clear()
        self.dismissed.emit(key)
