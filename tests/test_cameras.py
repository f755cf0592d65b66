"""Camera sources with no device attached report cleanly; the reader queue drops and counts."""

from __future__ import annotations

import time

import numpy as np
import pytest

from dvsapp.cli import main
from dvsapp.events.sources import (
    AnyCamera,
    InivationCamera,
    SourceState,
    UsbCamera,
    list_devices,
)
from dvsapp.events.sources.cameras import CameraUnavailable, DeviceInfo, _ThreadedCamera
from dvsapp.events.types import make_events

pytestmark = pytest.mark.timeout(60)


def _no_dv_camera() -> bool:
    import dv_processing as dv

    return not list(dv.io.camera.discover())


needs_no_camera = pytest.mark.skipif(
    not _no_dv_camera() or bool(list_devices()), reason="an event camera is attached"
)


@needs_no_camera
def test_inivation_without_device_goes_disconnected_with_one_line() -> None:
    cam = InivationCamera()
    t0 = time.monotonic()
    cam.start()
    st = cam.status()
    assert time.monotonic() - t0 < 10
    assert st.state is SourceState.DISCONNECTED
    assert st.message == "no iniVation camera found (dv-processing discover() saw none)"
    assert len(cam.poll()) == 0
    cam.stop()
    cam.stop()


@needs_no_camera
def test_usb_camera_without_device_or_package_reports_cleanly() -> None:
    cam = UsbCamera("SERIAL1")
    cam.start()
    st = cam.status()
    assert st.state in (SourceState.DISCONNECTED, SourceState.ERROR)
    assert "neuromorphic-drivers" in st.message and "\n" not in st.message
    cam.stop()


def test_usb_camera_says_when_the_package_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    import dvsapp.events.sources.cameras as cameras

    monkeypatch.setattr(cameras, "_import_nd", lambda: None)
    cam = UsbCamera()
    cam.start()
    st = cam.status()
    assert st.state is SourceState.ERROR
    assert "neuromorphic-drivers is not installed" in st.message and "camera" in st.message
    notes: list[str] = []
    list_devices(notes)
    assert any("not installed" in n for n in notes)


@pytest.mark.parametrize("usb_dir", [True, False])
def test_devices_explains_neuromorphic_drivers_other_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path, usb_dir: bool
) -> None:
    """libusb's bare "Other error" becomes what it means: no USB access here."""
    import types

    import dvsapp.events.sources.cameras as cameras

    def fail() -> list:
        raise RuntimeError("Other error")

    monkeypatch.setattr(cameras, "_import_nd", lambda: types.SimpleNamespace(list_devices=fail))
    monkeypatch.setattr(cameras, "USB_DEVICES_DIR", str(tmp_path if usb_dir else tmp_path / "no"))
    notes: list[str] = []
    list_devices(notes)
    (note,) = [n for n in notes if n.startswith("neuromorphic-drivers")]
    assert "(Other error)" not in note and "\n" not in note
    assert ("access to" if usb_dir else "no USB access here") in note, note
    assert str(cameras.USB_DEVICES_DIR) in note


@needs_no_camera
def test_any_camera_names_both_back_ends() -> None:
    cam = AnyCamera()
    cam.start()
    st = cam.status()
    assert st.state is SourceState.DISCONNECTED
    assert "dv-processing" in st.message and "neuromorphic-drivers" in st.message
    assert "\n" not in st.message
    cam.stop()


@needs_no_camera
def test_devices_command_says_none_found(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "no event camera found" in out


def test_devices_command_lists_what_is_found(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import dvsapp.events.sources as sources

    found = [DeviceInfo("neuromorphic-drivers", "Prophesee EVK4", "P123")]
    monkeypatch.setattr(sources, "list_devices", lambda notes=None: found)
    assert main(["devices"]) == 0
    out = capsys.readouterr().out
    assert "camera:P123" in out and "Prophesee EVK4" in out


class _FakeCamera(_ThreadedCamera):
    """A back end that produces fixed packets, then goes away."""

    backend = "fake"

    def __init__(self, packets: int, **kw: object) -> None:
        super().__init__("F1", **kw)  # type: ignore[arg-type]
        self.left = packets
        self.closed = False

    def _open(self) -> tuple[int, int]:
        return 8, 4

    def _read(self) -> np.ndarray | None:
        if self.left == 0:
            raise CameraUnavailable(SourceState.DISCONNECTED, "fake: unplugged")
        self.left -= 1
        t = np.arange(10) + 100 * (1000 - self.left)
        return make_events(t % 8, t % 4, t, t % 2 == 0)

    def _close(self) -> None:
        self.closed = True


def test_reader_thread_queue_drops_oldest_and_counts() -> None:
    cam = _FakeCamera(50, queue_events=100)
    cam.start()
    assert cam.sensor_size == (8, 4, 2)
    deadline = time.monotonic() + 5
    while cam._reader_done is None and time.monotonic() < deadline:
        time.sleep(0.01)
    events = cam.poll()
    st = cam.status()
    assert len(events) == 100 and st.events_dropped == 400
    assert np.all(np.diff(events["t"]) > 0)
    # the newest 10 packets were kept (each packet k of 50 starts at t = 100 * (950 + k))
    first_kept = 100 * (1000 - 9)
    assert events["t"].tolist() == [first_kept + 100 * (i // 10) + i % 10 for i in range(100)]
    assert st.state is SourceState.DISCONNECTED and st.message == "fake: unplugged"
    assert cam.closed
    cam.stop()
