"""Format detection by content (magic bytes and header), never by extension alone: the one
headerless format (N-MNIST/N-Caltech101 ``.bin``) needs its extension AND plausible content,
and is tried last. ``fmt=`` names a format instead (:func:`format_names`)."""

from __future__ import annotations

import os
from pathlib import Path

from dvsapp.errors import ConfigError, EventFileError, UnknownFormatError
from dvsapp.events.readers import READERS
from dvsapp.events.readers.atis_bin import implausible
from dvsapp.events.readers.base import EventReader

SNIFF_BYTES = 1 << 16


def read_head(path: str | os.PathLike[str], n: int = SNIFF_BYTES) -> bytes:
    """The first ``n`` bytes of a file, with OS errors turned into one-line EventFileErrors."""
    p = Path(path)
    try:
        if p.is_dir():
            raise EventFileError(p, "is a directory, not a recording")
        with open(p, "rb") as f:
            return f.read(n)
    except FileNotFoundError:
        raise EventFileError(p, "no such file") from None
    except PermissionError:
        raise EventFileError(p, "permission denied (cannot read the file)") from None
    except IsADirectoryError:
        raise EventFileError(p, "is a directory, not a recording") from None
    except OSError as e:
        raise EventFileError(p, f"cannot read: {e.strerror or e}") from None


def format_names() -> list[str]:
    """The names ``fmt=`` (and ``--format``) accept: every reader's ``format_name``."""
    return [reader_cls.format_name for reader_cls in READERS]


def reader_class(fmt: str) -> type[EventReader]:
    """The reader of a format name (case, ``-`` and ``_`` ignored: ``N-MNIST`` is ``nmnist``);
    ConfigError listing the known names otherwise."""
    key = fmt.lower().replace("-", "").replace("_", "")
    for reader_cls in READERS:
        if reader_cls.format_name == key:
            return reader_cls
    raise ConfigError(f"unknown format {fmt!r}: known formats are {', '.join(format_names())}")


def detect_format(path: str | os.PathLike[str], fmt: str | None = None) -> type[EventReader]:
    """The reader class whose format matches the file's content, or the one ``fmt`` names
    (which skips detection: needed for a headerless file without its ``.bin`` name)."""
    reader_cls = None if fmt is None else reader_class(fmt)
    head = read_head(path)
    if not head:
        raise EventFileError(path, "empty file (0 bytes)")
    if reader_cls is not None:
        return reader_cls
    p = Path(path)
    for reader_cls in READERS:
        if reader_cls.sniff_file(p, head):
            return reader_cls
    why = "no AEDAT 2.0/3.1/4.0, Prophesee RAW/DAT, .npy or .npz header found"
    if p.suffix.lower() == ".bin":
        why += (
            f", and not plausible N-MNIST/N-Caltech101 events ({implausible(head)}): "
            "--format nmnist or ncaltech101 reads it anyway"
        )
    else:
        why += " (--format NAME forces a format)"
    raise UnknownFormatError(path, f"unknown format: {why}", 0)


def open_reader(
    path: str | os.PathLike[str], stream: str | int | None = None, fmt: str | None = None
) -> EventReader:
    """Open any readable recording with the reader its content (or ``fmt``) calls for.

    ``stream`` picks the event stream (name or id) in formats that hold several (AEDAT4);
    ``fmt`` forces a format by name (:func:`format_names`).
    """
    reader_cls = detect_format(path, fmt)
    if stream is None:
        return reader_cls(path)
    if reader_cls.format_name != "aedat4":
        raise EventFileError(
            path, f"--stream applies to AEDAT4 files, not {reader_cls.format_name}"
        )
    return reader_cls(path, stream=stream)  # type: ignore[call-arg]
