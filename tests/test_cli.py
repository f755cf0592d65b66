"""`dvsapp info` and `dvsapp convert` on real files, and one-line errors on bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dvsapp.cli import main
from dvsapp.events.detect import open_reader

INFO_KEYS = {"format", "width", "height", "events", "t_first_us", "t_last_us"}


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("name", "fmt", "size", "events", "t_first", "t_last"),
    [
        ("MovingDarkBox.aedat", "aedat2.0", (128, 128), 489_834, 946_459_683, 986_269_729),
        (
            "sample.aedat4",
            "aedat4",
            (320, 240),
            111_954,
            1_605_537_493_718_345,
            1_605_537_494_308_262,
        ),
        ("evt3_sample.raw", "evt3", (1280, 720), 219_596, 11_718_656, 11_772_513),
        ("evt2.raw", "evt2", (640, 480), 521_252, 913_716_224, 913_812_095),
        ("sample_ncars.dat", "dat", None, 2_009, None, None),
    ],
)
def test_info_json_on_real_samples(
    capsys: pytest.CaptureFixture[str],
    samples_dir: Path,
    name: str,
    fmt: str,
    size: tuple[int, int] | None,
    events: int,
    t_first: int | None,
    t_last: int | None,
) -> None:
    code, out, err = run_cli(capsys, "info", str(samples_dir / name), "--json")
    assert code == 0, err
    info = json.loads(out)
    assert info.keys() >= INFO_KEYS
    assert info["format"] == fmt
    assert info["events"] == events
    if size is not None:
        assert (info["width"], info["height"]) == size
    if t_first is not None:
        assert (info["t_first_us"], info["t_last_us"]) == (t_first, t_last)


def test_info_moving_dark_box_duration(
    capsys: pytest.CaptureFixture[str], samples_dir: Path
) -> None:
    code, out, _ = run_cli(capsys, "info", str(samples_dir / "MovingDarkBox.aedat"))
    assert code == 0
    assert "489,834" in out and "39.810046 s" in out


def test_format_detection_ignores_the_extension(
    capsys: pytest.CaptureFixture[str], samples_dir: Path, tmp_path: Path
) -> None:
    disguised = tmp_path / "recording.raw"  # an AEDAT4 file with a Prophesee extension
    shutil.copy(samples_dir / "sample.aedat4", disguised)
    code, out, _ = run_cli(capsys, "info", str(disguised), "--json")
    assert code == 0 and json.loads(out)["format"] == "aedat4"


@pytest.mark.parametrize("out_name", ["box.npz", "box.aedat4"])
def test_convert_round_trip_loses_nothing(
    capsys: pytest.CaptureFixture[str], samples_dir: Path, tmp_path: Path, out_name: str
) -> None:
    src = samples_dir / "MovingDarkBox.aedat"
    dst = tmp_path / out_name
    code, _, err = run_cli(capsys, "convert", str(src), str(dst))
    assert code == 0, err
    with open_reader(src) as a, open_reader(dst) as b:
        original, back = a.read_all(), b.read_all()
        assert b.sensor_size == a.sensor_size
    np.testing.assert_array_equal(back, original)
    # a second hop, AEDAT4 -> npz, is lossless too
    again = tmp_path / "again.npz"
    assert main(["convert", str(dst), str(again)]) == 0
    with open_reader(again) as c:
        np.testing.assert_array_equal(c.read_all(), original)


# -- bad input: one line on stderr naming the file, exit 2 --------------------------------


def _bad_files(tmp: Path, samples: Path | None) -> dict[str, tuple[Path, str]]:
    cases: dict[str, tuple[Path, str]] = {}
    (tmp / "magic.bin").write_bytes(b"HELLO WORLD, this is not a recording\n" * 10)
    cases["wrong magic"] = (tmp / "magic.bin", "unknown format")
    rng = np.random.default_rng(7)
    (tmp / "random.bin").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    cases["random bytes"] = (tmp / "random.bin", "unknown format")
    (tmp / "empty.aedat").write_bytes(b"")
    cases["empty file"] = (tmp / "empty.aedat", "empty")
    (tmp / "header.aedat").write_bytes(b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n")
    cases["truncated header"] = (tmp / "header.aedat", "header")
    body = np.array([[0x0102, 10], [0x0204, 5]], dtype=">i4").tobytes()
    (tmp / "backwards.aedat").write_bytes(b"#!AER-DAT2.0\r\n# Timestamps tick is 1 us\r\n" + body)
    cases["timestamps backwards"] = (tmp / "backwards.aedat", "backwards")
    cases["directory"] = (tmp, "directory")
    cases["missing file"] = (tmp / "nope.aedat4", "no such file")
    if samples is not None:
        data = (samples / "MovingDarkBox.aedat").read_bytes()
        (tmp / "cut.aedat").write_bytes(data[: len(data) - 3])
        cases["truncated body"] = (tmp / "cut.aedat", "truncated")
        cases["zero events"] = (samples / "sample_aedat_header.aedat", "no events")
    return cases


CASES = [
    "wrong magic",
    "random bytes",
    "empty file",
    "truncated header",
    "timestamps backwards",
    "directory",
    "missing file",
    "truncated body",
    "zero events",
]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("command", ["info", "convert"])
def test_bad_input_gives_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, case: str, command: str
) -> None:
    from conftest import find_samples_dir

    samples = find_samples_dir()
    cases = _bad_files(tmp_path, samples)
    if case not in cases:
        pytest.skip("needs ../shared/samples")
    path, words = cases[case]
    argv = (
        ["info", str(path)]
        if command == "info"
        else ["convert", str(path), str(tmp_path / "o.npz")]
    )
    code, _out, err = run_cli(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(path) in lines[0] and words in lines[0].lower(), lines[0]
    assert not (tmp_path / "o.npz").exists()  # nothing half-written


def _dvsapp() -> list[str]:
    return [sys.executable, "-m", "dvsapp"]


def test_unreadable_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, samples_dir: Path
) -> None:
    """No read permission. As root, chmod alone does not stop reads, so a forked child drops
    to the ``nobody`` user first (after one good run has imported everything it needs)."""
    path = tmp_path / "locked.aedat4"
    shutil.copy(samples_dir / "sample.aedat4", path)
    assert main(["info", str(path)]) == 0
    capsys.readouterr()
    path.chmod(0)
    if os.geteuid() != 0:
        code, _, err = run_cli(capsys, "info", str(path))
    else:
        code, err = _run_as_nobody(["info", str(path)])
    assert code == 2
    assert err.strip() == f"dvsapp: error: {path}: permission denied (cannot read the file)"


def _run_as_nobody(argv: list[str]) -> tuple[int, str]:
    import pwd

    nobody = pwd.getpwnam("nobody")
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        code = 99
        try:
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            sys.stderr = os.fdopen(write_fd, "w")
            code = main(argv)
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd) as f:
        err = f.read()
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), err


def test_corrupt_file_in_a_real_process_prints_no_traceback(tmp_path: Path) -> None:
    path = tmp_path / "junk.aedat4"
    path.write_bytes(b"#!AER-DAT4.0\r\n" + bytes(range(256)) * 8)
    proc = subprocess.run(
        [*_dvsapp(), "info", str(path)], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and str(path) in proc.stderr


def test_info_lists_dvs_gesture_label_segments(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from aedat31_writer import polarity_packets, random_events, write_file

    events = random_events(20_000, seed=3, t0=1_000_000)
    path = write_file(tmp_path / "user07_led.aedat", polarity_packets(events, 1024))
    (tmp_path / "user07_led_labels.csv").write_text(
        "class,startTime_usec,endTime_usec\n3,1001000,1020000\n11,1020000,1030000\n"
    )
    code, out, err = run_cli(capsys, "info", str(path), "--json")
    assert code == 0, err
    info = json.loads(out)
    assert (info["format"], info["events"], info["width"]) == ("aedat3.1", 20_000, 128)
    assert info["t_first_us"] == int(events["t"][0]) and info["t_last_us"] == int(events["t"][-1])
    assert info["labels"] == [
        {"label": 2, "name": "left_hand_wave", "t_start_us": 1_001_000, "t_end_us": 1_020_000},
        {"label": 10, "name": "other_gestures", "t_start_us": 1_020_000, "t_end_us": 1_030_000},
    ]
    code, out, _ = run_cli(capsys, "info", str(path))
    assert "2 segments" in out and "left_hand_wave" in out


def test_info_marks_a_guessed_sensor_size(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A structured .npy names no sensor: its size is the largest coordinate + 1, a guess that
    `info` says in text and JSON; a .npz stores its size and is not marked."""
    from dvsapp.events.types import make_events
    from dvsapp.events.writers import write_npz

    events = make_events(np.array([3, 40]), np.array([5, 20]), np.array([0, 10]), [True, False])
    guessed = tmp_path / "cols.npy"
    np.save(guessed, events)
    code, out, _ = run_cli(capsys, "info", str(guessed))
    assert code == 0
    (line,) = [ln for ln in out.splitlines() if ln.startswith("sensor")]
    assert "41 x 21" in line and "guess" in line, line
    code, out, _ = run_cli(capsys, "info", "--json", str(guessed))
    d = json.loads(out)
    assert d["sensor_size_guessed"] is True and d["sensor_size_guess"]
    stored = tmp_path / "stored.npz"
    write_npz(stored, [events], (64, 32, 2))
    code, out, _ = run_cli(capsys, "info", str(stored))
    assert "sensor      64 x 32\n" in out
    code, out, _ = run_cli(capsys, "info", "--json", str(stored))
    assert json.loads(out)["sensor_size_guessed"] is False


def test_info_into_a_pipe_closed_early_is_a_normal_end(tmp_path: Path) -> None:
    """`dvsapp info FILE | head`: the reader closes before dvsapp writes; no error, exit 0."""
    from dvsapp.events.types import make_events
    from dvsapp.events.writers import write_npz

    path = tmp_path / "r.npz"
    n = 100
    write_npz(path, [make_events(np.arange(n) % 8, np.arange(n) % 8, np.arange(n), [True] * n)],
              (8, 8, 2))  # fmt: skip
    proc = subprocess.Popen(
        [*_dvsapp(), "info", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # as `head` does once it has its lines
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0, err
    assert err == "", err
