"""DVS128 Gesture side files: per-recording label CSVs and the train/test trial lists.

The IBM DVS128 Gesture dataset (``DvsGesture/``) holds, for each recording ``userNN_<light>.aedat``
(AEDAT 3.1), a ``userNN_<light>_labels.csv`` with the header ``class,startTime_usec,endTime_usec``
and one row per gesture window (class ids 1..11, times in the recording's microseconds). Classes
repeat within a file and some windows overlap (e.g. ``user22_led``); both are kept as given,
sorted by start time. ``trials_to_train.txt`` / ``trials_to_test.txt`` list one ``.aedat`` name
per line, with blank lines allowed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from dvsapp.errors import EventFileError
from dvsapp.events.types import DVS_GESTURE_CLASSES, LabelSegment

#: The label CSV's header row (compared case-insensitively, spaces ignored).
LABELS_HEADER = ("class", "starttime_usec", "endtime_usec")
#: Trial list file names per split, as shipped in ``DvsGesture.tar.gz``.
TRIAL_FILES = {"train": "trials_to_train.txt", "test": "trials_to_test.txt"}
#: Side files are small (the real ones are < 1 KiB); refuse anything absurdly large.
MAX_SIDE_FILE_BYTES = 1 << 20


def labels_path_for(aedat_path: str | os.PathLike[str]) -> Path:
    """The label CSV that belongs beside a recording: ``<stem>_labels.csv``."""
    p = Path(aedat_path)
    return p.with_name(f"{p.stem}_labels.csv")


def _read_small(path: Path) -> bytes:
    """The whole content of a small text side file, with OS errors as EventFileError."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SIDE_FILE_BYTES + 1)
    except FileNotFoundError:
        raise EventFileError(path, "no such file") from None
    except OSError as e:
        raise EventFileError(path, f"cannot read: {e.strerror or e}") from None
    if len(data) > MAX_SIDE_FILE_BYTES:
        raise EventFileError(
            path, f"too large for a DVS-Gesture side file (> {MAX_SIDE_FILE_BYTES} bytes)"
        )
    return data


def _lines(path: Path, data: bytes) -> Iterator[tuple[int, int, str]]:
    """(1-based line number, byte offset, stripped text) of every non-blank line."""
    offset = 0
    for number, raw in enumerate(data.splitlines(keepends=True), start=1):
        try:
            text = raw.decode("utf-8-sig" if offset == 0 else "utf-8").strip()
        except UnicodeDecodeError:
            raise EventFileError(path, f"line {number} is not UTF-8 text", offset) from None
        if text:
            yield number, offset, text
        offset += len(raw)


def _parse_label_row(path: Path, number: int, offset: int, text: str) -> LabelSegment:
    fields = [f.strip() for f in text.split(",")]
    if len(fields) != 3:
        raise EventFileError(
            path, f"line {number}: expected 3 comma-separated fields, got {len(fields)}", offset
        )
    try:
        class_id, start, end = (int(f) for f in fields)
    except ValueError:
        raise EventFileError(
            path, f"line {number}: fields must be integers: {text!r}", offset
        ) from None
    if not 1 <= class_id <= len(DVS_GESTURE_CLASSES):
        raise EventFileError(
            path, f"line {number}: class {class_id} outside 1..{len(DVS_GESTURE_CLASSES)}", offset
        )
    if start < 0 or end <= start:
        raise EventFileError(
            path, f"line {number}: window [{start}, {end}) us is negative or empty", offset
        )
    label = class_id - 1
    return LabelSegment(label, DVS_GESTURE_CLASSES[label], start, end)


def parse_labels_csv(path: str | os.PathLike[str]) -> list[LabelSegment]:
    """The labelled windows of one recording, sorted by start time (stable, duplicates kept).

    Raises EventFileError (with the line number and its byte offset) on a missing or wrong
    header, a row that is not three integers, a class outside 1..11 or an empty window.
    """
    p = Path(path)
    lines = _lines(p, _read_small(p))
    first = next(lines, None)
    if first is None:
        raise EventFileError(p, "empty label file (no header row)", 0)
    number, offset, text = first
    header = tuple(f.strip().lower() for f in text.split(","))
    if header != LABELS_HEADER:
        raise EventFileError(
            p,
            f"line {number}: expected header 'class,startTime_usec,endTime_usec', got {text!r}",
            offset,
        )
    segments = [_parse_label_row(p, n, o, t) for n, o, t in lines]
    return sorted(segments, key=lambda s: s.t_start_us)


def read_trials(path: str | os.PathLike[str]) -> list[str]:
    """The ``.aedat`` names listed in a ``trials_to_{train,test}.txt`` (blank lines skipped)."""
    p = Path(path)
    names = []
    for number, offset, text in _lines(p, _read_small(p)):
        if not text.lower().endswith(".aedat") or "/" in text or "\\" in text:
            raise EventFileError(p, f"line {number}: not a bare .aedat file name: {text!r}", offset)
        names.append(text)
    return names


@dataclass(frozen=True)
class GestureRecording:
    """One DVS128 Gesture recording: its file, split, label CSV, subject and lighting."""

    path: Path
    split: str
    labels_path: Path | None
    user: str
    lighting: str

    @property
    def name(self) -> str:
        return self.path.stem


def _user_and_lighting(stem: str) -> tuple[str, str]:
    """``user01_fluorescent_led`` -> (``user01``, ``fluorescent_led``)."""
    user, _, lighting = stem.partition("_")
    return user, lighting


def list_recordings(
    folder: str | os.PathLike[str], require_files: bool = True
) -> list[GestureRecording]:
    """The recordings of a DVS128 Gesture folder with their split (train, then test, in list order).

    ``require_files`` makes a listed ``.aedat`` that is missing an error; otherwise it is skipped
    (a partial download). A recording listed in both splits is an error. ``labels_path`` is None
    where the CSV is absent.
    """
    root = Path(folder)
    if not root.is_dir():
        raise EventFileError(root, "not a directory (expected the DvsGesture folder)")
    lists = {split: root / name for split, name in TRIAL_FILES.items() if (root / name).is_file()}
    if not lists:
        raise EventFileError(
            root, "no trials_to_train.txt or trials_to_test.txt: not a DVS128 Gesture folder"
        )
    seen: dict[str, str] = {}
    out = []
    for split, list_path in lists.items():
        for name in read_trials(list_path):
            if name in seen:
                raise EventFileError(
                    list_path, f"{name} is listed in both {seen[name]} and {split}"
                )
            seen[name] = split
            path = root / name
            if not path.is_file():
                if require_files:
                    raise EventFileError(path, f"listed in {list_path.name} but missing")
                continue
            csv = labels_path_for(path)
            user, lighting = _user_and_lighting(path.stem)
            out.append(
                GestureRecording(path, split, csv if csv.is_file() else None, user, lighting)
            )
    return out
