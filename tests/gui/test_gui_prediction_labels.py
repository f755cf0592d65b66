"""The prediction panel keeps its text readable: class names beside the bars whole where the
panel has room, exit labels in two rows that never overlap."""

from __future__ import annotations

from itertools import pairwise

from dvsapp.events.types import DVS_GESTURE_CLASSES
from dvsapp.gui.panels.prediction import LABEL_ROWS, PredictionPanel
from dvsapp.pipeline import ModelInfo, PipelineSettings


def _info() -> ModelInfo:
    return ModelInfo(
        name="m", arch="resnet_small", family="tdbn", class_names=list(DVS_GESTURE_CLASSES),
        layer_names=[], layer_shapes={}, thresholds={}, window_steps=10, bin_us=50_000,
        input_size=(64, 64), sensor_size=(128, 128), device="cpu", trained=True,
    )  # fmt: skip


def _panel(qtbot, width: int) -> PredictionPanel:
    panel = PredictionPanel()
    qtbot.addWidget(panel)
    panel.resize(width, 320)
    panel.show()
    qtbot.waitExposed(panel)
    panel.set_model(_info(), PipelineSettings())
    return panel


def _tick_names(panel: PredictionPanel) -> list[str]:
    ticks = panel.bars_plot.getAxis("left")._tickLevels  # what setTicks was given
    return [name for _, name in ticks[0]]


def test_class_names_beside_the_bars_are_whole_on_a_wide_panel(qtbot) -> None:
    wide = _panel(qtbot, 1200)  # the panel's share of a 1920 px window
    assert _tick_names(wide) == list(DVS_GESTURE_CLASSES)
    narrow = _panel(qtbot, 420)  # at 1024 px: shortened, never below 8 characters
    names = _tick_names(narrow)
    assert all(8 <= len(n) < 27 for n in names) and any(n.endswith("…") for n in names)
    assert "right_arm_counter_clockwise" in narrow.bars_plot.toolTip()


def test_exit_labels_use_two_rows_and_never_overlap(qtbot) -> None:
    panel = _panel(qtbot, 700)
    for w in range(40):  # an exit every 3 steps: far more labels than there is room for
        panel._add_marker(3 * w, w, w % 11, DVS_GESTURE_CLASSES[w % 11], True)
    labelled = [m for m in panel.exit_markers if m.label is not None]
    assert len(LABEL_ROWS) == 2 and labelled
    rows = {round(m.label.pos().y(), 3) for m in labelled}
    assert rows <= {round(r, 3) for r in LABEL_ROWS}
    for y in rows:  # labels sit left of their line: each spans [seq - width, seq]
        spans = sorted(
            (m.seq - m.label_steps, m.seq) for m in labelled if round(m.label.pos().y(), 3) == y
        )
        assert all(a_end <= b_start + 1e-9 for (_, a_end), (b_start, _) in pairwise(spans))
    assert len(labelled) < 40  # the rest keep their line and its tooltip
