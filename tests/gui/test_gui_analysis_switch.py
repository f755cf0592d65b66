"""The in-depth probes run only while something shows or keeps them: an in-depth tab, a
compared model's column, or an export. Off, they cost nothing (docs/BENCHMARKS.md)."""

from __future__ import annotations

from pathlib import Path

from dvsapp.pipeline import PipelineSettings

from .fake_pipeline import FakePipeline
from .gui_helpers import WAIT_MS, make_window


def test_probes_follow_the_tabs_compare_mode_and_export(qtbot, tmp_path: Path) -> None:
    pipe = FakePipeline(PipelineSettings())
    win = make_window(qtbot, pipe, start=True)
    qtbot.waitUntil(lambda: win.info is not None, timeout=WAIT_MS)
    assert win.tabs.currentWidget() is win.vm  # the Vm traces: no in-depth panel shown
    assert win.settings.analysis is False and pipe.settings.analysis is False
    qtbot.waitUntil(lambda: win.last_frame is not None and win.last_frame.analysis is None)

    win.tabs.setCurrentWidget(win.vm_hist)
    assert pipe.settings.analysis is True
    qtbot.waitUntil(lambda: win.vm_hist.stats is not None, timeout=WAIT_MS)  # it draws data

    win.tabs.setCurrentWidget(win.vm)
    assert pipe.settings.analysis is False

    win.outputs.start_export(tmp_path / "steps.parquet")
    assert pipe.settings.analysis is True  # before the first row is written
    win.outputs.stop_export()
    win.stats_tick()
    assert pipe.settings.analysis is False

    win.compare_with(Path("models/resnet_small_synth_nonorm_collapsed.safetensors"))
    assert pipe.settings.analysis is True  # the compared column's tabs are in-depth
    qtbot.waitUntil(lambda: win.compare is not None, timeout=WAIT_MS)
    win.compare_with(None)
    win.stats_tick()
    assert pipe.settings.analysis is False
