"""A session you can keep: one Parquet row per model step, readable with pandas.

``StepExporter(path, layers, synaptic, classes)`` opens ``path`` at once (a bad path fails
then, with a one-line :class:`~dvsapp.errors.ConfigError`), fixes one schema for every model
up front, buffers :class:`StepRow` s and writes a row group every ``row_group_rows`` rows, so
a crash loses little and memory stays bounded. After :meth:`StepExporter.close` the file is
valid Parquet: ``pandas.read_parquet(path)``.

Columns (flat and stable; ``<layer>`` / ``<class>`` are the names as the models give them):

=========================== ============== ==================================================
column                      type           meaning
=========================== ============== ==================================================
``model``                   string         which model stepped (the ``add`` argument)
``step_index``              int64, null    steps since the stepper started (None: unknown)
``window``, ``step``        int64          window (0-based), step in it (1-based)
``t_start_us``, ``t_end_us`` int64         the bin, on the stream's clock
``recording_t_us``          int64, null    ``t_start_us`` on the recording's own clock
``pred``, ``pred_name``     int64, string  the window's prediction so far
``true_name``               string, null   the label covering the step, if any
``probs``                   list<float32>  class probabilities so far, in the model's order
``exited``                  bool           the window's early exit fired at this step
``exit_step``               int64, null    on a window's last step: steps the exit needed
                                           (the window's length when no exit fired)
``exit_pred_name``          string, null   on a window's last step: the exit's decision
``exit_reason``             string, null   on a window's last step: why it exited (None: no
                                           exit fired)
``window_complete``         bool, null     on a window's last step: False when the stream
                                           ended first
``latency_ms``              float64        the model step
``ops_ac``, ``ops_mac``     float64, null  effective synaptic operations this step, by kind
``sparsity``                float64, null  activation sparsity this step
``p/<class>``               float32, null  ``probs`` by class name (union over the models)
``rate/<layer>``            float32, null  the spiking layer's firing rate this step
``vm_mean/<layer>``         float32, null  membrane potential: mean, ``vm_std``, ``vm_min``,
                                           ``vm_max`` likewise
``vm_near/<layer>``         float32, null  fraction of neurons near the threshold
``vm_threshold/<layer>``    float32, null  the live threshold (base times scale)
``synops/<layer>``          float64, null  the synaptic layer's effective operations
``synkind/<layer>``         string, null   ``"AC"`` or ``"MAC"``
=========================== ============== ==================================================

A model's row holds null in the columns of layers and classes it lacks, and in every
analysis column when the step had no analysis. Values for layers the schema does not know are
left out. pandas reads nullable int64 columns as float64 (or as ``Int64`` with
``dtype_backend="numpy_nullable"``). The schema's metadata key ``dvsapp.export`` holds the
models' layers, synaptic layers and classes as JSON.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dvsapp.errors import ConfigError
from dvsapp.snn.analysis.records import StepAnalysis

if TYPE_CHECKING:
    from dvsapp.session.core import Lane, LaneStep
    from dvsapp.snn.stepper import StepRecord

#: Rows per row group (and the most rows buffered in memory).
ROW_GROUP_ROWS = 1024
#: Bump when a column changes meaning (stored in the schema metadata).
SCHEMA_VERSION = 1

_VM_STATS = ("mean", "std", "min", "max", "near", "threshold")
_FIXED: tuple[tuple[str, pa.DataType], ...] = (
    ("model", pa.string()),
    ("step_index", pa.int64()),
    ("window", pa.int64()),
    ("step", pa.int64()),
    ("t_start_us", pa.int64()),
    ("t_end_us", pa.int64()),
    ("recording_t_us", pa.int64()),
    ("pred", pa.int64()),
    ("pred_name", pa.string()),
    ("true_name", pa.string()),
    ("probs", pa.list_(pa.float32())),
    ("exited", pa.bool_()),
    ("exit_step", pa.int64()),
    ("exit_pred_name", pa.string()),
    ("exit_reason", pa.string()),
    ("window_complete", pa.bool_()),
    ("latency_ms", pa.float64()),
    ("ops_ac", pa.float64()),
    ("ops_mac", pa.float64()),
    ("sparsity", pa.float64()),
)
_NOT_NULL = {"model", "window", "step", "t_start_us", "t_end_us", "pred", "pred_name"}
_NOT_NULL |= {"probs", "exited", "latency_ms"}


@dataclass
class StepRow:
    """One model step as exported (one row; see the module docstring for the columns)."""

    t_start_us: int
    t_end_us: int
    window: int
    step: int
    pred: int
    pred_name: str
    probs: np.ndarray  # float32 [K], in the model's class order
    latency_ms: float
    exited: bool = False
    recording_t_us: int | None = None
    step_index: int | None = None
    true_name: str | None = None
    #: Set on a window's last step (None on the others).
    exit_step: int | None = None
    exit_pred_name: str | None = None
    exit_reason: str | None = None
    window_complete: bool | None = None
    rates: dict[str, float] = field(default_factory=dict)  # spiking layer -> firing rate
    analysis: StepAnalysis | None = None

    @classmethod
    def from_step(
        cls,
        record: StepRecord,
        *,
        class_names: Sequence[str] | None = None,
        analysis: StepAnalysis | None = None,
        true_name: str | None = None,
        recording_t_us: int | None = None,
    ) -> StepRow:
        """The row of a :class:`~dvsapp.snn.stepper.StepRecord` (class names default to the
        class indices, as the stepper's do)."""
        pred = int(record.pred)
        row = cls(
            t_start_us=int(record.t_start_us),
            t_end_us=int(record.t_end_us),
            window=int(record.window),
            step=int(record.step),
            pred=pred,
            pred_name=str(class_names[pred]) if class_names is not None else str(pred),
            probs=np.asarray(record.probs, np.float32),
            latency_ms=float(record.latency_ms),
            exited=bool(record.exited),
            recording_t_us=None if recording_t_us is None else int(recording_t_us),
            step_index=int(record.index),
            true_name=true_name,
            rates=record.rate_dict(),
            analysis=analysis,
        )
        row.set_window(record.window_result)
        return row

    def set_window(self, result: Any) -> None:
        """The exit fields from a :class:`~dvsapp.snn.stepper.WindowResult` (or None)."""
        if result is None:
            return
        self.exit_step = int(result.exit_step)
        self.exit_pred_name = str(result.exit_label)
        self.exit_reason = result.exit_reason
        self.window_complete = bool(result.complete)


def _schema(
    layers: Mapping[str, Sequence[str]],
    synaptic: Mapping[str, Sequence[str]],
    classes: Mapping[str, Sequence[str]],
) -> pa.Schema:
    def union(by_model: Mapping[str, Sequence[str]]) -> list[str]:
        return list(dict.fromkeys(str(n) for names in by_model.values() for n in names))

    spiking, syn, cls = union(layers), union(synaptic), union(classes)
    fields = [pa.field(n, t, nullable=n not in _NOT_NULL) for n, t in _FIXED]
    fields += [pa.field(f"p/{c}", pa.float32()) for c in cls]
    fields += [pa.field(f"rate/{n}", pa.float32()) for n in spiking]
    for stat in _VM_STATS:
        fields += [pa.field(f"vm_{stat}/{n}", pa.float32()) for n in spiking]
    fields += [pa.field(f"synops/{n}", pa.float64()) for n in syn]
    fields += [pa.field(f"synkind/{n}", pa.string()) for n in syn]
    models = sorted(set(layers) | set(synaptic) | set(classes))
    meta = {
        "version": SCHEMA_VERSION,
        "models": {
            m: {
                "layers": list(layers.get(m, ())),
                "synaptic": list(synaptic.get(m, ())),
                "classes": list(classes.get(m, ())),
            }
            for m in models
        },
    }
    return pa.schema(fields, metadata={"dvsapp.export": json.dumps(meta)})


def check_export_path(path: str | os.PathLike[str]) -> None:
    """A one-line ConfigError when ``path`` clearly cannot take the export."""
    path = Path(path)

    def fail(reason: str) -> None:
        raise ConfigError(f"cannot write the export {path}: {reason}")

    if path.suffix.lower() != ".parquet":
        fail("the file name must end in .parquet")
    if path.is_dir():
        fail("it is a folder")
    parent = path.parent
    if not parent.is_dir():
        fail(f"the folder {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        fail("permission denied")


class StepExporter:
    """Writes :class:`StepRow` s of one or more models to one Parquet file (module docstring).

    Args:
        path: the ``.parquet`` file, created (or overwritten) at once.
        layers: model name -> its spiking layer names.
        synaptic: model name -> its synaptic layer names.
        classes: model name -> its class names, in the order of its ``probs``.
        row_group_rows: rows per row group.

    Thread-safe: ``add`` may run in a worker while ``close`` comes from another thread.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        layers: Mapping[str, Sequence[str]],
        synaptic: Mapping[str, Sequence[str]],
        classes: Mapping[str, Sequence[str]],
        row_group_rows: int = ROW_GROUP_ROWS,
    ) -> None:
        self.path = Path(path)
        if row_group_rows < 1:
            raise ValueError(f"row_group_rows must be >= 1, got {row_group_rows}")
        for model, names in classes.items():
            if len(set(names)) != len(names):
                raise ConfigError(f"model {model!r} has duplicate class names: {list(names)}")
        self.schema = _schema(layers, synaptic, classes)
        self._models = set(layers) | set(synaptic) | set(classes)
        self._classes = {m: [str(c) for c in names] for m, names in classes.items()}
        self._columns = set(self.schema.names)
        self._row_group_rows = row_group_rows
        self._lock = threading.Lock()
        self._buffer: list[dict[str, Any]] = []
        self._written = 0
        check_export_path(self.path)
        try:
            self._writer: pq.ParquetWriter | None = pq.ParquetWriter(
                str(self.path), self.schema, compression="zstd"
            )
        except (OSError, pa.ArrowException) as e:
            if isinstance(e, OSError) and e.errno:
                reason = os.strerror(e.errno).lower()
            else:
                reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ConfigError(f"cannot write the export {self.path}: {reason}") from None

    @property
    def rows(self) -> int:
        """Rows written or buffered so far."""
        return self._written + len(self._buffer)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._writer is None

    def add(self, model: str, row: StepRow) -> None:
        """Buffer one step of ``model``; writes a row group once ``row_group_rows`` wait.

        Raises ValueError for a model the schema does not know, a closed exporter, or
        ``probs`` that do not match the model's classes; OSError when writing fails."""
        if model not in self._models:
            raise ValueError(f"model {model!r} is not in this export's schema")
        values = self._values(model, row)
        with self._lock:
            if self._writer is None:
                raise ValueError(f"the export {self.path} is closed")
            self._buffer.append(values)
            if len(self._buffer) >= self._row_group_rows:
                self._flush()

    def _values(self, model: str, row: StepRow) -> dict[str, Any]:
        probs = np.asarray(row.probs, np.float32).ravel()
        out: dict[str, Any] = {
            "model": model,
            "step_index": row.step_index,
            "window": int(row.window),
            "step": int(row.step),
            "t_start_us": int(row.t_start_us),
            "t_end_us": int(row.t_end_us),
            "recording_t_us": row.recording_t_us,
            "pred": int(row.pred),
            "pred_name": str(row.pred_name),
            "true_name": row.true_name,
            "probs": probs,
            "exited": bool(row.exited),
            "exit_step": row.exit_step,
            "exit_pred_name": row.exit_pred_name,
            "exit_reason": row.exit_reason,
            "window_complete": row.window_complete,
            "latency_ms": float(row.latency_ms),
        }
        names = self._classes.get(model)
        if names is not None:
            if len(names) != probs.size:
                raise ValueError(f"{probs.size} probabilities for {model!r}'s {len(names)} classes")
            out.update(zip((f"p/{c}" for c in names), probs.tolist(), strict=True))
        out.update((f"rate/{n}", float(r)) for n, r in row.rates.items())
        a = row.analysis
        if a is not None:
            ops = a.total_ops
            out["ops_ac"], out["ops_mac"] = float(ops["AC"]), float(ops["MAC"])
            out["sparsity"] = float(a.sparsity)
            for n, vm in a.vm.items():
                out[f"vm_mean/{n}"], out[f"vm_std/{n}"] = float(vm.mean), float(vm.std)
                out[f"vm_min/{n}"], out[f"vm_max/{n}"] = float(vm.min), float(vm.max)
                out[f"vm_near/{n}"] = float(vm.near)
                out[f"vm_threshold/{n}"] = float(vm.threshold_now)
            for n, syn in a.synops.items():
                out[f"synops/{n}"], out[f"synkind/{n}"] = float(syn.ops), str(syn.kind)
        return {k: v for k, v in out.items() if k in self._columns}

    def _flush(self) -> None:
        """Write the buffer as one row group (the lock is held)."""
        if not self._buffer or self._writer is None:
            return
        rows, self._buffer = self._buffer, []
        columns = {name: [r.get(name) for r in rows] for name in self.schema.names}
        table = pa.Table.from_pydict(columns, schema=self.schema)
        self._writer.write_table(table, row_group_size=len(rows))
        self._written += len(rows)

    def flush(self) -> None:
        """Write what is buffered now (a row group smaller than ``row_group_rows``)."""
        with self._lock:
            self._flush()

    def close(self) -> None:
        """Write the rest and close the file (a valid Parquet file after it); idempotent."""
        with self._lock:
            if self._writer is None:
                return
            try:
                self._flush()
            finally:
                writer, self._writer = self._writer, None
                writer.close()

    def __enter__(self) -> StepExporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SessionExport:
    """A :class:`StepExporter` for the lanes of a session: its schema from their models, one
    row per step of each (what ``dvsapp run --export`` and the app's Export write)."""

    def __init__(self, path: str | os.PathLike[str], lanes: Sequence[Lane]) -> None:
        self.models = [lane.name for lane in lanes]
        self.exporter = StepExporter(
            path,
            {ln.name: list(ln.model.ckpt.model.spiking_layers()) for ln in lanes},
            {ln.name: ln.synaptic_layers or _synaptic_layers(ln) for ln in lanes},
            {ln.name: list(ln.model.ckpt.class_names) for ln in lanes},
        )
        self.path = Path(path)

    @property
    def rows(self) -> int:
        return self.exporter.rows

    def add(
        self,
        lane: Lane,
        step: LaneStep,
        true_name: str | None = None,
        recording_t_us: int | None = None,
    ) -> None:
        """The row of one lane's step (a window the stream's end closed goes on its last
        step); steps without a record add nothing."""
        if step.record is None:
            return
        row = StepRow.from_step(
            step.record,
            class_names=lane.model.ckpt.class_names,
            analysis=step.analysis,
            true_name=true_name,
            recording_t_us=recording_t_us,
        )
        if step.window_result is not None and row.exit_step is None:
            row.set_window(step.window_result)
        self.exporter.add(lane.name, row)

    def close(self) -> None:
        self.exporter.close()


def _synaptic_layers(lane: Lane) -> list[str]:
    """A lane's synaptic layers when its probes are off (the schema needs them)."""
    from dvsapp.snn.analysis.analyzer import Analyzer

    return list(
        Analyzer(lane.model.ckpt.model, lane.model.shapes, lane.model.device).synaptic_layers
    )
