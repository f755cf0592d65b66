"""NumPy recordings: tonic's DVSGesture ``.npy``, structured ``.npy`` and our own ``.npz``.

``.npy`` (memory-mapped, so it streams; ``allow_pickle=False`` always)
    * tonic's cached DVS128 Gesture: a 2-D array of 4 columns ``x, y, p, t`` with ``t`` in
      MILLISECONDS (float). We convert to ``t_us = round(t * 1000)``; tonic itself multiplies
      in place and casts, which truncates (1.2345 ms can become 1234 us, we give 1235 us).
      Sensor 128x128, ``p`` 0/1 with 1 = ON, origin top-left as tonic serves it. A file named
      ``<n>.npy`` (tonic's layout) reports ``metadata["target"] = n``, tonic's class index.
    * any structured array with fields ``x, y, t, p`` (any order, extra fields ignored), ``t``
      in microseconds (a float ``t`` is rounded), ``p > 0`` is ON (so 0/1, False/True and
      -1/+1 all work). Nothing in such a file gives the sensor size: it is ``max + 1`` of the
      coordinates, found by one pass at open (expelliarmus' ``evt3_sample.npy`` gives
      1280x720). Negative coordinates are refused.

``.npz`` (our own format, written by :func:`dvsapp.events.writers.write_npz`)
    1-D arrays ``x``, ``y``, ``t`` (us), ``p`` of equal length, scalars ``width`` and
    ``height``, and optionally the label arrays ``label_ids``, ``label_names``,
    ``label_t_start_us``, ``label_t_end_us`` (all four, of equal length). Members are read as
    streams from the zip (stored or deflated), so the file is never loaded whole. ``p > 0`` is
    ON. Detection: the zip magic and ``.npy`` members with our names among the local headers
    in the first 64 KiB (``x.npy`` and ``t.npy`` both, when the head holds every member).

Errors: a layout other than these, object arrays, truncated data, coordinates outside the
sensor and a bad zip all raise EventFileError (``.npy``: with the byte offset).
"""

from __future__ import annotations

import bisect
import os
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from dvsapp.errors import EventFileError
from dvsapp.events.readers.base import EventReader
from dvsapp.events.types import DVS_GESTURE_CLASSES, EVENT_DTYPE, LabelSegment

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
TONIC_GESTURE_SIZE = (128, 128)
EVENT_FIELDS = ("x", "y", "t", "p")
NPZ_COLUMNS = ("x", "y", "t", "p")
NPZ_LABELS = ("label_ids", "label_names", "label_t_start_us", "label_t_end_us")
_NPZ_NAMES = frozenset(f"{n}.npy" for n in (*NPZ_COLUMNS, "width", "height", *NPZ_LABELS))
_COORD_MAX = np.iinfo(np.int16).max
_SCAN_ROWS = 1 << 20
#: Float timestamps must be finite and well inside int64 microseconds.
_FLOAT_T_MAX = 2.0**62


def _numeric(dtype: np.dtype) -> bool:
    return dtype.kind in "biuf"


def _out_of_sensor(x: np.ndarray, y: np.ndarray, size: tuple[int, int]) -> int | None:
    """Index of the first event outside ``size``, or None."""
    w, h = size
    if len(x) and (x.min() < 0 or x.max() >= w or y.min() < 0 or y.max() >= h):
        return int(np.argmax((x < 0) | (x >= w) | (y < 0) | (y >= h)))
    return None


def _why(error: BaseException) -> str:
    """A library's error message on one line."""
    return " ".join(str(error).split()) or type(error).__name__


def _to_us(t: np.ndarray, scale: int) -> np.ndarray:
    """Timestamps times ``scale`` as int64 us; floats are rounded to the nearest us."""
    if t.dtype.kind == "f":
        return np.rint(t * scale).astype(np.int64)
    return t.astype(np.int64) * scale


# -- .npy ------------------------------------------------------------------------------
class NpyReader(EventReader):
    """tonic's DVSGesture ``.npy`` (x, y, p, t in ms) or a structured x/y/t/p array."""

    format_name = "npy"
    description = "NumPy .npy (tonic DVSGesture or structured x/y/t/p)"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        self._data_offset, fortran = self._header()
        self._array = self._load()
        a = self._array
        if a.dtype.names is not None:
            self._layout = "structured"
            self._check_structured(a)
            self._row_bytes = a.dtype.itemsize
            self.sensor_size = (*self._scan_size(), 2)
        elif a.ndim == 2 and a.shape[1] == 4 and _numeric(a.dtype):
            self._layout = "tonic_gesture"
            self._row_bytes = 0 if fortran else 4 * a.dtype.itemsize
            self.sensor_size = (*TONIC_GESTURE_SIZE, 2)
        else:
            raise EventFileError(
                path,
                f"unsupported .npy layout {a.dtype} {a.shape}: expected a structured x/y/t/p "
                "array or tonic's N x 4 (x, y, p, t in ms)",
            )
        self.metadata: dict[str, Any] = {"layout": self._layout, "events": len(a)}
        stem = self.path.stem
        if self._layout == "tonic_gesture" and stem.isdigit() and int(stem) < 11:
            self.metadata["target"] = int(stem)
            self.metadata["target_name"] = DVS_GESTURE_CLASSES[int(stem)]

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head.startswith(NPY_MAGIC)

    def _header(self) -> tuple[int, bool]:
        """(byte offset of the data, Fortran order) from the .npy header."""
        try:
            with open(self.path, "rb") as f:
                version = np.lib.format.read_magic(f)
                _, fortran, dtype = _read_npy_header(f, version)
                if dtype.hasobject:
                    raise EventFileError(self.path, "holds Python objects (refused: no pickle)")
                return f.tell(), fortran
        except EventFileError:
            raise
        except Exception as e:  # numpy's header parser raises many kinds on garbage
            raise EventFileError(self.path, f"not a readable .npy file: {_why(e)}", 0) from None

    def _load(self) -> np.ndarray:
        try:
            return np.load(self.path, mmap_mode="r", allow_pickle=False)
        except Exception as e:
            if not (isinstance(e, ValueError) and "empty" in str(e).lower()):
                msg = f"truncated or unreadable .npy: {_why(e)}"
                raise EventFileError(self.path, msg) from None
        return np.load(self.path, allow_pickle=False)  # an empty array cannot be mapped

    def _check_structured(self, a: np.ndarray) -> None:
        names = a.dtype.names or ()
        missing = [n for n in EVENT_FIELDS if n not in names]
        if missing:
            raise EventFileError(self.path, f"structured .npy lacks fields {missing} (has {names})")
        kinds = {"x": "iu", "y": "iu", "t": "iuf", "p": "biuf"}
        bad = [n for n in EVENT_FIELDS if a.dtype[n].kind not in kinds[n] or a.dtype[n].shape]
        if bad:
            raise EventFileError(self.path, f"fields {bad} are not integer (t, p: numeric) scalars")
        if a.ndim != 1:
            raise EventFileError(self.path, f"structured .npy must be 1-D, not {a.shape}")

    def _scan_size(self) -> tuple[int, int]:
        """max + 1 of x and y over the file (one pass), refusing negative coordinates."""
        a, hi, lo = self._array, [-1, -1], [0, 0]
        for i in range(0, len(a), _SCAN_ROWS):
            chunk = a[i : i + _SCAN_ROWS]
            for k, name in enumerate(("x", "y")):
                col = chunk[name]
                hi[k], lo[k] = max(hi[k], col.max()), min(lo[k], col.min())
        if min(lo) < 0 or max(hi) >= _COORD_MAX:
            raise EventFileError(self.path, f"coordinates outside 0..{_COORD_MAX - 1}")
        return int(hi[0]) + 1, int(hi[1]) + 1

    def _time_column(self) -> np.ndarray:
        a = self._array
        return a["t"] if self._layout == "structured" else a[:, 3]

    def _first_index(self, start_us: int) -> int:
        """Index from which a seek to ``start_us`` must look (binary search on the map)."""
        t = self._time_column()
        key = start_us if self._layout == "structured" else (start_us - 1) / 1000
        return bisect.bisect_left(t, key)

    def _iter_packets(
        self, start_us: int | None, max_events: int
    ) -> Iterator[tuple[np.ndarray, int | None]]:
        a = self._array
        first = 0 if start_us is None else self._first_index(start_us)
        for i in range(first, len(a), max_events):
            offset = self._data_offset + i * self._row_bytes if self._row_bytes else None
            events = self._convert(a[i : i + max_events], offset)
            if start_us is not None:
                events = events[events["t"] >= start_us]
            yield events, offset

    def _convert(self, rows: np.ndarray, offset: int | None) -> np.ndarray:
        if self._layout == "structured":
            x, y, p, t = rows["x"], rows["y"], rows["p"], rows["t"]
            if t.dtype.kind == "f" and not np.all(np.abs(t) < _FLOAT_T_MAX):
                i = int(np.argmin(np.abs(t) < _FLOAT_T_MAX))
                raise EventFileError(self.path, f"timestamp {t[i]} is not a finite time", offset)
            t = _to_us(t, 1)
        else:
            x, y, p, t = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
            self._check_gesture_values(x, y, p, t, offset)
            t = _to_us(t, 1000)
        i = _out_of_sensor(x, y, self.sensor_size[:2])
        if i is not None:
            w, h, _ = self.sensor_size
            raise EventFileError(
                self.path,
                f"event x={x[i]}, y={y[i]} is outside the {w}x{h} sensor",
                None if offset is None else offset + i * self._row_bytes,
            )
        out = np.empty(len(rows), dtype=EVENT_DTYPE)
        out["x"], out["y"], out["t"], out["p"] = x, y, t, p > 0
        return out

    def _check_gesture_values(
        self, x: np.ndarray, y: np.ndarray, p: np.ndarray, t: np.ndarray, offset: int | None
    ) -> None:
        """Whole-number coordinates, 0/1 polarity and finite times (tonic's columns)."""
        bad = (p != 0) & (p != 1)
        if x.dtype.kind == "f":
            bad |= (x != np.floor(x)) | (y != np.floor(y)) | ~(np.abs(t) < _FLOAT_T_MAX / 1000)
        if bad.any():
            i = int(np.argmax(bad))
            raise EventFileError(
                self.path,
                f"row {x[i]}, {y[i]}, {p[i]}, {t[i]} is not an x, y, p, t(ms) event",
                None if offset is None else offset + i * self._row_bytes,
            )

    def close(self) -> None:
        self._array = np.zeros(0, dtype=EVENT_DTYPE)


def _read_npy_header(f: IO[bytes], version: tuple[int, int]) -> tuple[tuple[int, ...], bool, Any]:
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f)
    if version in ((2, 0), (3, 0)):
        return np.lib.format.read_array_header_2_0(f)
    raise ValueError(f"unsupported .npy version {version}")


# -- .npz ------------------------------------------------------------------------------
def zip_member_names(head: bytes) -> tuple[list[str], bool]:
    """Names of the zip members whose local headers lie in ``head``, and whether the walk
    reached the central directory (so that the list is complete)."""
    names, pos = [], 0
    while pos + 30 <= len(head):
        sig = head[pos : pos + 4]
        if sig == b"PK\x01\x02" or sig == b"PK\x05\x06":
            return names, True
        if sig != ZIP_MAGIC:
            return names, False
        flags, csize, nlen, elen = struct.unpack_from("<2xH10xI4xHH", head, pos + 4)
        name = head[pos + 30 : pos + 30 + nlen].decode("utf-8", "replace")
        names.append(name)
        extra = head[pos + 30 + nlen : pos + 30 + nlen + elen]
        if csize == 0xFFFFFFFF:
            csize = _zip64_csize(extra)
        if flags & 0x8 or csize is None:  # sizes in a trailing data descriptor: stop
            return names, False
        pos += 30 + nlen + elen + csize
    return names, False


def _zip64_csize(extra: bytes) -> int | None:
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        if tag == 1 and size >= 16:
            return struct.unpack_from("<Q", extra, pos + 12)[0]
        pos += 4 + size
    return None


class _Column:
    """A 1-D .npy member of a zip, read as a stream."""

    def __init__(self, zf: zipfile.ZipFile, name: str, path: Path) -> None:
        self.name, self.path = name, path
        try:
            self.f = zf.open(f"{name}.npy")
            version = np.lib.format.read_magic(self.f)
            shape, _, self.dtype = _read_npy_header(self.f, version)
        except Exception as e:  # numpy's header parser raises many kinds on garbage
            raise EventFileError(path, f"member {name!r} is unreadable: {_why(e)}") from None
        if self.dtype.hasobject or len(shape) != 1 or not _numeric(self.dtype):
            raise EventFileError(path, f"member {name!r} is not a 1-D numeric array ({shape})")
        self.length = int(shape[0])

    def read(self, n: int) -> np.ndarray:
        data = self.f.read(n * self.dtype.itemsize)
        if len(data) != n * self.dtype.itemsize:
            raise EventFileError(self.path, f"member {self.name!r} is truncated")
        return np.frombuffer(data, dtype=self.dtype)

    def skip(self, n: int) -> None:
        self.f.seek(n * self.dtype.itemsize, os.SEEK_CUR)


class NpzReader(EventReader):
    """Our own .npz: x, y, t (us), p, width, height and optional labels."""

    format_name = "npz"
    description = "dvsapp .npz (x, y, t, p, width, height, labels)"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        with self._zip() as zf:
            names = set(zf.namelist())
            need = {f"{n}.npy" for n in (*NPZ_COLUMNS, "width", "height")}
            if need - names:
                raise EventFileError(path, f"not a dvsapp .npz: no {sorted(need - names)}")
            w, h = self._scalar(zf, "width"), self._scalar(zf, "height")
            if not (0 < w <= _COORD_MAX and 0 < h <= _COORD_MAX):
                raise EventFileError(path, f"implausible sensor size {w}x{h}")
            self.sensor_size = (w, h, 2)
            self.labels = self._read_labels(zf, names)
            lengths = {c: _Column(zf, c, self.path).length for c in NPZ_COLUMNS}
        if len(set(lengths.values())) != 1:
            raise EventFileError(path, f"columns of different lengths {lengths}")
        self.n_events = lengths["t"]
        self.metadata: dict[str, Any] = {"events": self.n_events}

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        if not head.startswith(ZIP_MAGIC):
            return False
        names, complete = zip_member_names(head)
        if not names or not all(n in _NPZ_NAMES for n in names):
            return False
        return {"x.npy", "t.npy"} <= set(names) if complete else True

    def _zip(self) -> zipfile.ZipFile:
        try:
            return zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
            raise EventFileError(self.path, f"not a readable .npz (zip): {_why(e)}") from None

    def _member(self, zf: zipfile.ZipFile, name: str) -> np.ndarray:
        try:
            with zf.open(f"{name}.npy") as f:
                return np.lib.format.read_array(f, allow_pickle=False)
        except Exception as e:  # numpy's header parser raises many kinds on garbage
            raise EventFileError(self.path, f"member {name!r} is unreadable: {_why(e)}") from None

    def _scalar(self, zf: zipfile.ZipFile, name: str) -> int:
        a = self._member(zf, name)
        if a.size != 1 or a.dtype.kind not in "iu":
            raise EventFileError(self.path, f"{name!r} is not an integer scalar")
        return int(a.reshape(()))

    def _read_labels(self, zf: zipfile.ZipFile, names: set[str]) -> list[LabelSegment]:
        present = [n for n in NPZ_LABELS if f"{n}.npy" in names]
        if not present:
            return []
        if len(present) != len(NPZ_LABELS):
            raise EventFileError(self.path, f"incomplete labels: only {present}")
        ids, label_names, start, end = (self._member(zf, n) for n in NPZ_LABELS)
        if len({len(ids), len(label_names), len(start), len(end)}) != 1 or ids.ndim != 1:
            raise EventFileError(self.path, "label arrays of different lengths")
        ints = all(a.dtype.kind in "iu" for a in (ids, start, end))
        if label_names.dtype.kind not in "US" or not ints:
            raise EventFileError(self.path, "label arrays of the wrong types")
        return [
            LabelSegment(int(i), str(n), int(s), int(e))
            for i, n, s, e in zip(ids, label_names.astype(str), start, end, strict=True)
        ]

    def _iter_packets(
        self, start_us: int | None, max_events: int
    ) -> Iterator[tuple[np.ndarray, int | None]]:
        try:
            yield from self._stream(start_us, max_events)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
            raise EventFileError(self.path, f"corrupt .npz member: {_why(e)}") from None

    def _stream(self, start_us: int | None, max_events: int) -> Iterator[tuple[np.ndarray, None]]:
        with self._zip() as zf:
            cols = [_Column(zf, c, self.path) for c in NPZ_COLUMNS]
            done = 0 if start_us is None else self._skip_before(zf, cols, start_us, max_events)
            while done < self.n_events:
                n = min(max_events, self.n_events - done)
                x, y, t, p = (c.read(n) for c in cols)
                i = _out_of_sensor(x, y, self.sensor_size[:2])
                if i is not None:
                    raise EventFileError(
                        self.path, f"event {done + i} (x={x[i]}, y={y[i]}) is outside the sensor"
                    )
                out = np.empty(n, dtype=EVENT_DTYPE)
                out["x"], out["y"], out["t"], out["p"] = x, y, _to_us(t, 1), p > 0
                done += n
                if start_us is not None:
                    out = out[out["t"] >= start_us]
                yield out, None

    def _skip_before(
        self, zf: zipfile.ZipFile, cols: list[_Column], start_us: int, chunk: int
    ) -> int:
        """Skip whole chunks of events before ``start_us`` (reads only ``t``)."""
        t_col = _Column(zf, "t", self.path)
        skip = 0
        while skip < self.n_events:
            n = min(chunk, self.n_events - skip)
            if t_col.read(n)[-1] >= start_us:
                break
            skip += n
        for c in cols:
            c.skip(skip)
        return skip
