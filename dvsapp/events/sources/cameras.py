"""Live event cameras: iniVation through dv-processing, others through neuromorphic-drivers.

Both back ends share one shape: ``start()`` opens the device (and learns its sensor size, so
read ``sensor_size`` after ``start()``), a reader thread pulls packets into a bounded queue,
and ``poll()`` takes what is queued without waiting. When the consumer falls behind, the
oldest queued packets are dropped and counted (``events_dropped``). With no device attached,
``start()`` does not raise: the source goes to DISCONNECTED with a one-line message naming
what was looked for (ERROR when the back end itself is missing or fails).

APIs as found (dv-processing 2.0.4, neuromorphic-drivers 0.18.2):

- ``dv.io.camera.discover() -> list[USBDevice.DeviceDescriptor]`` (``serialNumber``,
  ``cameraModel``, ...); ``dv.io.camera.open(serial)`` / ``open()`` (first found) return a
  ``CameraInputBase`` with ``setTimeInterval(timedelta)`` (the packet commit interval),
  ``getEventResolution()``, ``isRunning()`` and ``getNextEventBatch() -> EventStore | None``
  (``None`` when nothing is ready: it does not block). ``EventStore.numpy()`` has the fields
  timestamp, x, y, polarity; timestamps are the host's wall clock in microseconds.
- ``neuromorphic_drivers.list_devices() -> list[ListedDevice]`` (name, connection, address,
  serial, error; raises RuntimeError when USB cannot be enumerated);
  ``neuromorphic_drivers.open(serial=..., iterator_timeout=...)`` gives a device whose
  iterator yields ``(status, packet)``; ``packet.polarity_events`` is a structured array
  (t, x, y, on; top-left origin, microseconds) or None; ``device.backlog()`` and
  ``device.clear_backlog(until=...)`` bound the latency. Without ``iterator_timeout`` the
  iterator blocks until data comes, so it is always set here.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from dvsapp.events.sources.base import EventSource, SourceState, SourceStatus
from dvsapp.events.types import EVENT_DTYPE, make_events

#: Packet commit interval asked of dv-processing cameras (low for latency).
DV_TIME_INTERVAL_US = 1_000
#: Events the queue may hold before the oldest packets are dropped.
DEFAULT_QUEUE_EVENTS = 4_000_000
#: neuromorphic-drivers: how long one ``next()`` may wait for data.
ND_ITERATOR_TIMEOUT_S = 0.05
#: neuromorphic-drivers: packets of backlog beyond which the backlog is cleared.
ND_MAX_BACKLOG = 64
READ_SLEEP_S = 0.0005


class CameraUnavailable(Exception):
    """Raised by a back end's open: the state to go to and a one-line message."""

    def __init__(self, state: SourceState, message: str) -> None:
        super().__init__(message)
        self.state = state
        self.message = message


@dataclass(frozen=True)
class DeviceInfo:
    """One attached camera as a back end reports it."""

    backend: str  # "dv-processing" or "neuromorphic-drivers"
    model: str
    serial: str
    detail: str = ""

    def spec(self) -> str:
        """The ``--source`` spec that opens this camera."""
        return f"camera:{self.serial}"


def _one_line(error: BaseException) -> str:
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    return lines[0] if lines else type(error).__name__


#: Where Linux exposes USB devices to libusb; a container or VM without it cannot enumerate.
USB_DEVICES_DIR = "/dev/bus/usb"


def _usb_listing_error(error: BaseException) -> str:
    """neuromorphic-drivers' ``list_devices()`` failure in words: its "Other error" is
    libusb's LIBUSB_ERROR_OTHER, which it raises when it cannot enumerate USB at all (no
    /dev/bus/usb, as in most containers and VMs), not a fault of a camera."""
    text = _one_line(error)
    if text.lower() != "other error":
        return text
    if not os.path.isdir(USB_DEVICES_DIR):
        return f"no USB access here; {USB_DEVICES_DIR} does not exist, as in a container or VM"
    return f"libusb could not enumerate USB ('Other error'): check access to {USB_DEVICES_DIR}"


class _ThreadedCamera(EventSource):
    """Reader thread + bounded packet queue + states; back ends fill in open/read/close."""

    backend = ""

    def __init__(
        self,
        serial: str | None = None,
        queue_events: int = DEFAULT_QUEUE_EVENTS,
        stall_timeout_s: float = 1.0,
    ) -> None:
        label = f"{self.backend}:{serial}" if serial else self.backend
        super().__init__(f"camera:{label}", (0, 0, 2))
        self.serial = serial or None
        self.queue_events = max(1, int(queue_events))
        self.stall_timeout_s = stall_timeout_s
        self._queue: deque[np.ndarray] = deque()
        self._queued = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = SourceState.IDLE
        self._message = ""
        self._reader_done: tuple[SourceState, str] | None = None
        self._delivered = 0
        self._dropped = 0
        self._last_t: int | None = None
        self._last_data_wall = 0.0
        self._pending = np.zeros(0, dtype=EVENT_DTYPE)

    # -- back end hooks ------------------------------------------------------------------
    def _open(self) -> tuple[int, int]:
        """Open the device; return its (width, height) or raise CameraUnavailable."""
        raise NotImplementedError

    def _read(self) -> np.ndarray | None:
        """One read in the reader thread: events (our dtype), or None when none are ready.
        Raise CameraUnavailable when the device is gone."""
        raise NotImplementedError

    def _close(self) -> None:
        """Release the device (called from the reader thread, or from start() on failure)."""

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        if self._state in (SourceState.RUNNING, SourceState.STALLED):
            return
        try:
            w, h = self._open()
        except CameraUnavailable as e:
            self._state, self._message = e.state, e.message
            return
        except Exception as e:  # a back end error: one line, never a traceback
            self._state, self._message = SourceState.ERROR, f"{self.name}: {_one_line(e)}"
            return
        self.sensor_size = (int(w), int(h), 2)
        self._stop.clear()
        self._reader_done = None
        self._state, self._message = SourceState.RUNNING, ""
        self._last_data_wall = time.monotonic()
        self._thread = threading.Thread(target=self._read_loop, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None
        if self._state in (SourceState.RUNNING, SourceState.STALLED):
            self._state = SourceState.IDLE

    # -- polling -------------------------------------------------------------------------
    def poll(self, max_events: int | None = None) -> np.ndarray:
        if len(self._pending) == 0:
            with self._lock:
                parts = list(self._queue)
                self._queue.clear()
                self._queued = 0
            if parts:
                self._pending = np.concatenate(parts) if len(parts) > 1 else parts[0]
        self._update_state()
        if len(self._pending) == 0:
            return np.zeros(0, dtype=EVENT_DTYPE)
        k = (
            len(self._pending)
            if max_events is None
            else min(max(1, int(max_events)), len(self._pending))
        )
        out, self._pending = self._pending[:k], self._pending[k:]
        self._delivered += len(out)
        self._last_t = int(out["t"][-1])
        return out

    def status(self) -> SourceStatus:
        self._update_state()
        with self._lock:
            queued = self._queued
        return SourceStatus(
            state=self._state,
            message=self._message,
            events_delivered=self._delivered,
            events_dropped=self._dropped,
            stream_time_us=self._last_t,
            extra={"backend": self.backend, "serial": self.serial, "queued_events": queued},
        )

    # -- internals -----------------------------------------------------------------------
    def _update_state(self) -> None:
        if self._state not in (SourceState.RUNNING, SourceState.STALLED):
            return
        with self._lock:
            done, queued, last = self._reader_done, self._queued, self._last_data_wall
        if done is not None and queued == 0 and len(self._pending) == 0:
            self._state, self._message = done
        elif done is None and time.monotonic() - last > self.stall_timeout_s:
            if self._state is not SourceState.STALLED:
                self._message = f"{self.name}: no events for over {self.stall_timeout_s:g} s"
            self._state = SourceState.STALLED
        elif self._state is SourceState.STALLED and done is None:
            self._state, self._message = SourceState.RUNNING, ""

    def _push(self, events: np.ndarray) -> None:
        with self._lock:
            self._queue.append(events)
            self._queued += len(events)
            while self._queued > self.queue_events and len(self._queue) > 1:
                old = self._queue.popleft()
                self._queued -= len(old)
                self._dropped += len(old)
            self._last_data_wall = time.monotonic()

    def _read_loop(self) -> None:
        result = (SourceState.IDLE, "")
        try:
            while not self._stop.is_set():
                events = self._read()
                if events is None or len(events) == 0:
                    time.sleep(READ_SLEEP_S)
                    continue
                self._push(events)
        except CameraUnavailable as e:
            result = (e.state, e.message)
        except Exception as e:  # pragma: no cover - depends on the device
            result = (SourceState.ERROR, f"{self.name}: {_one_line(e)}")
        finally:
            try:
                self._close()
            finally:
                with self._lock:
                    self._reader_done = result


class InivationCamera(_ThreadedCamera):
    """An iniVation camera (DVXplorer, DAVIS, DVS128) through dv-processing."""

    backend = "dv-processing"

    def __init__(
        self,
        serial: str | None = None,
        time_interval_us: int = DV_TIME_INTERVAL_US,
        queue_events: int = DEFAULT_QUEUE_EVENTS,
        stall_timeout_s: float = 1.0,
    ) -> None:
        super().__init__(serial, queue_events, stall_timeout_s)
        self.time_interval_us = int(time_interval_us)
        self._camera: Any = None

    def _open(self) -> tuple[int, int]:
        import dv_processing as dv

        try:
            found = list(dv.io.camera.discover())
        except Exception as e:
            raise CameraUnavailable(
                SourceState.ERROR, f"dv-processing discover() failed: {_one_line(e)}"
            ) from None
        serials = [d.serialNumber for d in found]
        if not found:
            raise CameraUnavailable(
                SourceState.DISCONNECTED,
                "no iniVation camera found (dv-processing discover() saw none)",
            )
        if self.serial is not None and self.serial not in serials:
            raise CameraUnavailable(
                SourceState.DISCONNECTED,
                f"no iniVation camera with serial {self.serial} "
                f"(dv-processing discover() saw {', '.join(serials)})",
            )
        camera = dv.io.camera.open(self.serial or found[0].serialNumber)
        if not camera.isEventStreamAvailable():
            raise CameraUnavailable(
                SourceState.ERROR, f"iniVation camera {camera.getCameraName()} has no event stream"
            )
        with contextlib.suppress(Exception):  # low commit interval: small packets, low latency
            camera.setTimeInterval(datetime.timedelta(microseconds=self.time_interval_us))
        self._camera = camera
        self.serial = self.serial or found[0].serialNumber
        w, h = camera.getEventResolution()
        return int(w), int(h)

    def _read(self) -> np.ndarray | None:
        camera = self._camera
        if not camera.isRunning():
            raise CameraUnavailable(
                SourceState.DISCONNECTED, f"{self.name}: the camera stopped (unplugged?)"
            )
        store = camera.getNextEventBatch()
        if store is None or len(store) == 0:
            return None
        a = store.numpy()
        return make_events(a["x"], a["y"], a["timestamp"], a["polarity"] != 0)

    def _close(self) -> None:
        self._camera = None  # dv-processing closes the device when the object goes


class UsbCamera(_ThreadedCamera):
    """Any camera neuromorphic-drivers supports (Prophesee EVK3/EVK4, DAVIS346, DVXplorer...)."""

    backend = "neuromorphic-drivers"

    def __init__(
        self,
        serial: str | None = None,
        iterator_timeout_s: float = ND_ITERATOR_TIMEOUT_S,
        max_backlog: int = ND_MAX_BACKLOG,
        queue_events: int = DEFAULT_QUEUE_EVENTS,
        stall_timeout_s: float = 1.0,
    ) -> None:
        super().__init__(serial, queue_events, stall_timeout_s)
        self.iterator_timeout_s = iterator_timeout_s
        self.max_backlog = max_backlog
        self._device: Any = None

    def _open(self) -> tuple[int, int]:
        nd = _import_nd()
        if nd is None:
            raise CameraUnavailable(
                SourceState.ERROR,
                "neuromorphic-drivers is not installed (pip install 'dvsapp[camera]')",
            )
        try:
            listed = list(nd.list_devices())
            why = "saw none"
        except Exception as e:  # RuntimeError("Other error") when USB cannot be enumerated
            listed, why = [], f"failed: {_usb_listing_error(e)}"
        if not listed:
            raise CameraUnavailable(
                SourceState.DISCONNECTED,
                f"no USB event camera found (neuromorphic-drivers list_devices() {why})",
            )
        serials = [d.serial for d in listed]
        if self.serial is not None and self.serial not in serials:
            raise CameraUnavailable(
                SourceState.DISCONNECTED,
                f"no USB event camera with serial {self.serial} (neuromorphic-drivers "
                f"list_devices() saw {', '.join(str(s) for s in serials)})",
            )
        device = nd.open(serial=self.serial, iterator_timeout=self.iterator_timeout_s)
        device.__enter__()
        self._device = device
        self.serial = self.serial or device.serial()
        props = device.properties()
        return int(props.width), int(props.height)

    def _read(self) -> np.ndarray | None:
        device = self._device
        try:
            status, packet = next(device)
        except StopIteration:
            raise CameraUnavailable(
                SourceState.DISCONNECTED, f"{self.name}: the camera stopped (unplugged?)"
            ) from None
        ring = getattr(status, "ring", None)
        if ring is not None and ring.backlog > self.max_backlog:
            device.clear_backlog(until=0)  # drop what is queued in the driver: stay live
            with self._lock:
                self._dropped += int(ring.backlog)  # packets, not events: the best known
        if packet is None:
            return None
        pe = getattr(packet, "polarity_events", None)
        if pe is None or len(pe) == 0:
            return None
        p = pe["on"] if "on" in pe.dtype.names else pe["p"]
        return make_events(pe["x"], pe["y"], pe["t"], p)

    def _close(self) -> None:
        if self._device is not None:
            try:
                self._device.__exit__(None, None, None)
            finally:
                self._device = None


class AnyCamera(EventSource):
    """The first camera found by any back end (dv-processing first, then neuromorphic-drivers).

    Delegates to the chosen source; with none found it reports what each back end saw.
    """

    def __init__(self, serial: str | None = None) -> None:
        super().__init__(f"camera:{serial}" if serial else "camera", (0, 0, 2))
        self.serial = serial or None
        self._inner: EventSource | None = None
        self._state = SourceState.IDLE
        self._message = ""

    def start(self) -> None:
        if self._inner is not None:
            self._inner.start()
            return
        messages: list[str] = []
        for cls in (InivationCamera, UsbCamera):
            source = cls(self.serial)
            source.start()
            st = source.status()
            if st.state is SourceState.RUNNING:
                self._inner = source
                self.sensor_size = source.sensor_size
                self.name = source.name
                return
            messages.append(st.message)
        self._state = SourceState.DISCONNECTED
        self._message = "no event camera found: " + "; ".join(messages)

    def stop(self) -> None:
        if self._inner is not None:
            self._inner.stop()

    def poll(self, max_events: int | None = None) -> np.ndarray:
        if self._inner is None:
            return np.zeros(0, dtype=EVENT_DTYPE)
        return self._inner.poll(max_events)

    def status(self) -> SourceStatus:
        if self._inner is None:
            return SourceStatus(self._state, self._message)
        return self._inner.status()


def _import_nd() -> Any:
    try:
        import neuromorphic_drivers as nd
    except ImportError:
        return None
    return nd


def list_devices(notes: list[str] | None = None) -> list[DeviceInfo]:
    """The cameras attached, over both back ends (each guarded). A back end that could not
    look (missing package, enumeration failure) adds one line to ``notes`` when given."""
    found: list[DeviceInfo] = []
    notes = [] if notes is None else notes
    try:
        import dv_processing as dv

        for d in dv.io.camera.discover():
            found.append(DeviceInfo("dv-processing", str(d.cameraModel), str(d.serialNumber)))
    except Exception as e:
        notes.append(f"dv-processing: cannot discover cameras ({_one_line(e)})")
    nd = _import_nd()
    if nd is None:
        notes.append("neuromorphic-drivers: not installed (pip install 'dvsapp[camera]')")
    else:
        try:
            listed = list(nd.list_devices())
        except Exception as e:
            listed = []
            notes.append(f"neuromorphic-drivers: cannot list USB devices ({_usb_listing_error(e)})")
        for d in listed:
            name = getattr(d.name, "value", str(d.name))
            found.append(
                DeviceInfo("neuromorphic-drivers", name, str(d.serial or "?"), d.error or "")
            )
    return found
