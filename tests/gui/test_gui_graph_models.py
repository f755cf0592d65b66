"""The app on a network from elsewhere: the real N-MNIST CNN (a NIR graph) on real N-MNIST
samples, opened as a .nir file or as a checkpoint imported into a models folder, and a bad
.nir that must leave the running model in place."""

from __future__ import annotations

from pathlib import Path

import pytest

from dvsapp import cli
from dvsapp.gui.app import shipped_models
from dvsapp.gui.controls import BROWSE, model_text
from dvsapp.gui.main_window import CHECKPOINT_FILTER, MainWindow
from dvsapp.gui.pipeline_port import model_key
from dvsapp.pipeline import Pipeline, PipelineSettings
from dvsapp.snn.graph.importer import ImportOptions, import_nir, save_imported

from .gui_helpers import WAIT_MS, data_pixels, make_window, wait_steps

#: The CNN's spiking layers, named by the NIR graph's nodes.
NODES = ["1", "3", "6", "10", "12"]
NMNIST = ImportOptions(classes="nmnist", bin_us=1000, time_steps=300)


@pytest.fixture(scope="module")
def cnn(shared_models_dir: Path) -> Path:
    path = shared_models_dir / "nir" / "cnn_sinabs_nmnist.nir"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="module")
def three(samples_dir: Path) -> Path:
    """A real N-MNIST sample of the digit 3 (the label comes from its folder)."""
    files = sorted((samples_dir / "nmnist" / "Train" / "3").glob("*.bin"))
    if not files:
        pytest.skip("no N-MNIST samples of the digit 3 in ../shared/samples/nmnist")
    return files[0]


def _window(qtbot, settings: PipelineSettings, models: list[Path] | None = None) -> MainWindow:
    return make_window(qtbot, Pipeline(settings), models or [], start=True)


@pytest.fixture
def graph_window(qtbot, cnn: Path, three: Path, thread_errors):
    """The window on the sample with the CNN opened from its .nir file (as `--model`)."""
    settings = PipelineSettings(
        recording=three, checkpoint=cnn, device="cpu", import_options=NMNIST, exit_threshold=None
    )
    win = _window(qtbot, settings)
    yield win
    win.close()
    assert not win.pipeline.running  # type: ignore[attr-defined]
    assert thread_errors == []


def test_gui_flags_reach_the_app(monkeypatch, cnn: Path, three: Path) -> None:
    import dvsapp.gui.app as app

    seen: dict[str, object] = {}

    def fake_run_app(rec, ckpt=None, **kw):
        seen.update(kw, ckpt=ckpt)
        return 0

    monkeypatch.setattr(app, "run_app", fake_run_app)
    args = [str(three), "--model", str(cnn), "--classes", "nmnist", "--bin-us", "1000"]
    assert cli.main(["gui", *args, "--time-steps", "300"]) == 0
    assert seen["ckpt"] == cnn and seen["import_options"] == NMNIST


def test_nir_graph_steps_live_in_every_panel(graph_window: MainWindow, qtbot) -> None:
    win = graph_window
    qtbot.waitUntil(lambda: win.info is not None, timeout=WAIT_MS)
    info = win.info
    assert info is not None
    assert (info.family, info.arch, info.window_steps, info.bin_us) == ("graph", "graph", 300, 1000)
    assert info.layer_names == NODES and list(win.rasters.layers) == NODES
    assert win.rates.names == NODES
    assert info.thresholds == dict.fromkeys(NODES, 1.0)  # the Vm panel's dashed line
    assert info.source["framework"] == "nir" and info.source["readout"] == "spike_count"
    label = win.controls.model_label.text()
    assert "NIR graph: cnn_sinabs_nmnist.nir" in label and "spike-count readout" in label
    assert label == model_text(info)
    # 1 ms bins hold a handful of events: the event view accumulates over the window.
    assert win.settings.accumulate_events and win.events.accumulate.isChecked()
    c = win.controls
    assert c.policy.model().item(1).isEnabled()  # free-running: time-invariant graph
    assert not c.gamma_on.isEnabled() and not c.gamma.isEnabled()  # BNTT only

    # One full window of 300 steps: the CNN names the digit (spike counts, no early exit).
    qtbot.waitUntil(lambda: any(m.window == 0 for m in win.prediction.markers), timeout=WAIT_MS)
    first = next(m for m in win.prediction.markers if m.window == 0)
    assert (first.cls, first.name, first.fired) == (3, "3", False)
    assert win.seq >= 300
    wait_steps(qtbot, win, win.seq + 2)
    assert win.prediction.class_names == [str(d) for d in range(10)]
    probs = win.prediction._probs
    assert probs.shape == (10,) and abs(float(probs.sum()) - 1.0) < 1e-4  # spike shares
    assert win.rates._ring is not None and win.rates._ring.view().any()  # rates over time
    pixels = data_pixels(win)
    assert pixels["RasterPanel"] > 0 and pixels["RatesPanel"] > 0 and pixels["PredictionPanel"] > 0
    assert win.pipeline.stats().state == "running"

    # Free-running state is accepted for the graph (it is time-invariant).
    c.policy_chosen(1)
    seq = win.seq
    wait_steps(qtbot, win, seq + 5)
    assert win.pipeline.stats().state == "running"


def test_bad_nir_keeps_the_running_model(graph_window: MainWindow, qtbot, cnn, tmp_path) -> None:
    win = graph_window
    wait_steps(qtbot, win, 2)
    info = win.info
    noise = tmp_path / "noise.nir"
    noise.write_bytes(bytes(range(256)) * 8)
    truncated = tmp_path / "truncated.nir"
    truncated.write_bytes(cnn.read_bytes()[:4096])
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    for n, bad in enumerate((noise, truncated, garbage), 1):
        win.load_model(bad)
        assert win.controls.model_label.text() == "loading…"
        qtbot.waitUntil(lambda bad=bad: bad.name in win.banner.text(), timeout=WAIT_MS)
        message = win.banner.text()
        assert "\n" not in message and win.banner.isVisible()
        assert win.last_stats is not None and win.last_stats.model_failures == n
        # The CNN is still the model: chosen, described and stepping.
        assert win.settings.checkpoint == cnn and win.settings.import_options == NMNIST
        assert win.controls.model.currentData() == cnn
        assert all(win.controls.model.itemData(i) != bad for i in range(win.controls.model.count()))
        assert win.controls.model_label.text() == model_text(info)  # type: ignore[arg-type]
        assert win.info is not None and model_key(win.info) == model_key(info)  # type: ignore[arg-type]
        seq = win.seq
        wait_steps(qtbot, win, seq + 3)
        assert win.pipeline.stats().state != "error"
        assert win.pipeline.settings.checkpoint == cnn  # type: ignore[attr-defined]


def test_chooser_lists_imported_checkpoints_and_opens_nir(
    qtbot, cnn: Path, three: Path, tmp_path: Path, monkeypatch, thread_errors
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    imported = save_imported(import_nir(cnn, NMNIST), models / "cnn_nmnist.safetensors")
    listed = shipped_models(models)
    assert listed == [imported]
    settings = PipelineSettings(recording=three, checkpoint=None, device="cpu")
    win = _window(qtbot, settings, listed)
    try:
        c = win.controls
        entries = {c.model.itemText(i): c.model.itemData(i) for i in range(c.model.count())}
        assert entries["cnn_nmnist"] == imported
        qtbot.waitUntil(lambda: win.info is not None, timeout=WAIT_MS)
        assert win.info is not None and win.info.family != "graph"  # the demo first
        assert not win.settings.accumulate_events  # its 20 ms bins show one bin
        # Choose the imported checkpoint in the chooser.
        c.model.setCurrentIndex(c.model.findText("cnn_nmnist"))
        c.model_chosen(c.model.currentIndex())
        qtbot.waitUntil(lambda: win.info is not None and win.info.path == imported, timeout=WAIT_MS)
        info = win.info
        assert info.family == "graph" and info.layer_names == NODES
        assert info.source["framework"] == "nir" and info.source["file"] == cnn.name
        assert "NIR graph" in c.model_label.text()
        assert win.settings.accumulate_events
        wait_steps(qtbot, win, win.seq + 3)
        # "other checkpoint or .nir…" takes a .nir file (imported with the defaults).
        assert "*.nir" in CHECKPOINT_FILTER
        monkeypatch.setattr(
            "dvsapp.gui.main_window.QFileDialog.getOpenFileName", lambda *a, **k: (str(cnn), "")
        )
        win.choose_model(BROWSE)
        qtbot.waitUntil(lambda: win.info is not None and win.info.path == cnn, timeout=WAIT_MS)
        assert win.info.layer_names == NODES and win.info.window_steps == 300
        assert c.model.currentData() == cnn
        wait_steps(qtbot, win, win.seq + 3)
        assert win.pipeline.stats().state != "error"
    finally:
        win.close()
    assert thread_errors == []


def test_bad_nir_at_start_says_so(qtbot, three: Path, tmp_path: Path, thread_errors) -> None:
    """No model to keep: the error state, and the model label says there is no model."""
    bad = tmp_path / "unknown.nir"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    win = _window(qtbot, PipelineSettings(recording=three, checkpoint=bad, device="cpu"))
    try:
        qtbot.waitUntil(lambda: bad.name in win.banner.text(), timeout=WAIT_MS)
        qtbot.waitUntil(lambda: "no model" in win.controls.model_label.text(), timeout=WAIT_MS)
        assert win.pipeline.stats().state == "error" and win.info is None
        ticks = win.ticks
        qtbot.wait(100)
        assert win.ticks > ticks  # the GUI keeps running
    finally:
        win.close()
    assert thread_errors == []
