"""One conv spiking layer's channels: each channel's firing rate over the steps (a channel x
step heatmap), each channel's H x W rate map over the window so far (a grid of tiles), and
the silent and saturated channels counted and ringed in colour. Dead channels are where a
deep SNN's collapse starts; clicking one asks the window to raster it."""

from __future__ import annotations

import math
import time

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Signal, Slot
from PySide6.QtWidgets import QWidget

from dvsapp.gui import theme
from dvsapp.gui.panels.base import (
    HISTORY,
    STEP_AXIS,
    X_RANGE,
    CodesImage,
    Panel,
    canvas,
    rgba_lut,
    set_item_text,
    show_codes,
    style_plot,
)
from dvsapp.gui.panels.rates import rate_level
from dvsapp.gui.panels.synops import OFF_TEXT
from dvsapp.gui.ring import ColumnRing
from dvsapp.gui.slots import note_slot
from dvsapp.pipeline import ModelInfo, PipelineSettings, StepFrame
from dvsapp.snn.analysis.records import SATURATED_RATE, ChannelStats

#: Codes of the panel's images: 0..HEAT_LEVELS-1 a rate (log scale, 0 = no spike), then a
#: tile's ring (ok, silent, saturated, the channel picked) and the empty grid slots.
HEAT_LEVELS = 251
RING_OK, RING_SILENT, RING_SATURATED, RING_PICKED, EMPTY = 251, 252, 253, 254, 255
PICKED_COLOUR = "#ffffff"
#: Width of the status column right of the heatmap, in steps.
STRIP = 14
#: Shortest time between two redraws of the tile grid and the text line.
GRID_PERIOD_S = 0.1


def panel_lut() -> np.ndarray:
    """uint8 [256, 3]: the heat ramp, then the ring colours and the background."""
    extra = [theme.GRID, theme.SILENT_COLOUR, theme.SATURATED_COLOUR, PICKED_COLOUR]
    rings = np.array([theme.hex_rgb(c) for c in [*extra, theme.BACKGROUND]], np.uint8)
    return np.concatenate([theme.heat_lut(HEAT_LEVELS), rings])


def rate_codes(rates: np.ndarray) -> np.ndarray:
    """Rates in [0, 1] -> codes 0..HEAT_LEVELS-1 on the rates panel's log scale."""
    lv = rate_level(rates).astype(np.uint16)
    return ((lv * (HEAT_LEVELS - 1) + 127) // 255).astype(np.uint8)


def channel_status(window_rates: np.ndarray) -> np.ndarray:
    """Each channel's ring code from its rate over the window so far."""
    r = np.nan_to_num(np.asarray(window_rates, np.float64), nan=0.0)
    out = np.full(r.shape, RING_OK, np.uint8)
    out[r <= 0] = RING_SILENT
    out[r >= SATURATED_RATE] = RING_SATURATED
    return out


def grid_columns(channels: int) -> int:
    """Tiles per grid row: as square a grid as the channel count allows."""
    return max(math.ceil(math.sqrt(max(channels, 1))), 1)


def tile_grid(codes: np.ndarray, rings: np.ndarray, cols: int) -> np.ndarray:
    """uint8 [C, H, W] tile codes and [C] ring codes -> one image of ``cols`` tiles a row,
    each tile framed by a one-pixel ring; slots past the last channel are empty."""
    c, h, w = codes.shape
    rows = -(-c // cols)
    out = np.full((rows * cols, h + 2, w + 2), EMPTY, np.uint8)
    out[:c] = rings[:, None, None]
    out[:c, 1:-1, 1:-1] = codes
    return (
        out.reshape(rows, cols, h + 2, w + 2)
        .transpose(0, 2, 1, 3)
        .reshape(rows * (h + 2), cols * (w + 2))
    )


def _tick_step(n: int, most: int = 8) -> int:
    step = 1
    while n / step > most:
        step *= 2
    return step


def conv_layers(info: ModelInfo) -> list[str]:
    """The spiking layers with a [C, H, W] map, in forward order."""
    return [n for n in info.layer_names if len(info.layer_shapes.get(n, ())) == 3]


class ChannelPanel(Panel):
    """Channel rates of the conv layer chosen in the header's combo box."""

    title = "Channels"
    #: (layer, channel): a grid tile or a heatmap row was clicked
    channel_clicked = Signal(str, int)
    #: the user chose another layer: the window should send its spike maps
    #: (PipelineSettings.channel_layer); after set_model, read :meth:`wanted_layer`
    layer_changed = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.hint_label.setText("click a channel: raster it")
        self.hint_label.setToolTip(
            "Left: each channel's firing rate over the steps (log scale), with a column "
            "marking the silent (blue) and saturated (red) channels of the window so far. "
            "Right: each channel's H x W rate map over the window so far, ringed the same "
            "way. Click a row or a tile to raster that channel."
        )
        self.layer_box = self.add_layer_box("the conv spiking layer whose channels are shown")
        self.layer_box.activated.connect(self.layer_chosen)
        self.stats_label = self.add_stats_line()
        self.canvas = canvas()
        self.canvas.ci.layout.setSpacing(4)
        self.canvas.ci.setContentsMargins(2, 2, 2, 2)
        self.body.addWidget(self.canvas, 1)
        self.canvas.scene().sigMouseClicked.connect(self.pick_channel)
        self._lut = rgba_lut(panel_lut())
        # -- channel x step heatmap, with a status column on its right
        self.heat = self.canvas.addPlot(row=0, col=0)
        style_plot(self.heat, bottom=STEP_AXIS)
        self.heat.invertY(True)
        self.heat.setXRange(X_RANGE[0], X_RANGE[1] + STRIP, padding=0)
        self.heat.getAxis("left").setWidth(28)
        self.heat.getAxis("bottom").setTicks([[(-200.0, "-200"), (-100.0, "-100"), (0.0, "0")]])
        self.image = CodesImage()
        self.heat.addItem(self.image)
        self.strip = CodesImage()
        self.heat.addItem(self.strip)
        self.pick_mark = pg.ScatterPlotItem(pxMode=True, size=9, pen=None, symbol="t2")
        self.pick_mark.setZValue(20)
        self.pick_mark.setVisible(False)
        self.heat.addItem(self.pick_mark)
        self.message = pg.TextItem("", color=theme.MUTED, anchor=(0.5, 0.5))
        self.message.setZValue(30)
        self.heat.addItem(self.message, ignoreBounds=True)
        # -- the tiles
        self.grid_vb = self.canvas.addViewBox(row=0, col=1, lockAspect=True, invertY=True)
        self.grid_vb.setMouseEnabled(x=False, y=False)
        self.grid_vb.setMenuEnabled(False)
        self.grid_image = CodesImage()
        self.grid_vb.addItem(self.grid_image)
        self.grid_note = pg.TextItem("", color=theme.MUTED, anchor=(0.5, 0))
        self.grid_note.setZValue(30)
        self.grid_vb.addItem(self.grid_note, ignoreBounds=True)
        self.canvas.ci.layout.setColumnStretchFactor(0, 3)
        self.canvas.ci.layout.setColumnStretchFactor(1, 2)
        self.grid_period_s = GRID_PERIOD_S
        self.lane = 0
        self.layers: list[str] = []
        self.layer: str | None = None
        self.shape: tuple[int, int, int] = (0, 0, 0)
        self.cols = 1
        #: the latest step's stats of the chosen layer (None: none yet, or probes off)
        self.stats: ChannelStats | None = None
        self.probes_off = False
        self.picked: int | None = None
        #: the layer whose maps frame.spike_map carries, when the window says so (None: any
        #: map of the chosen layer's shape is taken)
        self.map_layer: str | None = None
        self._ring = ColumnRing(1, HISTORY, np.uint8)
        self._acc: np.ndarray | None = None  # int32 [C, H, W]: spikes in the window so far
        self._acc_steps = 0
        self._acc_window = -1
        self._last_seq = -1
        self._dirty = False
        self._grid_owed = False
        self._grid_at = 0.0

    # -- layout ----------------------------------------------------------------------------
    def set_model(self, info: ModelInfo, settings: PipelineSettings) -> None:
        super().set_model(info, settings)
        self.lane = info.lane
        self.probes_off = not settings.analysis
        self.map_layer = None
        self.layers = conv_layers(info)
        self.layer_box.blockSignals(True)
        self.layer_box.clear()
        self.layer_box.addItems(self.layers)
        self.layer_box.blockSignals(False)
        self.layer_box.setEnabled(bool(self.layers))
        want = settings.channel_layer if settings.channel_layer in self.layers else None
        self.select_layer(want or (self.layers[-1] if self.layers else None), emit=False)

    def wanted_layer(self) -> str | None:
        """The layer whose whole spike maps the panel wants (PipelineSettings.channel_layer);
        None when the model has no conv layer."""
        return self.layer

    def set_spike_map_layer(self, layer: str | None) -> None:
        """Optional: the layer whose maps the frames carry now (the window calls it once
        the pipeline has its channel_layer); maps of any other layer are then ignored."""
        self.map_layer = layer

    def select_layer(self, layer: str | None, emit: bool = True) -> None:
        """Show ``layer`` (a conv spiking layer of the model); its history starts empty.
        ``emit``: send :attr:`layer_changed` when the layer differs from before."""
        if layer not in self.layers:
            layer = None
        changed = layer != self.layer
        self.layer = layer
        shape = () if self.info is None or layer is None else self.info.layer_shapes[layer]
        self.shape = tuple(int(s) for s in shape) if len(shape) == 3 else (0, 0, 0)
        c = self.shape[0]
        self.cols = grid_columns(c)
        if layer is not None and self.layer_box.currentText() != layer:
            self.layer_box.setCurrentText(layer)
        self._ring = ColumnRing(max(c, 1), HISTORY, np.uint8)
        self.picked = None
        self._layout_axes()
        self.clear_history()
        if emit and changed and layer is not None:
            self.layer_changed.emit(layer)

    @Slot(int)
    def layer_chosen(self, _index: int = 0) -> None:
        """The combo box picked a layer."""
        note_slot("ChannelPanel.layer_chosen")
        self.select_layer(self.layer_box.currentText() or None)

    def _layout_axes(self) -> None:
        c, h, w = self.shape
        n = max(c, 1)
        self.heat.setYRange(0, n, padding=0)
        step = _tick_step(n)
        self.heat.getAxis("left").setTicks([[(i + 0.5, str(i)) for i in range(0, c, step)]])
        self.message.setPos((X_RANGE[0] + X_RANGE[1] + STRIP) / 2, n / 2)
        rows = -(-c // self.cols) if c else 1
        gw, gh = self.cols * (w + 2), rows * (h + 2)
        self.grid_vb.setRange(QRectF(0, 0, max(gw, 1), max(gh, 1)), padding=0.02)
        self.grid_note.setPos(max(gw, 1) / 2, max(gh, 1) * 0.02)
        self._set_pick_mark()

    def tile_rect(self, channel: int) -> QRectF:
        """Where ``channel``'s tile (ring included) lies in the grid's view coordinates."""
        _, h, w = self.shape
        r, col = divmod(channel, self.cols)
        return QRectF(col * (w + 2), r * (h + 2), w + 2, h + 2)

    def set_picked_channel(self, channel: int | None) -> None:
        """Ring ``channel`` in white and point at its heatmap row (the one rastered)."""
        self.picked = channel if channel is not None and 0 <= channel < self.shape[0] else None
        self._set_pick_mark()
        self._grid_owed = True
        self._grid_at = 0.0

    def _set_pick_mark(self) -> None:
        self.pick_mark.setVisible(self.picked is not None)  # hidden: not painted
        if self.picked is None:
            self.pick_mark.setData(x=[], y=[])
        else:
            self.pick_mark.setData(
                x=[X_RANGE[0] + 4], y=[self.picked + 0.5], brush=pg.mkBrush(PICKED_COLOUR)
            )

    # -- data ------------------------------------------------------------------------------
    def clear_history(self) -> None:
        self._ring.clear()
        self.stats = None
        self._acc = None
        self._acc_steps = 0
        self._acc_window = -1
        self._last_seq = -1
        self._dirty = True
        self._grid_owed = True
        self._grid_at = 0.0

    def _take_map(self, frame: StepFrame) -> None:
        m = frame.spike_map
        if m is None or self.layer is None:
            return
        if self.map_layer is not None and self.map_layer != self.layer:
            return
        if m.shape != self.shape:
            if m.ndim == 4 and m.shape[1:] == self.shape:  # a batch: its mean
                m = m.sum(axis=0)
            else:
                return
        if frame.step == 1 or frame.window != self._acc_window or self._acc is None:
            self._acc = np.zeros(self.shape, np.int32)
            self._acc_steps = 0
            self._acc_window = frame.window
        np.add(self._acc, m, out=self._acc, casting="unsafe")
        self._acc_steps += 1 if frame.spike_map.ndim == 3 else frame.spike_map.shape[0]

    def push(self, seq: int, frame: StepFrame) -> None:
        if frame.lane != self.lane or self.layer is None:
            return
        a = frame.analysis
        self.probes_off = a is None
        self._dirty = True
        self._grid_owed = True
        self._take_map(frame)
        stats = None if a is None else a.channels.get(self.layer)
        if stats is None or stats.rates.size != self.shape[0]:
            return
        gap = min(seq - self._last_seq - 1, HISTORY) if self._last_seq >= 0 else 0
        for _ in range(max(gap, 0)):
            self._ring.push(0)
        self._ring.push(rate_codes(stats.rates))
        self.stats = stats
        self._last_seq = seq

    def rings(self, picked: bool = True) -> np.ndarray:
        """Each channel's ring code now: silent, saturated or ok (the picked one white
        when ``picked``)."""
        c = self.shape[0]
        if self.stats is not None and not self.probes_off:
            out = channel_status(self.stats.window_rates)
        elif self._acc is not None and self._acc_steps:
            per = self._acc.reshape(c, -1).mean(axis=1) / self._acc_steps
            out = channel_status(per)
        else:
            out = np.full(c, RING_OK, np.uint8)
        if picked and self.picked is not None:
            out[self.picked] = RING_PICKED
        return out

    def stats_text(self) -> str:
        """The text line: silent and saturated channels in the window so far."""
        if self.layer is None:
            return "no conv layers" if self.info is not None else ""
        if self.probes_off:
            return OFF_TEXT
        s = self.stats
        if s is None:
            return f"{self.layer}: no channel rates yet"
        c = self.shape[0]
        mean = float(np.mean(s.window_rates)) if c else 0.0
        return (
            f"silent channels: {s.silent}/{c}   saturated: {s.saturated}"
            f"   mean rate: {100 * mean:.2f}%"
        )

    def render(self, seq: int) -> None:
        if self._dirty:
            self._dirty = False
            c = self.shape[0]
            if self.layer is None:
                self.image.clear()
                set_item_text(self.message, "no conv layers")
            else:
                rect = QRectF(X_RANGE[0], 0, HISTORY, max(c, 1))
                show_codes(self.image, self._ring.view(), self._lut, rect)
                set_item_text(self.message, OFF_TEXT if self.probes_off else "")
        now = time.monotonic()
        if not self._grid_owed or now - self._grid_at < self.grid_period_s:
            return
        self._grid_owed = False
        self._grid_at = now
        self._draw_grid()
        text = self.stats_text()
        if text != self.stats_label.text():
            self.stats_label.setText(text)

    def _draw_grid(self) -> None:
        c = self.shape[0]
        if c == 0:
            self.strip.clear()
            self.grid_image.clear()
            set_item_text(self.grid_note, "")
            return
        status = self.rings(picked=False)
        strip = np.where(status == RING_OK, EMPTY, status).astype(np.uint8)[:, None]
        show_codes(self.strip, strip, self._lut, QRectF(X_RANGE[1], 0, STRIP, c))
        if self._acc is not None and self._acc_steps:
            codes = rate_codes(self._acc / float(self._acc_steps))
            set_item_text(self.grid_note, "")
        else:
            codes = np.zeros(self.shape, np.uint8)
            set_item_text(self.grid_note, "no spike maps" if self.layer else "")
        img = tile_grid(codes, self.rings(), self.cols)
        show_codes(self.grid_image, img, self._lut, QRectF(0, 0, img.shape[1], img.shape[0]))

    # -- clicks ----------------------------------------------------------------------------
    def channel_at(self, scene_pos) -> int | None:
        """The channel under a scene position: a heatmap row or a grid tile (None: none)."""
        c, h, w = self.shape
        if c == 0:
            return None
        vb = self.heat.getViewBox()
        if vb.sceneBoundingRect().contains(scene_pos):
            row = math.floor(vb.mapSceneToView(scene_pos).y())
            return row if 0 <= row < c else None
        if self.grid_vb.sceneBoundingRect().contains(scene_pos):
            p = self.grid_vb.mapSceneToView(scene_pos)
            if p.x() < 0 or p.y() < 0:
                return None
            col, r = int(p.x() // (w + 2)), int(p.y() // (h + 2))
            ch = r * self.cols + col
            return ch if col < self.cols and ch < c else None
        return None

    @Slot(object)
    def pick_channel(self, event: object) -> None:
        """A click on the canvas: emit the channel hit, if any, and ring it."""
        note_slot("ChannelPanel.pick_channel")
        ch = self.channel_at(event.scenePos())  # type: ignore[attr-defined]
        if ch is None or self.layer is None:
            return
        self.set_picked_channel(ch)
        self.channel_clicked.emit(self.layer, ch)
