"""Colours, look-up tables and the dark palette shared by every panel (no widgets here)."""

from __future__ import annotations

import numpy as np

BACKGROUND = "#14171c"  # plot background
PANEL = "#1d2128"  # widget background
FOREGROUND = "#d5d9e0"  # text, axes
MUTED = "#7d8590"
GRID = "#2c323b"

ON_COLOUR = (255, 170, 40)  # ON events: amber
OFF_COLOUR = (40, 150, 255)  # OFF events: blue (ON + OFF at a pixel reads near white)

OK_COLOUR = "#4caf50"
SILENT_COLOUR = "#29b6f6"  # a layer gone quiet: cold
SATURATED_COLOUR = "#ff5252"  # a layer firing everywhere: hot
ERROR_COLOUR = "#ff6e6e"
NOTICE_BACKGROUND = "#1d3149"  # a suggestion strip: calm blue, unlike an error
NOTICE_COLOUR = "#cfe3ff"

#: Distinct line colours (class curves, Vm traces, layers), readable on a dark background.
PALETTE: tuple[str, ...] = (
    "#4e9ef5",
    "#ff9f43",
    "#5ad17a",
    "#ff5c6c",
    "#b48cff",
    "#c8a07a",
    "#ff8fd1",
    "#bdbdbd",
    "#e6e65a",
    "#3fd9e0",
    "#ffd0a0",
    "#8fe3a8",
    "#a0c4ff",
    "#ffadad",
    "#d0b0ff",
    "#f0f0a0",
)

#: Levels of the event view per polarity (counts above are clipped to the top level).
EVENT_LEVELS = 8


def colour(i: int) -> str:
    """The i-th palette colour (wraps around)."""
    return PALETTE[i % len(PALETTE)]


def hex_rgb(value: str) -> tuple[int, int, int]:
    """``"#rrggbb"`` -> (r, g, b)."""
    v = value.lstrip("#")
    return int(v[0:2], 16), int(v[2:4], 16), int(v[4:6], 16)


def event_lut() -> np.ndarray:
    """uint8 [EVENT_LEVELS**2, 3]: colour of code ``on_level * EVENT_LEVELS + off_level``."""
    n = EVENT_LEVELS
    lv = np.arange(n, dtype=np.float64) / (n - 1)
    lv = np.sqrt(lv)  # one event is already clearly visible
    on = lv[:, None, None] * np.array(ON_COLOUR, np.float64)
    off = lv[None, :, None] * np.array(OFF_COLOUR, np.float64)
    bg = np.array(hex_rgb(BACKGROUND), np.float64)
    rgb = np.clip(bg + on + off, 0, 255)
    return rgb.reshape(n * n, 3).astype(np.uint8)


def raster_lut(spike: str) -> np.ndarray:
    """uint8 [2, 3]: background, then the spike colour."""
    return np.array([hex_rgb(BACKGROUND), hex_rgb(spike)], np.uint8)


def heat_lut(n: int = 256) -> np.ndarray:
    """uint8 [n, 3] perceptual dark-to-bright map (an inferno-like ramp; 0 is near black)."""
    stops = np.array(
        [
            (0.00, 8, 8, 16),
            (0.15, 40, 11, 84),
            (0.35, 120, 28, 109),
            (0.55, 188, 55, 84),
            (0.75, 237, 105, 37),
            (0.90, 251, 180, 26),
            (1.00, 252, 255, 164),
        ]
    )
    x = np.linspace(0.0, 1.0, n)
    return np.stack([np.interp(x, stops[:, 0], stops[:, c]) for c in (1, 2, 3)], 1).astype(np.uint8)


def status_colour(status: str) -> str:
    """Colour of a firing-rate status (``ok``, ``silent``, ``saturated``)."""
    return {"silent": SILENT_COLOUR, "saturated": SATURATED_COLOUR}.get(status, OK_COLOUR)


STYLESHEET = f"""
QWidget {{ background: {PANEL}; color: {FOREGROUND}; font-size: 12px; }}
QGroupBox {{ border: 1px solid {GRID}; border-radius: 4px; margin-top: 14px; padding: 4px; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 8px; padding: 0 3px; color: {MUTED}; }}
QLabel#panelTitle {{ font-weight: bold; color: {FOREGROUND}; padding: 2px 4px; }}
QLabel#panelHint {{ color: {MUTED}; padding: 2px 4px; }}
QLabel#errorBanner {{ background: #4a1f24; color: {ERROR_COLOUR}; padding: 4px 8px; }}
QWidget#noticeBanner {{ background: {NOTICE_BACKGROUND}; border-radius: 3px; }}
QLabel#noticeText {{ background: transparent; color: {NOTICE_COLOUR}; padding: 2px 4px; }}
QPushButton#noticeAction {{ background: #3b5b86; border-color: #5a84bd; font-weight: bold; }}
QPushButton, QComboBox, QSpinBox, QDoubleSpinBox {{
    background: #2a3039; border: 1px solid #3a414c; border-radius: 3px; padding: 2px 6px;
}}
QPushButton:disabled, QComboBox:disabled, QSpinBox:disabled, QDoubleSpinBox:disabled {{
    color: #5c636d;
}}
QPushButton:checked {{ background: #3b5b86; }}
QStatusBar {{ background: #111418; color: {FOREGROUND}; }}
QStatusBar QLabel {{ background: transparent; padding: 0 6px; }}
QSplitter::handle {{ background: {GRID}; }}
QListWidget {{ background: #20252d; border: 1px solid #3a414c; }}
QScrollArea {{ border: none; }}
"""
