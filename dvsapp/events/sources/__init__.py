"""Event sources: replay now; cameras, network streams and the emulator plug in here."""

from dvsapp.events.sources.base import EventSource, SourceState, SourceStatus
from dvsapp.events.sources.replay import ReplaySource

__all__ = ["EventSource", "ReplaySource", "SourceState", "SourceStatus"]
