"""Events: the dtype, readers per format, writers, detection and sources."""

from dvsapp.events.types import DVS_GESTURE_CLASSES, EVENT_DTYPE, LabelSegment, SensorSize

__all__ = ["DVS_GESTURE_CLASSES", "EVENT_DTYPE", "LabelSegment", "SensorSize"]
