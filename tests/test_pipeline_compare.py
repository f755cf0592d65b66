"""The app's pipeline in compare mode and exporting: a second model on the same events (its
own binning and classes), the failures that must leave the main model running, and the
Export command's file."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from toy_snn import single_thread

from dvsapp.events.detect import open_reader
from dvsapp.events.writers import write_npz
from dvsapp.pipeline import Mailbox, Pipeline, PipelineSettings, StepFrame

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "models"
RESNET = MODELS / "resnet_small_synth.safetensors"  # 11 gestures, 64x64, 50 ms bins
NMNIST = MODELS / "cnn_sinabs_nmnist.safetensors"  # 10 digits, 34x34, 1 ms bins
WAIT_S = 30.0


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    with single_thread():
        yield


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reader = open_reader(ROOT / "recordings" / "synth_seed9000000.aedat4")
    events = reader.read_all()
    events = events[events["t"] < events["t"][0] + 1_000_000]
    path = tmp_path_factory.mktemp("compare") / "head.npz"
    write_npz(path, [events], reader.sensor_size)
    return path


def _wait_for(cond: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


@contextmanager
def _running(settings: PipelineSettings) -> Iterator[Pipeline]:
    pipe = Pipeline(settings, Mailbox(100_000))
    pipe.start()
    try:
        yield pipe
    finally:
        pipe.stop(timeout=10.0)
        assert not pipe.running


def _settings(recording: Path, **kw: object) -> PipelineSettings:
    base: dict[str, object] = {"checkpoint": RESNET, "speed": math.inf, "loop": False}
    return PipelineSettings(recording=recording, device="cpu", **{**base, **kw})  # type: ignore[arg-type]


def _until_ended(pipe: Pipeline) -> list[StepFrame]:
    frames: list[StepFrame] = []

    def ended() -> bool:
        frames.extend(pipe.mailbox.drain())
        return pipe.stats().state == "ended"

    assert _wait_for(ended)
    frames.extend(pipe.mailbox.drain())
    return frames


def test_compare_mode_steps_both_models_each_binned_for_itself(recording: Path) -> None:
    """Different input sizes and class sets side by side; the compared lane equals that model
    running as the main one."""
    with _running(_settings(recording, compare_checkpoint=NMNIST)) as pipe:
        frames = _until_ended(pipe)
        main, other = pipe.model_info(0), pipe.model_info(1)
        stats = pipe.stats()
    assert main is not None and other is not None
    assert (main.lane, other.lane) == (0, 1)
    assert len(main.class_names) == 11 and len(other.class_names) == 10
    assert other.input_size == (34, 34) and main.input_size == (64, 64)
    assert "each model bins for itself" in stats.compare_note
    lane1 = [f for f in frames if f.lane == 1]
    assert len(lane1) == 1000 and len([f for f in frames if f.lane == 0]) == 20  # 1 ms, 50 ms
    assert all(f.events_on.size == 0 for f in lane1)  # the event view is the main model's
    assert all(f.analysis is not None for f in frames)
    with _running(_settings(recording, checkpoint=NMNIST)) as pipe:
        alone = [f for f in _until_ended(pipe) if f.lane == 0]
    assert [f.pred for f in lane1] == [f.pred for f in alone]
    np.testing.assert_array_equal(
        np.stack([f.probs for f in lane1]), np.stack([f.probs for f in alone])
    )


def test_a_compare_model_that_fails_leaves_the_main_one_running(
    recording: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a checkpoint")
    settings = _settings(recording, speed=1.0, loop=True)
    with _running(settings) as pipe:
        assert _wait_for(lambda: pipe.model_info(0) is not None)
        pipe.compare_model(bad)
        assert _wait_for(lambda: pipe.stats().compare_error != "")
        assert str(bad.name) in pipe.stats().compare_error or "broken" in pipe.stats().compare_error
        assert pipe.model_info(1) is None
        pipe.mailbox.drain()
        assert _wait_for(lambda: any(f.lane == 0 for f in pipe.mailbox.drain()))
        pipe.compare_model(NMNIST)  # the next good one recovers fully
        assert _wait_for(lambda: pipe.model_info(1) is not None)
        assert _wait_for(lambda: pipe.stats().compare_error == "")  # stats follow in 50 ms
        assert _wait_for(lambda: any(f.lane == 1 for f in pipe.mailbox.drain()))
        pipe.compare_model(None)
        assert _wait_for(lambda: pipe.model_info(1) is None)
        assert pipe.stats().state == "running"


def test_export_writes_one_row_per_step_and_model(recording: Path, tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    out = tmp_path / "app.parquet"
    with _running(_settings(recording, compare_checkpoint=NMNIST, speed=1.0)) as pipe:
        assert _wait_for(lambda: pipe.model_info(1) is not None)
        pipe.start_export(tmp_path / "nowhere" / "x.parquet")  # fails at once, one line
        assert _wait_for(lambda: pipe.stats().export_error != "")
        assert "does not exist" in pipe.stats().export_error
        assert "\n" not in pipe.stats().export_error
        pipe.start_export(out)
        assert _wait_for(lambda: pipe.stats().export_rows > 50)
        pipe.stop_export()
        assert _wait_for(lambda: pipe.stats().export_path is None)
        rows = pipe.stats().export_rows
    table = pd.read_parquet(out)
    assert len(table) == rows
    assert set(table["model"]) == {RESNET.name, NMNIST.name}
    digits = table[table["model"] == NMNIST.name]
    assert digits["p/0"].notna().all() and digits["p/hand_clapping"].isna().all()
    assert table["sparsity"].between(0, 1).all()
