"""Typed, one-line errors for bad input. The CLI prints ``str(error)`` and exits 2."""

from __future__ import annotations

import os


class DvsappError(Exception):
    """Base class of every error that a user can cause with bad input."""


class EventFileError(DvsappError):
    """A recording that cannot be read: names the file and, where known, the byte offset."""

    def __init__(
        self, path: str | os.PathLike[str], message: str, offset: int | None = None
    ) -> None:
        self.path = os.fspath(path)
        self.message = message
        self.offset = offset
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" (at byte {self.offset})" if self.offset is not None else ""
        return f"{self.path}: {self.message}{where}"


class UnknownFormatError(EventFileError):
    """The file's content matches no format that dvsapp reads."""


class ConfigError(DvsappError):
    """An invalid configuration value (binning, source options, ...)."""
