"""Host-side frame planning: which frames a packet closes and how many events each gets.

The plan never touches pixels. Events arrive in time order, so each frame's events are a
contiguous run of the packet; a plan is the run lengths (one per output frame, plus the open
frame last). Back ends turn run lengths into per-event frame offsets and scatter on their own
device. All work here is O(frames) or one vectorised pass over ``t``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Plan:
    """What one push (or advance) emits.

    Attributes:
        bins: relative bin index of each emitted frame (0 = the bin open before the call).
        counts: packet events per emitted frame, then the events of the new open frame
            (length ``len(bins) + 1``; sums to the packet size).
        open_bin: relative index of the bin left open.
        run: empty bins closed since the last non-empty one, saturated at the cap.
        skipped: empty bins dropped by the cap.
    """

    bins: np.ndarray
    counts: np.ndarray
    open_bin: int
    run: int
    skipped: int


def clamp_late(t: np.ndarray, floor: int) -> tuple[np.ndarray, int]:
    """``t`` made non-decreasing and ``>= floor`` (late events join the open bin).

    Returns the (possibly copied) times and the number of events moved. ``t`` itself is
    returned, without a copy, when it is already in order (the usual case).
    """
    if t[0] >= floor and (t.size < 2 or bool(np.all(t[1:] >= t[:-1]))):
        return t, 0
    fixed = np.maximum(t, floor)
    np.maximum.accumulate(fixed, out=fixed)
    return fixed, int(np.count_nonzero(fixed != t))


def present_bins(t: np.ndarray, start: int, window: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Non-empty bins of sorted times ``t >= start`` on the grid ``start + k * window``.

    Returns (bins, events per bin, bin of the last event). Dense recordings use one
    ``searchsorted`` over the bin edges; sparse ones (huge gaps) a per-event division.
    """
    n = t.size
    last = (int(t[-1]) - start) // window
    if last == 0:
        return np.zeros(1, np.int64), np.array([n], np.int64), 0
    if last <= 2 * n + 64:
        edges = start + window * np.arange(1, last + 1, dtype=np.int64)
        counts = np.diff(np.searchsorted(t, edges), prepend=0, append=n)
        bins = np.flatnonzero(counts)
        return bins, counts[bins], last
    rel = (t - start) // window
    firsts = np.flatnonzero(np.diff(rel, prepend=-1))
    return rel[firsts], np.diff(firsts, append=n), last


def emission_plan(
    bins: np.ndarray,
    counts: np.ndarray,
    open_bin: int,
    *,
    open_has_events: bool,
    run: int,
    cap: int | None,
) -> Plan:
    """Close relative bins ``0 .. open_bin - 1`` given the packet's non-empty ``bins``.

    ``open_has_events`` says whether bin 0 already holds events from earlier packets. At most
    ``cap`` empty frames are emitted in a row, counting the ``run`` already emitted before
    this call; the rest of a gap is skipped (``cap=None``: no limit).
    """
    bins, counts = _with_open_bin(bins, counts, open_has_events)
    is_open = bins == open_bin
    anchors, anchor_counts = bins[~is_open], counts[~is_open]
    open_count = int(counts[is_open].sum())
    nxt = np.append(anchors[1:], open_bin)[: anchors.size]
    gaps = nxt - anchors - 1
    kept = gaps if cap is None else np.minimum(gaps, cap)
    first = int(anchors[0]) if anchors.size else open_bin
    lead = first if cap is None else min(first, max(cap - run, 0))
    lens = kept + 1
    block_starts = lead + np.cumsum(lens) - lens
    total = lead + int(lens.sum())
    out_bins = np.arange(total, dtype=np.int64)
    tail = np.arange(total - lead, dtype=np.int64) - np.repeat(block_starts - lead, lens)
    out_bins[lead:] = np.repeat(anchors, lens) + tail
    out_counts = np.zeros(total + 1, np.int64)
    out_counts[block_starts] = anchor_counts
    out_counts[total] = open_count
    new_run = _run_after(anchors, open_bin, bool(np.any(is_open)), run, cap)
    skipped = first - lead + int((gaps - kept).sum())
    return Plan(out_bins, out_counts, open_bin, new_run, skipped)


def _with_open_bin(
    bins: np.ndarray, counts: np.ndarray, open_has_events: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Add bin 0 (with no packet events) when it holds earlier events but none of this packet."""
    if open_has_events and (bins.size == 0 or bins[0] != 0):
        return np.insert(bins, 0, 0), np.insert(counts, 0, 0)
    return bins, counts


def _run_after(
    anchors: np.ndarray, open_bin: int, open_nonempty: bool, run: int, cap: int | None
) -> int:
    """Empty bins closed in a row before the open bin, after this call (saturated at cap)."""
    if open_nonempty or cap is None:
        return 0
    closed_empty = open_bin - int(anchors[-1]) - 1 if anchors.size else run + open_bin
    return min(closed_empty, cap)


def count_plan(n_open: int, n: int, event_count: int) -> np.ndarray:
    """Packet events per frame in count mode: the frames it completes, then the open one."""
    done = (n_open + n) // event_count
    bounds = np.arange(1, done + 1, dtype=np.int64) * event_count - n_open
    return np.diff(bounds, prepend=0, append=n)
