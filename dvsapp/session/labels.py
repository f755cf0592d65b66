"""Ground truth for a stream: which label segment covers a time, and whether a window's
prediction names it."""

from __future__ import annotations

from collections.abc import Sequence

from dvsapp.events.types import LabelSegment
from dvsapp.snn.stepper import WindowResult


def segment_at(labels: Sequence[LabelSegment], t_us: int) -> LabelSegment | None:
    """The first label segment with ``t_start_us <= t_us < t_end_us``."""
    return next((s for s in labels if s.t_start_us <= t_us < s.t_end_us), None)


def is_correct(result: WindowResult, segment: LabelSegment, class_names: Sequence[str]) -> bool:
    """Name match, or index match when the segment's name is not one of the model's classes."""
    if segment.name in class_names:
        return result.label == segment.name
    return result.pred == segment.label


def class_of(segment: LabelSegment, class_names: Sequence[str]) -> int:
    """The segment as one of the model's class indices (its name, else its label index)."""
    return class_names.index(segment.name) if segment.name in class_names else segment.label
