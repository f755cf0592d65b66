"""The model chooser: each entry's name plus what the network was trained on, at a width
that does not follow the longest entry. The open list shows every entry whole; the closed
box shows ``name · training`` when it fits, else the name middle-elided; each entry's
tooltip has the training data in the checkpoint's words and the input."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt, Slot
from PySide6.QtGui import QPaintEvent
from PySide6.QtWidgets import (
    QComboBox,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionComboBox,
    QStyleOptionViewItem,
    QStylePainter,
    QWidget,
)

from dvsapp.gui.slots import note_slot
from dvsapp.pipeline.advice import ModelSummary

#: Item role holding an entry's training data ("synthetic gestures", ...; "" for none).
TRAINING_ROLE = Qt.ItemDataRole.UserRole + 1
SEPARATOR = " · "
#: The closed box is sized for this many characters, whatever the entries hold.
MIN_CHARS = 18
#: The open list may grow up to this wide to show every entry whole.
MAX_POPUP_PX = 560


def entry_text(name: str, training: str) -> str:
    """The full text of an entry: ``name · training`` (the name alone without training)."""
    return f"{name}{SEPARATOR}{training}" if training else name


class _TrainingDelegate(QStyledItemDelegate):
    """Draws each list entry as ``name · training``."""

    def initStyleOption(
        self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
    ) -> None:
        super().initStyleOption(option, index)
        option.text = entry_text(option.text, str(index.data(TRAINING_ROLE) or ""))


class ModelCombo(QComboBox):
    """A QComboBox whose item text stays the model's name (``findText`` works on names) and
    whose entries show the training data after it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(MIN_CHARS)
        self.setItemDelegate(_TrainingDelegate(self))
        self.currentIndexChanged.connect(self.follow_current_tooltip)

    def add_model(self, name: str, data: object, summary: ModelSummary | None = None) -> None:
        """Append an entry (``summary``: its training data and tooltip)."""
        self.insert_model(self.count(), name, data, summary)

    def insert_model(
        self, index: int, name: str, data: object, summary: ModelSummary | None = None
    ) -> None:
        self.insertItem(index, name, data)
        self.describe(
            index, summary.training if summary else "", summary.tooltip if summary else ""
        )

    def describe(self, index: int, training: str, tooltip: str) -> None:
        """Set entry ``index``'s training data and tooltip."""
        self.setItemData(index, training, TRAINING_ROLE)
        self.setItemData(index, tooltip or self.itemText(index), Qt.ItemDataRole.ToolTipRole)
        self._fit_popup()
        self.follow_current_tooltip()

    def full_text(self, index: int) -> str:
        """Entry ``index`` as the list shows it: ``name · training``."""
        return entry_text(self.itemText(index), str(self.itemData(index, TRAINING_ROLE) or ""))

    def shown_text(self) -> str:
        """What the closed box shows now (elided to its width)."""
        opt = QStyleOptionComboBox()
        self.initStyleOption(opt)
        return self._elided(self.currentIndex(), self._text_width(opt))

    def _text_width(self, opt: QStyleOptionComboBox) -> int:
        rect = self.style().subControlRect(
            QStyle.ComplexControl.CC_ComboBox, opt, QStyle.SubControl.SC_ComboBoxEditField, self
        )
        return max(rect.width() - 4, 10)

    def _elided(self, index: int, width: int) -> str:
        """``name · training`` when it fits; else the name alone, middle-elided (the model
        label below the box states the training data in full)."""
        if index < 0:
            return ""
        fm = self.fontMetrics()
        full = self.full_text(index)
        if fm.horizontalAdvance(full) <= width:
            return full
        return fm.elidedText(self.itemText(index), Qt.TextElideMode.ElideMiddle, width)

    def _fit_popup(self) -> None:
        fm = self.fontMetrics()
        widest = max(
            (fm.horizontalAdvance(self.full_text(i)) for i in range(self.count())), default=0
        )
        self.view().setMinimumWidth(min(widest + 36, MAX_POPUP_PX))

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QStylePainter(self)
        opt = QStyleOptionComboBox()
        self.initStyleOption(opt)
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, opt)
        opt.currentText = self._elided(self.currentIndex(), self._text_width(opt))
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, opt)

    @Slot(int)
    def follow_current_tooltip(self, index: int = -1) -> None:
        """The box's own tooltip is the chosen entry's (the full text)."""
        note_slot("ModelCombo.follow_current_tooltip")
        i = self.currentIndex()
        self.setToolTip(str(self.itemData(i, Qt.ItemDataRole.ToolTipRole) or "") if i >= 0 else "")
