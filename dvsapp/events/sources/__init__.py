"""Event sources: replay, live cameras, network streams and the emulator, behind one interface.

``open_source(spec)`` builds any of them from a string (see ``factory``).
"""

from dvsapp.events.sources.base import EventSource, SourceState, SourceStatus
from dvsapp.events.sources.cameras import (
    AnyCamera,
    DeviceInfo,
    InivationCamera,
    UsbCamera,
    list_devices,
)
from dvsapp.events.sources.factory import SourceSpec, open_source, parse_source_spec
from dvsapp.events.sources.replay import ReplaySource

__all__ = [
    "AnyCamera",
    "DeviceInfo",
    "EventSource",
    "InivationCamera",
    "ReplaySource",
    "SourceSpec",
    "SourceState",
    "SourceStatus",
    "UsbCamera",
    "list_devices",
    "open_source",
    "parse_source_spec",
]
