"""The current bin's events at sensor resolution, ON and OFF in two colours."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QCheckBox, QGraphicsRectItem, QWidget

from dvsapp.gui import theme
from dvsapp.gui.panels.base import CodesImage, Panel, canvas, pen, rgba_lut, show_codes
from dvsapp.gui.slots import note_slot
from dvsapp.pipeline import ModelInfo, PipelineSettings, StepFrame


def event_image(on: np.ndarray, off: np.ndarray) -> np.ndarray:
    """uint8 codes ``on_level * EVENT_LEVELS + off_level`` for :func:`theme.event_lut`.

    Counts are scaled so the busiest pixels (98th percentile of the active ones) reach the
    top level; a single event is level 1.
    """
    n = theme.EVENT_LEVELS - 1
    both = np.maximum(on, off)
    active = both[both > 0]
    cap = 1.0
    if active.size > 64:
        k = int(active.size * 0.98)
        cap = max(1.0, float(np.partition(active, k)[k]) / n)
    on_l = np.minimum(np.ceil(on / cap), n).astype(np.uint8)
    off_l = np.minimum(np.ceil(off / cap), n).astype(np.uint8)
    return on_l * np.uint8(theme.EVENT_LEVELS) + off_l


class EventView(Panel):
    """Only the latest frame draws: one bin, or (with accumulation on, which the pipeline
    does: ``PipelineSettings.accumulate_events``) the open window so far."""

    title = "Events"
    #: the user switched accumulation over the window on or off
    accumulate_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.accumulate = QCheckBox("accumulate")  # short: the header keeps room for counts
        self.accumulate.setToolTip("Show the events of the whole window so far, not one bin")
        self.accumulate.toggled.connect(self.set_accumulating)
        self.header.addWidget(self.accumulate)
        self.canvas = canvas()
        self.body.addWidget(self.canvas)
        self.view = self.canvas.addViewBox(lockAspect=True, enableMouse=False)
        self.view.invertY(True)  # origin top-left, as the events
        self.image = CodesImage()
        self._lut = rgba_lut(theme.event_lut())
        self.view.addItem(self.image)
        self.border = QGraphicsRectItem(0, 0, 1, 1)
        self.border.setPen(pen(theme.MUTED))
        self.view.addItem(self.border)
        self._frame: StepFrame | None = None
        self._shape: tuple[int, ...] | None = None
        self.drawn = 0
        self.sensor_guess = ""  # why the recording's sensor size is a guess ("": it is not)

    @Slot(bool)
    def set_accumulating(self, on: bool) -> None:
        """Accumulate the window's bins (True) or show one bin (False)."""
        note_slot("EventView.set_accumulating")
        self.accumulate_changed.emit(bool(on))

    def set_sensor_guess(self, why: str) -> None:
        """Mark the sensor size as a guess (``why``), or as the file's word ("")."""
        if why == self.sensor_guess:
            return
        self.sensor_guess = why
        self.title_label.setText(f"{self.title} (sensor size guessed)" if why else self.title)
        self.title_label.setToolTip(
            f"The recording's file does not give its sensor size; guessed from: {why}"
            if why
            else ""
        )

    def _size_text(self, w: int, h: int) -> str:
        return f"{w} x {h}" + (" (guess)" if self.sensor_guess else "")

    def clear_history(self) -> None:
        """The stream restarted: show nothing until its first frame."""
        self.clear_now()

    def clear_now(self) -> None:
        """Blank the view at once (e.g. while a new recording opens)."""
        self._frame = None
        if self.image.image is not None:
            self.image.setImage(np.zeros((*self.image.image.shape[:2], 4), np.uint8))

    def set_model(self, info: ModelInfo, settings: PipelineSettings) -> None:
        super().set_model(info, settings)
        w, h = info.sensor_size
        self.hint_label.setText(f"{self._size_text(w, h)} sensor")
        self.accumulate.blockSignals(True)
        self.accumulate.setChecked(settings.accumulate_events)
        self.accumulate.blockSignals(False)
        self._frame = None

    def push(self, seq: int, frame: StepFrame) -> None:
        self._frame = frame

    def render(self, seq: int) -> None:
        f = self._frame
        if f is None:
            return
        self._frame = None  # redraw only when a new frame came
        on, off = f.events_on, f.events_off
        if self.accumulate.isChecked():
            what = f"window {f.window}, {f.step} bins"
        else:
            what = f"bin {(f.t_end_us - f.t_start_us) / 1000:g} ms"
        n_on, n_off = int(on.sum()), int(off.sum())
        show_codes(self.image, event_image(on, off), self._lut)
        if self._shape != on.shape:
            self._shape = on.shape
            self.view.setRange(xRange=(0, on.shape[1]), yRange=(0, on.shape[0]), padding=0.02)
            self.border.setRect(0, 0, on.shape[1], on.shape[0])
        h, w = on.shape
        self.set_hint(  # the live counts first: a narrow header elides the tail
            f"<span style='color:{_hex(theme.ON_COLOUR)}'>ON {n_on:,}</span>  "
            f"<span style='color:{_hex(theme.OFF_COLOUR)}'>OFF {n_off:,}</span>"
            f"  ·  {what}  ·  {self._size_text(w, h)}"
        )
        self.drawn += 1


def _hex(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)
