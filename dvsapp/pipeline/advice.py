"""Which network suits which recording (no Qt): what each checkpoint was trained on and what
input it takes, whether a recording is a real DVS128 one, and which shipped model to suggest.

The rule for "a real DVS128 recording" (:func:`recording_origin`) is deliberately
conservative: the app only *suggests* a model on it, so a recording it cannot place is
"other" and gets no suggestion. A recording is **real DVS128** when its sensor is 128x128,
nothing marks it as ours, and its file carries a camera's own mark:

* AEDAT 2.0 (jAER) with a DVS128 address layout: dvsapp never writes AEDAT 2.0;
* AEDAT 3.1 whose ``#Source`` is a DVS128 / eDVS and whose ``#Start-Time`` is a real date
  (DVS128 Gesture's files are cAER's, e.g. ``2017-03-30 09:41:35 (TZ+0200)``);
* AEDAT4 whose event stream's source names a DVS128 (``DVS128...``) or a camera recorded
  by ``dvsapp record`` (``camera`` / ``camera:SERIAL``).

It is **synthetic** (ours) when its file name is ``synth_seed<N>...`` (what ``dvsapp synth``
names its files), an AEDAT 3.1 ``#Start-Time`` is the Unix epoch (``dvsapp synth`` writes
``1970-01-01 00:00:00 (TZ+0000)`` so its output is byte-identical), or an AEDAT4 stream's
source is ``dvsapp`` (our writer's name: ``dvsapp synth``, ``dvsapp convert``, the demo
recordings). Everything else (numpy files, Prophesee, N-MNIST, a converted copy, an
AEDAT4 from another tool) is "other".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dvsapp.pipeline.records import RecordingOrigin

#: What a checkpoint was trained on, as the app names it.
SYNTHETIC = "synthetic gestures"
DVS128_GESTURE = "real DVS128 Gesture"
NMNIST = "N-MNIST"
CIFAR10_DVS = "CIFAR10-DVS"
UNTRAINED = "untrained"
UNKNOWN = "unknown"
TRAINING_DATA = (SYNTHETIC, DVS128_GESTURE, NMNIST, CIFAR10_DVS, UNTRAINED, UNKNOWN)

#: RecordingOrigin.kind values.
REAL_DVS128 = "real-dvs128"
SYNTHETIC_RECORDING = "synthetic"
OTHER = "other"

#: The shipped model to suggest for a real DVS128 recording (any checkpoint trained on real
#: DVS128 Gesture qualifies; this one is preferred when several do).
GESTURE_MODEL = "snntorch_dvs_gesture"

_SYNTH_NAME = re.compile(r"^synth_seed\d+", re.IGNORECASE)
_EPOCH_START = "1970-01-01 00:00:00"
_DVS128_SOURCES = ("DVS128", "EDVS")
_RECORDED_CAMERA = re.compile(r"^camera(:|$)", re.IGNORECASE)


def training_data(trained_on: str | None) -> str:
    """A checkpoint's ``trained_on`` text as one of :data:`TRAINING_DATA`.

    ``dvsapp train`` writes its ``--data`` spec (``synth``, ``synth:DIR``,
    ``dvsgesture:ROOT``, ``tonic-dvsgesture:ROOT``, ``cifar10dvs:ROOT`` ...); imported
    networks carry a sentence ("DVS128 Gesture (real; trained by NeuroBench)", "N-MNIST
    (real; ...)", "unknown (imported from ...)"); the demo says "nothing (untrained)".
    """
    s = " ".join(str(trained_on or "").lower().split())
    if not s or s.startswith("unknown"):
        return UNKNOWN
    if s.startswith(("nothing", "untrained")):
        return UNTRAINED
    if re.match(r"synth(:|\b|$)", s) or "synthetic" in s:
        return SYNTHETIC
    squashed = re.sub(r"[\s_-]", "", s)
    if "dvsgesture" in squashed or "dvs128gesture" in squashed:
        return DVS128_GESTURE
    if "nmnist" in squashed:
        return NMNIST
    if "cifar10dvs" in squashed or "dvscifar10" in squashed:
        return CIFAR10_DVS
    return UNKNOWN


def input_text(binning: Mapping[str, Any], detail: bool = False) -> str:
    """What a model takes, from its binning (``BinningConfig.to_dict()``): e.g. "2x32x32,
    40 ms bins, denoised". ``detail``: also the denoising window and the sensor size."""
    if not binning:
        return "unknown input"
    channels = 2 if binning.get("polarity", "split") == "split" else 1
    size = binning.get("input_size") or binning.get("sensor_size") or (0, 0)
    w, h = (int(v) for v in list(size)[:2])
    parts = [f"{channels}x{h}x{w}"]
    count, window = binning.get("event_count"), binning.get("time_window_us")
    if count:
        parts.append(f"{int(count)} events per bin")
    elif window:
        parts.append(f"{int(window) / 1000:g} ms bins")
    denoise = binning.get("denoise_us") or 0
    if denoise:
        parts.append(f"denoised ({int(denoise) / 1000:g} ms)" if detail else "denoised")
    if detail and binning.get("sensor_size"):
        sw, sh = (int(v) for v in list(binning["sensor_size"])[:2])
        parts.append(f"from a {sw}x{sh} sensor")
    return ", ".join(parts)


@dataclass(frozen=True)
class ModelSummary:
    """What the model chooser says about one checkpoint."""

    path: Path
    name: str
    training: str  # one of TRAINING_DATA
    trained_on: str  # the checkpoint's own words
    input: str  # input_text(binning)
    input_detail: str  # input_text(binning, detail=True)
    time_steps: int | None = None
    error: str = ""  # why its header could not be read ("" when it could)

    @property
    def entry(self) -> str:
        """The chooser's entry: name and training data (elided by the GUI to fit)."""
        return f"{self.name} · {self.training}"

    @property
    def tooltip(self) -> str:
        """The full text: name, training data in the checkpoint's words, input, T."""
        if self.error:
            return f"{self.name}\n{self.path}\ncannot read its metadata: {self.error}"
        lines = [self.name, f"trained on: {self.training}"]
        if self.trained_on and self.trained_on.lower() != self.training.lower():
            lines.append(f"its checkpoint says: {self.trained_on}")
        steps = f", T={self.time_steps}" if self.time_steps else ""
        lines.append(f"input: {self.input_detail}{steps}")
        lines.append(str(self.path))
        return "\n".join(lines)


def summarise_checkpoint(path: str | Path) -> ModelSummary:
    """Read ``path``'s header (no model is built) into a :class:`ModelSummary`; a file that
    cannot be read gives "unknown" with the reason in ``error``."""
    from dvsapp.snn.checkpoint import inspect_checkpoint

    p = Path(path)
    try:
        meta = inspect_checkpoint(p)
    except Exception as e:  # a broken or foreign file: still listed, as unknown
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        return ModelSummary(p, p.stem, UNKNOWN, "", "unknown input", "unknown input", None, reason)
    binning = meta.get("binning") or {}
    trained_on = str(meta.get("trained_on") or "")
    steps = meta.get("time_steps")
    return ModelSummary(
        path=p,
        name=p.stem,
        training=training_data(trained_on),
        trained_on=trained_on,
        input=input_text(binning),
        input_detail=input_text(binning, detail=True),
        time_steps=int(steps) if isinstance(steps, int) and steps > 0 else None,
    )


def recording_origin(
    path: str | Path | None,
    format_name: str,
    sensor_size: tuple[int, ...],
    metadata: Mapping[str, Any],
) -> RecordingOrigin:
    """Whether a recording is a real DVS128 one, one of ours, or other (module docstring),
    from what its reader knows: ``reader.path``, ``reader.format_name``,
    ``reader.sensor_size`` and ``reader.metadata``."""
    p = None if path is None else Path(path)
    fmt = (format_name or "").lower()
    if p is not None and _SYNTH_NAME.match(p.name):
        return RecordingOrigin(p, SYNTHETIC_RECORDING, "named like `dvsapp synth` output")
    start = str(metadata.get("start_time") or "")
    if fmt.startswith("aedat3") and start.startswith(_EPOCH_START):
        return RecordingOrigin(p, SYNTHETIC_RECORDING, "AEDAT 3.1 with `dvsapp synth`'s start time")
    stream_source = str(metadata.get("source") or "")
    if fmt == "aedat4" and stream_source.lower() == "dvsapp":
        return RecordingOrigin(p, SYNTHETIC_RECORDING, "AEDAT4 written by dvsapp")
    if tuple(sensor_size[:2]) != (128, 128):
        w, h = (int(v) for v in sensor_size[:2])
        return RecordingOrigin(p, OTHER, f"a {w}x{h} sensor, not a DVS128")
    if fmt.startswith("aedat2") and str(metadata.get("chip", "")).upper() == "DVS128":
        return RecordingOrigin(p, REAL_DVS128, "a jAER AEDAT 2.0 recording from a DVS128")
    if fmt.startswith("aedat3"):
        sources = metadata.get("sources") or {}
        names = [str(v).upper() for v in sources.values()]
        if start and any(n.startswith(_DVS128_SOURCES) for n in names):
            return RecordingOrigin(p, REAL_DVS128, "an AEDAT 3.1 recording from a DVS128")
    if fmt == "aedat4" and (
        stream_source.upper().startswith(_DVS128_SOURCES) or _RECORDED_CAMERA.match(stream_source)
    ):
        return RecordingOrigin(p, REAL_DVS128, f"an AEDAT4 recording from {stream_source}")
    return RecordingOrigin(p, OTHER, "nothing in the file names the camera")


def origin_of_reader(reader: Any) -> RecordingOrigin:
    """:func:`recording_origin` of an open :class:`~dvsapp.events.readers.base.EventReader`."""
    return recording_origin(
        getattr(reader, "path", None),
        str(getattr(reader, "format_name", "")),
        tuple(getattr(reader, "sensor_size", (0, 0))),
        dict(getattr(reader, "metadata", {}) or {}),
    )


def suggest_model(
    origin: RecordingOrigin | None,
    loaded_training: str | None,
    loaded_path: Path | None,
    candidates: Iterable[ModelSummary],
) -> ModelSummary | None:
    """The model to suggest for ``origin`` while a model trained on ``loaded_training`` (one
    of :data:`TRAINING_DATA`; None: nothing loaded yet) from ``loaded_path`` runs: a model
    trained on real DVS128 Gesture (:data:`GESTURE_MODEL` first) when the recording is a real
    DVS128 one and the loaded model was trained on anything else; None otherwise."""
    if origin is None or origin.kind != REAL_DVS128 or loaded_training is None:
        return None
    if loaded_training == DVS128_GESTURE:
        return None
    fits = [c for c in candidates if c.training == DVS128_GESTURE and not c.error]
    fits.sort(key=lambda c: c.name != GESTURE_MODEL)
    for c in fits:
        if loaded_path is None or _resolved(c.path) != _resolved(loaded_path):
            return c
    return None


def _resolved(p: Path) -> Path:
    try:
        return Path(p).resolve()
    except OSError:
        return Path(p)


class RecordingAdvice:
    """The open replay's origin and how it differs from the model's training data, worked
    out again only when the recording, the model or the known duration change (header
    facts only; advice never stops the stream: a failure gives none)."""

    def __init__(self) -> None:
        self._origin_for: object = None
        self._origin: RecordingOrigin | None = None
        self._warned_for: tuple[Any, ...] = ()
        self._warnings: tuple[tuple[str, ...], str] = ((), "")

    def origin(self, rec: Any) -> RecordingOrigin | None:
        """``rec`` (a :class:`~dvsapp.session.loading.Recording`)'s origin; None for none or a
        live source."""
        replay = None if rec is None else rec.replay
        if replay is None:
            return None
        if self._origin_for is not rec:
            self._origin_for = rec
            try:
                self._origin = origin_of_reader(replay.reader)
            except Exception:
                self._origin = None
        return self._origin

    def warnings(
        self, rec: Any, model: Any, duration_us: int | None
    ) -> tuple[tuple[str, ...], str]:
        """The mismatch warnings (for a trained ``model``) and why the sensor size is a
        guess ("" when it is not)."""
        replay = None if rec is None else rec.replay
        key = (id(rec), id(model), duration_us)
        if key == self._warned_for:
            return self._warnings
        self._warned_for = key
        self._warnings = ((), "")
        if replay is None:
            return self._warnings
        try:
            from dvsapp.advisories import checkpoint_facts, mismatch_warnings, recording_facts

            facts = recording_facts(replay.reader, duration_us)
            found: tuple[str, ...] = ()
            if model is not None and model.trained:
                found = tuple(mismatch_warnings(facts, checkpoint_facts(model.ckpt)))
            self._warnings = (found, facts.sensor_guess)
        except Exception:
            pass
        return self._warnings
