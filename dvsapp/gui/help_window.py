"""The Help window (F1): every key, what each panel shows, and what its flags mean."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTextBrowser, QVBoxLayout, QWidget

from dvsapp.gui import theme
from dvsapp.gui.shortcuts import SHORTCUTS

#: (panel, what it shows), in the window's order.
PANELS: tuple[tuple[str, str], ...] = (
    (
        "Events",
        "The current bin's events at sensor resolution: ON in amber, OFF in blue (both at a "
        "pixel: near white). 'accumulate window' shows the whole window so far.",
    ),
    (
        "Prediction",
        "Each class's probability over the last steps (curves), the ranking now (bars), and "
        "the true label as a band where the recording has labels. The title says so when the "
        "bin width or window differs from the checkpoint's own.",
    ),
    (
        "Spike rasters",
        "Neuron x step for each spiking layer (the 'layers' button picks them); conv layers "
        "show a sample of neurons or one channel. Click a row to trace its membrane "
        "potential; traced rows are marked in their trace's colour.",
    ),
    (
        "Firing rates",
        "Each layer's firing rate over time (log scale, 1e-4 .. 1) and now (bars).",
    ),
    (
        "Membrane potential",
        "Vm of the traced neurons, named as in the rasters (layer, row) in the same colours; "
        "the dashed line is the layer's threshold times the live threshold scale, labelled "
        "'Vth' at the right edge. 'clear' removes the traces.",
    ),
    (
        "Vm histogram (tab)",
        "How one layer's membrane potentials are spread at this step, in bins relative to "
        "its threshold, with the live threshold marked: a layer piled far below it is "
        "going silent.",
    ),
    (
        "Channels (tab)",
        "A conv layer's channels: each one's rate over time and its rate map over the "
        "window, silent and saturated channels ringed. Click a channel to show it in the "
        "spike raster.",
    ),
    (
        "Synaptic ops (tab)",
        "Operations per synaptic layer at this step (AC for spiking inputs, MAC otherwise) "
        "against a dense evaluation, with the totals and the activation sparsity.",
    ),
    (
        "Compare mode",
        "'compare' in the Model box steps a second model on the same events, binned by its "
        "own checkpoint: its prediction, rasters and rates show in a second column titled "
        "with its name (a note says when the two bin differently). 'none' ends it; a model "
        "that fails to load is said in one line and the main model runs on.",
    ),
    (
        "Export and record",
        "'Export…' writes one row per model step to a Parquet file until pressed again "
        "(the rows written show beside it); 'Record video…' records the window as an MP4, "
        "stamped with the stream time, window and step.",
    ),
)

#: (flag, meaning).
FLAGS: tuple[tuple[str, str], ...] = (
    (
        f"<span style='color:{theme.SILENT_COLOUR}'>SILENT</span>",
        "A layer that (almost) stopped firing: nothing it passes on carries information. "
        "The first thing to look at when a deep SNN goes quiet or its predictions freeze "
        "(e.g. a threshold scaled too high).",
    ),
    (
        f"<span style='color:{theme.SATURATED_COLOUR}'>SATURATED</span>",
        "A layer whose neurons fire at (nearly) every step: it no longer tells inputs apart.",
    ),
    (
        "Early exit marker",
        "A vertical line where a window's decision was taken, in the chosen class's colour "
        "and labelled with it and the exit that fired: 'conf', the confidence exit (the "
        "metric stayed at or above the threshold for the set number of steps), or 'γ', the "
        "BNTT gamma exit (BNTT models only). A dim dotted line: the window ran to its end "
        "without exiting.",
    ),
    (
        "Status bar",
        "events/s reaching the binner, mean step latency, real-time factor (1.00x = keeping "
        "up; orange below), steps the GUI never saw (dropped), and the flagged layers.",
    ),
)


def help_html() -> str:
    """The Help window's text."""
    keys = "".join(
        f"<tr><td><b>{html.escape(' / '.join(k))}</b></td><td>{html.escape(what)}</td></tr>"
        for k, _, what in SHORTCUTS
    )
    panels = "".join(f"<dt><b>{name}</b></dt><dd>{text}</dd>" for name, text in PANELS)
    flags = "".join(f"<dt><b>{name}</b></dt><dd>{text}</dd>" for name, text in FLAGS)
    return (
        "<h3>Keys</h3>"
        f"<table cellspacing='0' cellpadding='3'>{keys}</table>"
        "<p>A spin box or list being edited keeps the keys it uses.</p>"
        f"<h3>Panels</h3><dl>{panels}</dl>"
        f"<h3>Flags and markers</h3><dl>{flags}</dl>"
        "<p>Open a recording with Ctrl+O or by dropping it on the window; drop a "
        ".safetensors or .nir file to load it as the model.</p>"
    )


class HelpWindow(QDialog):
    """A non-modal window over the main one; F1 shows it again."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("dvsapp help")
        self.setModal(False)
        self.resize(560, 600)
        lay = QVBoxLayout(self)
        self.browser = QTextBrowser()
        self.browser.setOpenExternalLinks(False)
        self.browser.setHtml(help_html())
        lay.addWidget(self.browser)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.close)
        lay.addWidget(buttons)
        self.setWindowFlag(Qt.WindowType.WindowContextHelpButtonHint, False)
