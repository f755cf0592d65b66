"""argparse value types shared by the ``dvsapp`` subcommands (no heavy imports)."""

from __future__ import annotations

import argparse


def size(text: str) -> tuple[int, int]:
    """``WIDTHxHEIGHT`` (e.g. ``64x64``) as ``(width, height)``."""
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from None
    return w, h


def positive_int(text: str) -> int:
    """An integer >= 1 (e.g. a thread count)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value
