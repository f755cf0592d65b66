"""Format detection by content (magic bytes and header), never by extension alone."""

from __future__ import annotations

import os
from pathlib import Path

from dvsapp.errors import EventFileError, UnknownFormatError
from dvsapp.events.readers import READERS
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


def detect_format(path: str | os.PathLike[str]) -> type[EventReader]:
    """The reader class whose format matches the file's content."""
    head = read_head(path)
    if not head:
        raise EventFileError(path, "empty file (0 bytes)")
    for reader_cls in READERS:
        if reader_cls.sniff(head):
            return reader_cls
    raise UnknownFormatError(
        path,
        "unknown format: no AEDAT 2.0/3.1/4.0, Prophesee RAW/DAT, .npy or .npz header found",
        0,
    )


def open_reader(path: str | os.PathLike[str], stream: str | int | None = None) -> EventReader:
    """Open any readable recording with the reader its content calls for.

    ``stream`` picks the event stream (name or id) in formats that hold several (AEDAT4).
    """
    reader_cls = detect_format(path)
    if stream is None:
        return reader_cls(path)
    if reader_cls.format_name != "aedat4":
        raise EventFileError(
            path, f"--stream applies to AEDAT4 files, not {reader_cls.format_name}"
        )
    return reader_cls(path, stream=stream)  # type: ignore[call-arg]
