"""Recording a widget to MP4: the decoded video has a plausible frame count, the first
frame's (even) size throughout, the widget's colours in order and the time stamp in the
bottom-left corner; bad paths fail when the recorder is made."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")

from PySide6.QtGui import QColor, QPainter  # noqa: E402
from PySide6.QtWidgets import QWidget  # noqa: E402

from dvsapp.errors import ConfigError  # noqa: E402
from dvsapp.gui.video_recorder import VideoRecorder, format_elapsed  # noqa: E402

COLOURS = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (230, 220, 40)]


class Swatch(QWidget):
    """A widget filled with one colour."""

    def __init__(self) -> None:
        super().__init__()
        self.colour = QColor(*COLOURS[0])

    def paintEvent(self, event) -> None:
        QPainter(self).fillRect(self.rect(), self.colour)


def _swatch(qtbot, w: int = 321, h: int = 241) -> Swatch:
    widget = Swatch()
    qtbot.addWidget(widget)
    widget.resize(w, h)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def _decode(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _near(rgb: np.ndarray, colour: tuple[int, int, int], tol: int = 40) -> bool:
    return bool(np.all(np.abs(rgb.astype(int) - colour) <= tol))


def test_records_colours_size_and_stamp(qtbot, tmp_path: Path) -> None:
    widget = _swatch(qtbot)
    path = tmp_path / "v.mp4"
    rec = VideoRecorder(widget, path, fps=15, stamp=lambda: "0:03.250  window 4 step 7")
    assert (rec.size.width(), rec.size.height()) == (322, 242)  # rounded up to even
    rec.start()
    for colour in COLOURS:
        widget.colour = QColor(*colour)
        widget.update()
        qtbot.wait(250)
    widget.resize(500, 420)  # grows: scaled down into the first frame's size
    qtbot.wait(200)
    assert rec.stop() == path
    assert rec.stop() == path  # idempotent
    assert not rec.error
    print(
        f"\n{rec.codec}: {rec.frames} frames, {rec.dropped} dropped, {rec.grab_ms:.1f} ms/frame "
        f"in the GUI thread, {rec.encode_ms:.1f} ms/frame encoding at 322x242"
    )

    frames = _decode(path)
    assert len(frames) == rec.frames == rec.encoded
    assert 6 <= len(frames) <= 25  # ~1.2 s at 15 fps on a loaded machine
    assert {f.shape for f in frames} == {(242, 322, 3)}
    centres = [f[60, 160] for f in frames]
    seen = [i for i, c in enumerate(COLOURS) if any(_near(x, c) for x in centres)]
    assert seen == [0, 1, 2, 3], centres
    first = [next(j for j, x in enumerate(centres) if _near(x, c)) for c in COLOURS]
    assert first == sorted(first)  # in the order the widget showed them
    # the stamp: white text on a dark box in the bottom-left corner, none at the top right
    last = frames[-1]
    corner = last[-20:, :120].reshape(-1, 3).astype(int)
    assert (corner.max(axis=1) > 200).sum() > 20  # text pixels
    assert (corner.max(axis=1) < 60).sum() > 100  # the box behind it
    assert _near(last[5:30, 200:260].reshape(-1, 3).mean(axis=0), COLOURS[-1], 30)
    # the grown widget was scaled to fit (aspect kept: 500x420 -> 288x242), padded black
    assert _near(last[100, 200], COLOURS[-1]) and last[100, 310].max() < 40


def test_default_stamp_and_stop_without_start(qtbot, tmp_path: Path) -> None:
    assert format_elapsed(3.25) == "0:03.250" and format_elapsed(61.0) == "1:01.000"
    widget = _swatch(qtbot, 200, 120)
    path = tmp_path / "one.mp4"
    rec = VideoRecorder(widget, path, fps=5)
    rec.stop()  # never started: one frame, still a playable file
    frames = _decode(path)
    assert len(frames) == 1 and frames[0].shape == (120, 200, 3)
    corner = frames[0][-14:, :80].reshape(-1, 3).astype(int)
    assert (corner.max(axis=1) > 200).sum() > 10  # "0:00.000" drawn
    with pytest.raises(RuntimeError, match="stopped"):
        rec.start()


def test_time_per_frame_at_1600x1000(qtbot, tmp_path: Path) -> None:
    pg = pytest.importorskip("pyqtgraph")
    plot = pg.PlotWidget()
    qtbot.addWidget(plot)
    plot.resize(1600, 1000)
    rng = np.random.default_rng(0)
    curves = [plot.plot(rng.normal(size=500).cumsum(), pen=(i, 8)) for i in range(8)]
    plot.show()
    qtbot.waitExposed(plot)
    rec = VideoRecorder(plot, tmp_path / "big.mp4", fps=15)
    assert (rec.size.width(), rec.size.height()) == (1600, 1000)
    rec.start()
    for _ in range(8):
        for c in curves:
            c.setData(rng.normal(size=500).cumsum())
        qtbot.wait(100)
    rec.stop()
    print(
        f"\n{rec.codec} 1600x1000: {rec.frames} frames, {rec.dropped} dropped, "
        f"{rec.grab_ms:.1f} ms/frame in the GUI thread (grab, stamp, copy), "
        f"{rec.encode_ms:.1f} ms/frame in the encoder thread"
    )
    assert not rec.error and rec.frames >= 3
    assert rec.grab_ms < 250  # loose: a loaded 2-core machine; the report has the numbers
    frames = _decode(tmp_path / "big.mp4")
    assert len(frames) == rec.frames and frames[0].shape == (1000, 1600, 3)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("missing/v.mp4", "does not exist"),
        ("v.avi", "must end in .mp4"),
        ("adir.mp4", "is a folder"),
    ],
)
def test_bad_paths_fail_at_construction(qtbot, tmp_path: Path, name: str, reason: str) -> None:
    widget = _swatch(qtbot, 50, 40)
    (tmp_path / "adir.mp4").mkdir()
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(ConfigError, match=reason) as err:
        VideoRecorder(widget, tmp_path / name)
    assert "\n" not in str(err.value) and str(tmp_path / name) in str(err.value)
    assert sorted(os.listdir(tmp_path)) == before


def test_unwritable_path_and_bad_fps(qtbot) -> None:
    widget = _swatch(qtbot, 50, 40)
    with pytest.raises(ConfigError, match=r"cannot write the video /proc/v\.mp4"):
        VideoRecorder(widget, "/proc/v.mp4")  # the encoder's own open fails, even for root
    with pytest.raises(ConfigError, match="fps"):
        VideoRecorder(widget, "/tmp/never.mp4", fps=0)
    assert not os.path.exists("/tmp/never.mp4")
