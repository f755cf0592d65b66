"""Constant-cost scrolling history: a ring of columns stored twice, read as one view."""

from __future__ import annotations

import numpy as np


class ColumnRing:
    """``rows x length`` history of columns, oldest to newest, at constant cost per push.

    The buffer holds every column twice (at ``i`` and ``i + length``), so the ordered history
    is always the contiguous-in-time slice ``buf[:, head : head + length]``: no copy, no roll.
    """

    def __init__(self, rows: int, length: int, dtype: np.dtype | type = np.uint8, fill=0) -> None:
        self.rows = int(rows)
        self.length = int(length)
        self.fill = fill
        self._buf = np.full((self.rows, 2 * self.length), fill, dtype=dtype)
        self._head = 0  # index of the oldest column
        self.count = 0  # columns pushed since the last clear

    def clear(self) -> None:
        """Forget the history."""
        self._buf[:] = self.fill
        self._head = 0
        self.count = 0

    def push(self, column: np.ndarray | float) -> None:
        """Append one column (``rows`` values, or a scalar); the oldest falls off."""
        i = self._head
        self._buf[:, i] = column
        self._buf[:, i + self.length] = column
        self._head = (i + 1) % self.length
        self.count += 1

    def view(self) -> np.ndarray:
        """The history, oldest column first (a view: do not keep it across pushes)."""
        return self._buf[:, self._head : self._head + self.length]

    def latest(self) -> np.ndarray:
        """The newest column (a view)."""
        return self._buf[:, (self._head - 1) % self.length]

    def load_row(self, row: int, ordered: np.ndarray) -> None:
        """Overwrite one row's whole history (``length`` values, oldest first)."""
        h, n = self._head, self.length
        self._buf[row, h : h + n] = ordered
        self._buf[row, :h] = self._buf[row, n : n + h]
        self._buf[row, h + n :] = self._buf[row, h:n]
