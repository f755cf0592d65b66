"""Small widgets that keep the window still: a label that elides instead of widening its
column, and a slider whose track jumps where it is clicked."""

from __future__ import annotations

import html
import re

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QMouseEvent, QResizeEvent
from PySide6.QtWidgets import QLabel, QSizePolicy, QSlider, QStyle, QStyleOptionSlider, QWidget

#: A tag or an entity of the little HTML the labels use (spans for colour, ``&amp;``...).
_TOKEN = re.compile(r"(<[^>]*>|&#?\w+;)")
ELLIPSIS = "…"


def _is_rich(text: str) -> bool:
    return "<" in text and bool(_TOKEN.search(text))


def plain_text(text: str) -> str:
    """``text`` as shown: tags dropped, entities decoded."""
    if not _is_rich(text):
        return text
    return html.unescape(re.sub(r"<[^>]*>", "", text))


def truncate_rich(text: str, chars: int) -> str:
    """The first ``chars`` visible characters of the HTML ``text`` plus an ellipsis, with
    every tag opened before the cut closed again (colours stay where they were)."""
    out: list[str] = []
    open_tags: list[str] = []
    left = chars
    for part in _TOKEN.split(text):
        if not part:
            continue
        if part.startswith("<"):
            name = re.match(r"</?\s*(\w+)", part)
            if name is None:
                continue
            tag = name.group(1).lower()
            if part.startswith("</"):
                if tag in open_tags:
                    open_tags.remove(tag)
            elif not part.endswith("/>") and tag not in ("br", "img", "hr"):
                open_tags.append(tag)
            out.append(part)
            continue
        if left <= 0:
            break
        if part.startswith("&"):
            out.append(part)
            left -= 1
            continue
        out.append(part[:left])
        left -= len(part[:left])
    out.append(ELLIPSIS)
    out.extend(f"</{t}>" for t in reversed(open_tags))
    return "".join(out)


class ElidedLabel(QLabel):
    """A QLabel that never asks for more width than a few characters: text that does not
    fit is cut with an ellipsis (each line of a plain multi-line text on its own; an HTML
    text keeps its colours up to the cut) and the whole text goes in the tooltip.

    :meth:`text` returns the whole text; :meth:`shown_text` what is drawn now.
    ``max_hint_px`` caps the width the label asks for (its size hint); ``min_chars``: the
    first characters that always show (a panel's name before a long note).
    """

    def __init__(
        self,
        text: str = "",
        parent: QWidget | None = None,
        mode: Qt.TextElideMode = Qt.TextElideMode.ElideRight,
        max_hint_px: int | None = None,
        min_chars: int = 0,
    ) -> None:
        super().__init__(parent)
        self._min_chars = min_chars
        self._full = ""
        self._tip = ""
        self._mode = mode
        self._max_hint = max_hint_px
        self.elided = False
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        self.setText(text)

    # -- text ------------------------------------------------------------------------------
    def setText(self, text: str) -> None:
        self._full = str(text)
        self._refit()
        self.updateGeometry()

    def text(self) -> str:
        return self._full

    def shown_text(self) -> str:
        """The text drawn now (elided or whole)."""
        return super().text()

    def setToolTip(self, tip: str) -> None:
        self._tip = str(tip)
        self._update_tip()

    def _update_tip(self) -> None:
        tip = self._tip
        if self.elided:
            full = plain_text(self._full)
            if full not in tip:
                tip = f"{tip}\n{full}" if tip else full
        super().setToolTip(tip)

    # -- sizes -----------------------------------------------------------------------------
    def _margins(self) -> int:
        m = self.contentsMargins()
        return m.left() + m.right() + 2 * self.margin() + max(self.indent(), 0)

    def minimumSizeHint(self) -> QSize:
        h = super().minimumSizeHint().height()
        plain = plain_text(self._full).split("\n")[0]
        keep = plain[: self._min_chars] if self._min_chars else "M"
        if len(plain) > len(keep):
            keep += ELLIPSIS
        return QSize(self.fontMetrics().horizontalAdvance(keep) + self._margins() + 2, h)

    def sizeHint(self) -> QSize:
        fm = self.fontMetrics()
        lines = plain_text(self._full).split("\n") or [""]
        w = max(fm.horizontalAdvance(line) for line in lines) + self._margins() + 2
        if self._max_hint is not None:
            w = min(w, self._max_hint)
        return QSize(w, super().sizeHint().height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._refit()

    # -- eliding ---------------------------------------------------------------------------
    def _refit(self) -> None:
        fm = self.fontMetrics()
        avail = max(self.contentsRect().width() - 2 * self.margin() - max(self.indent(), 0), 1)
        text = self._full
        if _is_rich(text):
            plain = plain_text(text)
            if fm.horizontalAdvance(plain) <= avail:
                shown = text
            else:
                lo, hi = 0, len(plain)  # the most characters that fit with the ellipsis
                while lo < hi:
                    mid = (lo + hi + 1) // 2
                    if fm.horizontalAdvance(plain[:mid].rstrip() + ELLIPSIS) <= avail:
                        lo = mid
                    else:
                        hi = mid - 1
                shown = truncate_rich(text, lo)
        else:
            shown = "\n".join(fm.elidedText(line, self._mode, avail) for line in text.split("\n"))
        self.elided = shown != text
        if super().text() != shown:
            super().setText(shown)
        self._update_tip()


class JumpSlider(QSlider):
    """A slider whose handle jumps to a click on its track (and can be dragged on from
    there), instead of moving a page towards it. Emits sliderPressed / sliderReleased as a
    drag of the handle does."""

    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self.isEnabled():
            opt = QStyleOptionSlider()
            self.initStyleOption(opt)
            style = self.style()
            cc = QStyle.ComplexControl.CC_Slider
            handle = style.subControlRect(cc, opt, QStyle.SubControl.SC_SliderHandle, self)
            pos = event.position().toPoint()
            if not handle.contains(pos):
                groove = style.subControlRect(cc, opt, QStyle.SubControl.SC_SliderGroove, self)
                if self.orientation() == Qt.Orientation.Horizontal:
                    span = groove.width() - handle.width()
                    at = pos.x() - groove.x() - handle.width() // 2
                else:
                    span = groove.height() - handle.height()
                    at = pos.y() - groove.y() - handle.height() // 2
                value = QStyle.sliderValueFromPosition(
                    self.minimum(), self.maximum(), at, max(span, 1), opt.upsideDown
                )
                self.setValue(value)  # the handle is under the pointer now: grab it
        super().mousePressEvent(event)
