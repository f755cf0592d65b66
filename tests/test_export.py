"""The Parquet step export: round trip through pandas (values, dtypes, nulls), one schema
fixed up front for several models, valid files after close (one or many row groups), bad
paths refused at construction."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pq = pytest.importorskip("pyarrow.parquet")

from dvsapp.errors import ConfigError  # noqa: E402
from dvsapp.session.export import StepExporter, StepRow  # noqa: E402
from dvsapp.snn.analysis.records import (  # noqa: E402
    VM_BINS,
    StepAnalysis,
    SynapticLayer,
    VmStats,
)
from dvsapp.snn.stepper import StepRecord, WindowResult  # noqa: E402

LAYERS = {"a": ["lif1", "lif2"], "b": ["lif1", "lif3"]}
SYNAPTIC = {"a": ["conv1", "fc"], "b": ["conv1"]}
CLASSES = {"a": ["left", "right", "up"], "b": ["left", "right"]}


def _analysis(seed: float, layers: list[str], synaptic: list[str]) -> StepAnalysis:
    vm = {
        n: VmStats(
            counts=np.zeros(VM_BINS + 2, np.int64),
            neurons=10,
            threshold_now=1.0 + seed,
            near=0.25,
            mean=seed,
            std=0.5,
            min=-1.0,
            max=2.0,
        )
        for n in layers
    }
    syn = {
        n: SynapticLayer(ops=100.0 * (i + 1) + seed, kind="AC" if i == 0 else "MAC", dense=1e4)
        for i, n in enumerate(synaptic)
    }
    return StepAnalysis(vm=vm, synops=syn, sparsity=0.9)


def _row(model: str, i: int, analysis: bool = True, last: bool = False) -> StepRow:
    k = len(CLASSES[model])
    probs = np.full(k, 1.0 / k, np.float32)
    probs[i % k] += 0.1
    return StepRow(
        t_start_us=1000 * i,
        t_end_us=1000 * (i + 1),
        window=i // 4,
        step=i % 4 + 1,
        pred=i % k,
        pred_name=CLASSES[model][i % k],
        probs=probs,
        latency_ms=0.5 + i,
        exited=i == 2,
        recording_t_us=5000 + 1000 * i if model == "a" else None,
        step_index=i,
        true_name="left" if model == "a" else None,
        exit_step=3 if last else None,
        exit_pred_name="up" if last else None,
        exit_reason="confidence" if last else None,
        window_complete=True if last else None,
        rates={n: 0.1 * (j + 1) + 0.01 * i for j, n in enumerate(LAYERS[model])},
        analysis=_analysis(float(i), LAYERS[model], SYNAPTIC[model]) if analysis else None,
    )


def _exporter(path: Path, **kw) -> StepExporter:
    return StepExporter(path, LAYERS, SYNAPTIC, CLASSES, **kw)


def test_round_trip_two_models_interleaved(tmp_path: Path) -> None:
    path = tmp_path / "s.parquet"
    ex = _exporter(path)
    for i in range(4):
        ex.add("a", _row("a", i, analysis=i != 1, last=i == 3))
        ex.add("b", _row("b", i))
    assert ex.rows == 8
    ex.close()
    df = pd.read_parquet(path)
    assert len(df) == 8
    assert list(df["model"]) == ["a", "b"] * 4
    a, b = df[df.model == "a"].reset_index(drop=True), df[df.model == "b"].reset_index(drop=True)

    # values
    assert list(a["t_start_us"]) == [0, 1000, 2000, 3000]
    assert list(a["recording_t_us"]) == [5000, 6000, 7000, 8000]
    assert b["recording_t_us"].isna().all()
    assert list(a["pred_name"]) == ["left", "right", "up", "left"]
    assert list(a["exited"]) == [False, False, True, False]
    np.testing.assert_allclose(a["probs"][0], _row("a", 0).probs)
    np.testing.assert_allclose(a["p/up"], [r.probs[2] for r in (_row("a", i) for i in range(4))])
    assert b["p/up"].isna().all()  # b has no class "up"
    np.testing.assert_allclose(a["rate/lif2"], [0.2 + 0.01 * i for i in range(4)], rtol=1e-6)
    assert a["rate/lif3"].isna().all() and b["rate/lif2"].isna().all()
    np.testing.assert_allclose(b["rate/lif3"], [0.2 + 0.01 * i for i in range(4)], rtol=1e-6)
    assert np.isnan(a["vm_mean/lif1"][1])  # no analysis at step 1
    assert a["vm_mean/lif1"][2] == 2.0 and a["vm_threshold/lif1"][2] == 3.0
    assert a["vm_near/lif2"][0] == pytest.approx(0.25)
    assert a["synkind/conv1"][0] == "AC" and a["synkind/fc"][0] == "MAC"
    assert pd.isna(a["synkind/fc"][1]) and b["synkind/fc"].isna().all()
    assert a["ops_ac"][2] == 102.0 and a["ops_mac"][2] == 202.0
    assert b["ops_mac"][2] == 0.0 and np.isnan(a["ops_ac"][1])
    assert a["sparsity"][0] == pytest.approx(0.9)
    # the window's end only on its last step
    assert a["exit_step"].isna()[:3].all() and a["exit_step"][3] == 3
    assert a["exit_reason"][3] == "confidence" and pd.isna(a["exit_reason"][0])
    assert bool(a["window_complete"][3]) and a["window_complete"][:3].isna().all()

    # dtypes
    assert df["t_start_us"].dtype == np.int64 and df["pred"].dtype == np.int64
    assert df["exited"].dtype == bool
    assert df["latency_ms"].dtype == np.float64
    assert df["rate/lif1"].dtype == np.float32 and df["vm_mean/lif3"].dtype == np.float32
    assert df["probs"][0].dtype == np.float32
    nullable = pd.read_parquet(path, dtype_backend="numpy_nullable")
    assert str(nullable["recording_t_us"].dtype) == "Int64"


def test_schema_is_fixed_up_front(tmp_path: Path) -> None:
    path = tmp_path / "s.parquet"
    ex = _exporter(path)
    cols = ex.schema.names
    assert cols[:4] == ["model", "step_index", "window", "step"]
    for c in ("p/left", "p/right", "p/up", "rate/lif1", "rate/lif2", "rate/lif3"):
        assert c in cols
    for c in ("vm_mean/lif3", "vm_std/lif1", "vm_near/lif2", "synops/fc", "synkind/conv1"):
        assert c in cols
    ex.close()  # no rows: still a valid file with every column
    df = pd.read_parquet(path)
    assert len(df) == 0 and list(df.columns) == cols
    meta = json.loads(pq.read_schema(path).metadata[b"dvsapp.export"])
    assert meta["models"]["b"] == {
        "layers": LAYERS["b"],
        "synaptic": ["conv1"],
        "classes": CLASSES["b"],
    }
    # a layer the schema does not know is left out; an unknown model is refused
    ex2 = _exporter(tmp_path / "t.parquet")
    row = _row("a", 0)
    row.rates["extra"] = 1.0
    ex2.add("a", row)
    with pytest.raises(ValueError, match="not in this export"):
        ex2.add("c", row)
    ex2.close()
    assert "rate/extra" not in pd.read_parquet(tmp_path / "t.parquet").columns


def test_row_groups_and_valid_after_close(tmp_path: Path) -> None:
    path = tmp_path / "s.parquet"
    ex = _exporter(path, row_group_rows=10)
    for i in range(25):
        ex.add("a", _row("a", i))
    assert ex.rows == 25
    # two full row groups are on disk already; five rows wait
    ex.close()
    ex.close()  # idempotent
    meta = pq.ParquetFile(path).metadata
    assert meta.num_row_groups == 3 and meta.num_rows == 25
    assert list(pd.read_parquet(path)["step_index"]) == list(range(25))
    with pytest.raises(ValueError, match="closed"):
        ex.add("a", _row("a", 0))
    # fewer rows than one group: valid too
    small = _exporter(tmp_path / "small.parquet")
    small.add("b", _row("b", 0))
    small.close()
    assert len(pd.read_parquet(tmp_path / "small.parquet")) == 1


def test_from_step_and_context_manager(tmp_path: Path) -> None:
    wr = WindowResult(
        window=0,
        t_start_us=0,
        t_end_us=4000,
        steps=4,
        complete=False,
        pred=1,
        label="right",
        probs=np.array([0.2, 0.8], np.float32),
        exit_step=4,
        exit_pred=1,
        exit_label="right",
        exit_reason=None,
    )
    rec = StepRecord(
        index=7,
        window=0,
        step=4,
        t_start_us=3000,
        t_end_us=4000,
        output=np.zeros(2, np.float32),
        probs=np.array([0.2, 0.8], np.float32),
        pred=1,
        latency_ms=1.5,
        layer_names=("lif1", "lif3"),
        rates=np.array([0.1, 0.3], np.float32),
        window_result=wr,
    )
    row = StepRow.from_step(rec, class_names=CLASSES["b"], true_name="left", recording_t_us=9)
    assert row.pred_name == "right" and row.step_index == 7 and row.recording_t_us == 9
    assert row.exit_step == 4 and row.exit_reason is None and row.window_complete is False
    assert row.rates == pytest.approx({"lif1": 0.1, "lif3": 0.3})
    assert StepRow.from_step(rec).pred_name == "1"
    path = tmp_path / "s.parquet"
    with _exporter(path) as ex:
        ex.add("b", row)
    df = pd.read_parquet(path)
    assert df["exit_step"][0] == 4 and df["exit_pred_name"][0] == "right"
    assert df["true_name"][0] == "left" and pd.isna(df["exit_reason"][0])
    assert df["rate/lif3"][0] == pytest.approx(0.3)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("missing/s.parquet", "does not exist"),
        ("s.csv", "must end in .parquet"),
        ("adir.parquet", "is a folder"),
    ],
)
def test_bad_paths_fail_at_construction(tmp_path: Path, name: str, reason: str) -> None:
    (tmp_path / "adir.parquet").mkdir()
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(ConfigError, match=reason) as err:
        _exporter(tmp_path / name)
    assert "\n" not in str(err.value) and str(tmp_path / name) in str(err.value)
    assert sorted(os.listdir(tmp_path)) == before


def test_unwritable_folder_fails_at_construction(tmp_path: Path) -> None:
    # /proc refuses new files even to root: the writer's own open must fail, and be reported
    with pytest.raises(ConfigError, match=r"cannot write the export /proc/s\.parquet"):
        _exporter("/proc/s.parquet")
    if os.geteuid() == 0:
        return  # root writes through permission bits
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(ConfigError, match="permission denied"):
            _exporter(ro / "s.parquet")
        assert not os.listdir(ro)
    finally:
        ro.chmod(0o700)


def test_probs_must_match_the_classes(tmp_path: Path) -> None:
    ex = _exporter(tmp_path / "s.parquet")
    row = _row("a", 0)
    row.probs = np.ones(5, np.float32)
    with pytest.raises(ValueError, match="5 probabilities"):
        ex.add("a", row)
    assert ex.rows == 0
    ex.close()
    with pytest.raises(ConfigError, match="duplicate class names"):
        StepExporter(tmp_path / "d.parquet", {}, {}, {"m": ["x", "x"]})
