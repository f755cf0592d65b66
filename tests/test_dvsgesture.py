"""DVS128 Gesture label CSVs, trial lists and dataset folder listing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dvsapp.errors import EventFileError
from dvsapp.events.dvsgesture import (
    GestureRecording,
    labels_path_for,
    list_recordings,
    parse_labels_csv,
    read_trials,
)
from dvsapp.events.types import DVS_GESTURE_CLASSES

HEADER = "class,startTime_usec,endTime_usec\n"


def test_real_label_csv(samples_dir: Path) -> None:
    path = samples_dir / "user01_natural_labels.csv"
    segments = parse_labels_csv(path)
    # Independent reference: numpy's own CSV parsing of the same file.
    ref = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.int64)
    assert len(segments) == 12 == len(ref)
    order = np.argsort(ref[:, 1], kind="stable")
    assert [s.label + 1 for s in segments] == ref[order, 0].tolist()
    assert [s.t_start_us for s in segments] == ref[order, 1].tolist()
    assert [s.t_end_us for s in segments] == ref[order, 2].tolist()
    assert [s.label for s in segments].count(7) == 2  # class 8 (arm_roll) twice
    assert {s.name for s in segments if s.label == 7} == {"arm_roll"}
    assert all(s.name == DVS_GESTURE_CLASSES[s.label] for s in segments)


def test_unsorted_repeated_and_overlapping_rows_are_kept_sorted(tmp_path: Path) -> None:
    path = tmp_path / "u_labels.csv"
    path.write_text(HEADER + "9,500,900\n10,800,1200\n9,100,300\n\n11,100,200\n")
    got = [(s.label, s.t_start_us, s.t_end_us) for s in parse_labels_csv(path)]
    assert got == [(8, 100, 300), (10, 100, 200), (8, 500, 900), (9, 800, 1200)]


def test_crlf_bom_and_spaces_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "w_labels.csv"
    path.write_bytes(b"\xef\xbb\xbfclass, startTime_usec, endTime_usec\r\n 1 , 10 , 20 \r\n")
    [seg] = parse_labels_csv(path)
    assert (seg.label, seg.name, seg.t_start_us, seg.t_end_us) == (0, "hand_clapping", 10, 20)


@pytest.mark.parametrize(
    ("content", "line", "message"),
    [
        ("", None, "empty"),
        ("time,class\n1,2\n", 1, "expected header"),
        (HEADER + "1,2\n", 2, "3 comma-separated"),
        (HEADER + "1,10,20\n1,a,20\n", 3, "integers"),
        (HEADER + "12,10,20\n", 2, "class 12"),
        (HEADER + "0,10,20\n", 2, "class 0"),
        (HEADER + "1,20,20\n", 2, "empty"),
        (HEADER + "1,-5,20\n", 2, "negative"),
    ],
)
def test_malformed_label_csv(tmp_path: Path, content: str, line: int | None, message: str) -> None:
    path = tmp_path / "bad_labels.csv"
    path.write_text(content)
    with pytest.raises(EventFileError, match=message) as info:
        parse_labels_csv(path)
    if line is not None:
        assert f"line {line}" in info.value.message
        lines = content.encode().splitlines(keepends=True)
        assert info.value.offset == sum(len(x) for x in lines[: line - 1])
    assert str(path) in str(info.value)


def test_missing_and_oversized_label_files(tmp_path: Path) -> None:
    with pytest.raises(EventFileError, match="no such file"):
        parse_labels_csv(tmp_path / "absent.csv")
    big = tmp_path / "big_labels.csv"
    big.write_bytes(b"x" * ((1 << 20) + 10))
    with pytest.raises(EventFileError, match="too large"):
        parse_labels_csv(big)


def test_labels_path_for() -> None:
    assert labels_path_for("/d/user02_led.aedat") == Path("/d/user02_led_labels.csv")


def test_read_trials_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "trials_to_test.txt"
    path.write_text("user24_fluorescent.aedat\n\n  user24_led.aedat  \r\n\n")
    assert read_trials(path) == ["user24_fluorescent.aedat", "user24_led.aedat"]
    path.write_text("user24_led.aedat\n../etc/passwd.aedat\n")
    with pytest.raises(EventFileError, match="line 2") as info:
        read_trials(path)
    assert info.value.offset == len("user24_led.aedat\n")


def make_dataset(root: Path) -> None:
    root.mkdir()
    (root / "trials_to_train.txt").write_text("user01_fluorescent.aedat\nuser01_led.aedat\n\n")
    (root / "trials_to_test.txt").write_text("\nuser24_natural.aedat\n")
    for stem in ("user01_fluorescent", "user01_led", "user24_natural"):
        (root / f"{stem}.aedat").write_bytes(b"#!AER-DAT3.1\r\n#!END-HEADER\r\n")
    (root / "user01_fluorescent_labels.csv").write_text(HEADER + "1,1,2\n")
    (root / "user24_natural_labels.csv").write_text(HEADER + "2,1,2\n")


def test_list_recordings(tmp_path: Path) -> None:
    root = tmp_path / "DvsGesture"
    make_dataset(root)
    recs = list_recordings(root)
    assert [(r.name, r.split, r.user, r.lighting) for r in recs] == [
        ("user01_fluorescent", "train", "user01", "fluorescent"),
        ("user01_led", "train", "user01", "led"),
        ("user24_natural", "test", "user24", "natural"),
    ]
    assert recs[0].labels_path == root / "user01_fluorescent_labels.csv"
    assert recs[1].labels_path is None
    assert isinstance(recs[2], GestureRecording) and recs[2].path == root / "user24_natural.aedat"


def test_list_recordings_errors(tmp_path: Path) -> None:
    root = tmp_path / "DvsGesture"
    make_dataset(root)
    (root / "user01_led.aedat").unlink()
    with pytest.raises(EventFileError, match="missing"):
        list_recordings(root)
    assert [r.name for r in list_recordings(root, require_files=False)] == [
        "user01_fluorescent",
        "user24_natural",
    ]
    (root / "trials_to_test.txt").write_text("user01_fluorescent.aedat\n")
    with pytest.raises(EventFileError, match="both"):
        list_recordings(root, require_files=False)
    with pytest.raises(EventFileError, match="not a DVS128 Gesture folder"):
        list_recordings(tmp_path)
    with pytest.raises(EventFileError, match="not a directory"):
        list_recordings(tmp_path / "nope")
