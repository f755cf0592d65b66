"""N-MNIST and N-Caltech101 ``.bin`` samples (Orchard et al. 2015, recorded with an ATIS).

Format: no header; 5 bytes (40 bits) per event, big-endian bit fields: byte 0 = x, byte 1 = y,
byte 2 bit 7 = polarity, then a 23-bit timestamp in microseconds (byte 2 bits 0-6, bytes 3
and 4). This is the decode of tonic's ``tonic.io.read_mnist_file`` (itself from the dataset's
``Read_Ndataset.m``); we have our own because tonic's loads the whole file and neither streams,
seeks nor validates.

Conventions: x is the column and y the row with the origin top-left, as tonic serves them
(N-MNIST digits come out upright). Polarity bit 1 is ON (``Read_Ndataset.m``: "1 means off,
2 means on" after adding 1) and tonic keeps the bit as its ``p``, so ``p = bit == 1``: no
flip, and our events equal tonic's field for field. Timestamps are kept as they are.

Which dataset (detection also needs the ``.bin`` name and plausible events, :func:`implausible`):
a parent folder that is a digit under ``Train/`` or ``Test/`` (the N-MNIST layout) gives
``nmnist``; a parent folder named after an N-Caltech101 category gives ``ncaltech101``;
otherwise coordinates beyond 33 give ``ncaltech101`` and a file that fits 34x34 is read as
N-MNIST, flagged ``metadata["dataset"] = "N-MNIST-like"``. ``fmt="nmnist"``/``"ncaltech101"``
forces either.

Sensor: N-MNIST is 34x34 (tonic's ``NMNIST.sensor_size``). N-Caltech101 samples differ in size
(tonic: ``sensor_size = None``), so we report the bounding box of the file's events (max x + 1,
max y + 1, one scan at open), flagged in ``metadata["sensor_size_from"]``. We do not shift the
events to the origin as tonic's ``NCALTECH101`` dataset class does (``read_mnist_file`` does
not either).

Labels: ``Train|Test/<digit>/*.bin`` -> that digit; ``<category>/*.bin`` -> the category's
index in :data:`NCALTECH101_CLASSES`. One segment covers the file (first t .. last t + 1).

Timestamps: 23 bits wrap after 8.388608 s, far beyond a ~0.3 s sample, so a real file never
wraps; a longer one is refused with a clear message (the clock cannot tell how often it
wrapped). tonic also treats an event with y = 240 as a "timestamp overflow" marker (+2**13 us
for the events after it, from Orchard's event-Python); no N-MNIST or N-Caltech101 file holds
one (none in 1,001 real samples) and y = 240 lies outside the 304x240 ATIS, so it is refused
with that hint rather than guessed at.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from dvsapp.errors import EventFileError
from dvsapp.events.readers.base import EventReader
from dvsapp.events.types import EVENT_DTYPE, LabelSegment

EVENT_BYTES = 5
#: The timestamp field wraps at this many microseconds (8.388608 s).
T_WRAP_US = 1 << 23
ATIS_SIZE = (304, 240)
NMNIST_SIZE = (34, 34)
#: Detection needs this many complete events in the file's head ...
SNIFF_MIN_EVENTS = 16
#: ... the first of them at most this late (real samples start within 8 ms) ...
SNIFF_FIRST_T_MAX_US = 1_000_000
#: Events per chunk of the scans at open.
_SCAN_EVENTS = 1 << 18

#: N-Caltech101's folders in tonic's order (``os.walk`` with ``dirs.sort()``: plain sorted
#: names, capitals first); a sample's label is its folder's index here. Caltech101's 101
#: categories and BACKGROUND_Google, less "Faces", which N-Caltech101 removed (Faces_easy stays):
#: 100 object classes and the background.
NCALTECH101_CLASSES: tuple[str, ...] = (
    "BACKGROUND_Google",
    "Faces_easy",
    "Leopards",
    "Motorbikes",
    "accordion",
    "airplanes",
    "anchor",
    "ant",
    "barrel",
    "bass",
    "beaver",
    "binocular",
    "bonsai",
    "brain",
    "brontosaurus",
    "buddha",
    "butterfly",
    "camera",
    "cannon",
    "car_side",
    "ceiling_fan",
    "cellphone",
    "chair",
    "chandelier",
    "cougar_body",
    "cougar_face",
    "crab",
    "crayfish",
    "crocodile",
    "crocodile_head",
    "cup",
    "dalmatian",
    "dollar_bill",
    "dolphin",
    "dragonfly",
    "electric_guitar",
    "elephant",
    "emu",
    "euphonium",
    "ewer",
    "ferry",
    "flamingo",
    "flamingo_head",
    "garfield",
    "gerenuk",
    "gramophone",
    "grand_piano",
    "hawksbill",
    "headphone",
    "hedgehog",
    "helicopter",
    "ibis",
    "inline_skate",
    "joshua_tree",
    "kangaroo",
    "ketch",
    "lamp",
    "laptop",
    "llama",
    "lobster",
    "lotus",
    "mandolin",
    "mayfly",
    "menorah",
    "metronome",
    "minaret",
    "nautilus",
    "octopus",
    "okapi",
    "pagoda",
    "panda",
    "pigeon",
    "pizza",
    "platypus",
    "pyramid",
    "revolver",
    "rhino",
    "rooster",
    "saxophone",
    "schooner",
    "scissors",
    "scorpion",
    "sea_horse",
    "snoopy",
    "soccer_ball",
    "stapler",
    "starfish",
    "stegosaurus",
    "stop_sign",
    "strawberry",
    "sunflower",
    "tick",
    "trilobite",
    "umbrella",
    "watch",
    "water_lilly",
    "wheelchair",
    "wild_cat",
    "windsor_chair",
    "wrench",
    "yin_yang",
)


def columns(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x, y, t (int64 us) and p (bool, True = ON) of ``raw``, an (n, 5) uint8 array."""
    b2 = raw[:, 2]
    t = (b2 & 0x7F).astype(np.int64) << 16
    t |= raw[:, 3].astype(np.int64) << 8
    t |= raw[:, 4]
    return raw[:, 0], raw[:, 1], t, b2 >= 0x80


def implausible(head: bytes) -> str | None:
    """Why ``head`` (a file's first bytes) does not look like these events, or None when it
    does: at least :data:`SNIFF_MIN_EVENTS` complete events, all inside the 304x240 ATIS,
    timestamps that never go back and do advance, the first within
    :data:`SNIFF_FIRST_T_MAX_US`. A partial last event is ignored, so that a truncated sample
    is recognised and its error says what is wrong."""
    n = len(head) // EVENT_BYTES
    if n < SNIFF_MIN_EVENTS:
        return f"only {n} complete 5-byte events, detection needs {SNIFF_MIN_EVENTS}"
    raw = np.frombuffer(head, np.uint8, n * EVENT_BYTES).reshape(n, EVENT_BYTES)
    x, y, t, _ = columns(raw)
    outside = (x >= ATIS_SIZE[0]) | (y >= ATIS_SIZE[1])
    if outside.any():
        i = int(np.argmax(outside))
        return f"x={x[i]}, y={y[i]} at byte {i * EVENT_BYTES} is outside the 304x240 ATIS"
    if t[0] > SNIFF_FIRST_T_MAX_US:
        return f"the first timestamp, {t[0]} us, is later than {SNIFF_FIRST_T_MAX_US} us"
    back = np.flatnonzero(t[1:] < t[:-1])
    if len(back):
        return f"the timestamp goes back at byte {(int(back[0]) + 1) * EVENT_BYTES}"
    if t[-1] == t[0]:
        return "the timestamps never advance"
    return None


def plausible(head: bytes) -> bool:
    """True when ``head`` looks like these events (see :func:`implausible`)."""
    return implausible(head) is None


def nmnist_label(path: Path) -> int | None:
    """The digit of an N-MNIST layout path ``.../Train|Test/<digit>/<name>``, else None."""
    folder = path.parent.name
    if len(folder) == 1 and folder in "0123456789":
        return int(folder) if path.parent.parent.name.lower() in ("train", "test") else None
    return None


def ncaltech101_label(path: Path) -> int | None:
    """The class index of an N-Caltech101 layout path ``.../<category>/<name>``, else None."""
    name = path.parent.name
    return NCALTECH101_CLASSES.index(name) if name in NCALTECH101_CLASSES else None


def _map(path: Path) -> np.ndarray:
    """The file's events as an (n, 5) read-only memory map; one-line errors for an
    unreadable, empty or truncated file."""
    if path.is_dir():
        raise EventFileError(path, "is a directory, not a recording")
    try:
        n, rest = divmod(path.stat().st_size, EVENT_BYTES)
        if n and not rest:
            return np.memmap(path, dtype=np.uint8, mode="r", shape=(n, EVENT_BYTES))
    except FileNotFoundError:
        raise EventFileError(path, "no such file") from None
    except PermissionError:
        raise EventFileError(path, "permission denied (cannot read the file)") from None
    except OSError as e:
        raise EventFileError(path, f"cannot read: {e.strerror or e}") from None
    if not (n or rest):
        raise EventFileError(path, "empty file (0 bytes)")
    raise EventFileError(
        path,
        f"truncated final event: {rest} trailing bytes after {n} complete 5-byte events",
        n * EVENT_BYTES,
    )


def _exceeds_nmnist(path: Path) -> bool:
    """Whether any complete event of the file lies outside 34x34 (stops at the first)."""
    n = path.stat().st_size // EVENT_BYTES
    if n == 0:
        return False
    raw = np.memmap(path, dtype=np.uint8, mode="r", shape=(n, EVENT_BYTES))
    for i in range(0, n, _SCAN_EVENTS):
        chunk = raw[i : i + _SCAN_EVENTS, :2]
        if chunk[:, 0].max() >= NMNIST_SIZE[0] or chunk[:, 1].max() >= NMNIST_SIZE[1]:
            return True
    return False


def dataset_of(path: Path) -> type[AtisBinReader]:
    """Which dataset's reader a ``.bin`` sample calls for: by folder layout, else by extent."""
    if nmnist_label(path) is not None:
        return NMnistReader
    if ncaltech101_label(path) is not None or _exceeds_nmnist(path):
        return NCaltech101Reader
    return NMnistReader


class AtisBinReader(EventReader):
    """The 40-bit ATIS event stream shared by N-MNIST and N-Caltech101 (see the module)."""

    #: The sensor's name in error messages.
    sensor_name = "ATIS"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        self._raw = _map(self.path)
        self.n_events = len(self._raw)
        self.metadata: dict[str, Any] = {"events": self.n_events}

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return plausible(head)

    @classmethod
    def sniff_file(cls, path: Path, head: bytes) -> bool:
        """Headerless: the ``.bin`` extension, plausible content, and this dataset."""
        return path.suffix.lower() == ".bin" and plausible(head) and dataset_of(path) is cls

    def max_events_hint(self) -> int | None:
        return self.n_events

    def _label(self, label: int | None, name: str) -> None:
        """One segment over the whole file when the folder layout gives a class."""
        if label is None:
            return
        t_first = int(columns(np.asarray(self._raw[:1]))[2][0])
        t_last = int(columns(np.asarray(self._raw[-1:]))[2][0])
        self.labels = [LabelSegment(label, name, t_first, t_last + 1)]

    # -- streaming ---------------------------------------------------------------------
    def _t_at(self, i: int) -> int:
        b = self._raw[i]
        return (int(b[2]) & 0x7F) << 16 | int(b[3]) << 8 | int(b[4])

    def _iter_packets(
        self, start_us: int | None, max_events: int
    ) -> Iterator[tuple[np.ndarray, int | None]]:
        n = self.n_events
        first = 0 if start_us is None else bisect.bisect_left(range(n), start_us, key=self._t_at)
        prev: int | None = None
        for i in range(first, n, max_events):
            events = self._decode(i, min(i + max_events, n), prev)
            prev = int(events["t"][-1])
            yield events, i * EVENT_BYTES

    def _decode(self, lo: int, hi: int, prev: int | None) -> np.ndarray:
        x, y, t, p = columns(np.asarray(self._raw[lo:hi]))
        self._check_order(t, prev, lo)
        self._check_range(x, y, lo, self.sensor_size[:2], self.sensor_name)
        out = np.empty(hi - lo, dtype=EVENT_DTYPE)
        out["x"], out["y"], out["t"], out["p"] = x, y, t, p
        return out

    def _check_order(self, t: np.ndarray, prev: int | None, lo: int) -> None:
        """Refuse a step back in time (a wrapped 23-bit clock gets its own message)."""
        tt = t if prev is None else np.concatenate(([prev], t))
        back = np.flatnonzero(tt[1:] < tt[:-1])
        if not len(back):
            return
        j = int(back[0])
        before, after = int(tt[j]), int(tt[j + 1])
        index = lo + j + (1 if prev is None else 0)  # the event that steps back
        why = f"timestamps go backwards ({after} us after {before} us)"
        if before - after > T_WRAP_US // 2:
            why = (
                f"the 23-bit timestamp wrapped ({after} us after {before} us): recordings over "
                f"{T_WRAP_US / 1e6:g} s cannot be read in this format"
            )
        raise EventFileError(self.path, why, index * EVENT_BYTES)

    def _check_range(
        self, x: np.ndarray, y: np.ndarray, lo: int, size: tuple[int, int], sensor: str
    ) -> None:
        w, h = size
        bad = (x >= w) | (y >= h)
        if not bad.any():
            return
        i = int(np.argmax(bad))
        hint = ""
        if y[i] == ATIS_SIZE[1]:
            hint = (
                " (y=240 would be tonic's timestamp-overflow marker, which no N-MNIST or "
                "N-Caltech101 file holds: refused)"
            )
        raise EventFileError(
            self.path,
            f"event x={x[i]}, y={y[i]} is outside the {w}x{h} {sensor} sensor{hint}",
            (lo + i) * EVENT_BYTES,
        )

    def close(self) -> None:
        self._raw = np.zeros((0, EVENT_BYTES), dtype=np.uint8)


class NMnistReader(AtisBinReader):
    """N-MNIST (34x34); label from ``Train|Test/<digit>/``."""

    format_name = "nmnist"
    description = "N-MNIST .bin (40-bit ATIS events, 34x34)"
    sensor_name = "N-MNIST"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        self.sensor_size = (*NMNIST_SIZE, 2)
        label = nmnist_label(self.path)
        self.metadata["dataset"] = "N-MNIST" if label is not None else "N-MNIST-like"
        self.metadata["sensor_size_from"] = "N-MNIST (34x34)"
        if label is None:
            self.metadata["note"] = "no Train|Test/<digit>/ folder: read as N-MNIST, no label"
        self._label(label, str(label))


class NCaltech101Reader(AtisBinReader):
    """N-Caltech101 (sensor = the events' bounding box); label from the category folder."""

    format_name = "ncaltech101"
    description = "N-Caltech101 .bin (40-bit ATIS events, bounding-box sensor)"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        super().__init__(path)
        self.sensor_size = (*self._bounding_box(), 2)
        self.metadata["dataset"] = "N-Caltech101"
        self.metadata["sensor_size_from"] = "bounding box of the events (max x + 1, max y + 1)"
        label = ncaltech101_label(self.path)
        self._label(label, self.path.parent.name)

    def _bounding_box(self) -> tuple[int, int]:
        """max + 1 of x and y over the file (one pass); refuses events outside the ATIS."""
        w = h = 0
        for lo in range(0, self.n_events, _SCAN_EVENTS):
            xy = np.asarray(self._raw[lo : lo + _SCAN_EVENTS, :2])
            self._check_range(xy[:, 0], xy[:, 1], lo, ATIS_SIZE, "ATIS")
            w, h = max(w, int(xy[:, 0].max()) + 1), max(h, int(xy[:, 1].max()) + 1)
        return w, h
