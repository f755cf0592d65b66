"""dvsapp.advisories: warnings when a recording differs from a model's training data."""

from __future__ import annotations

from types import SimpleNamespace

from dvsapp.advisories import (
    RecordingFacts,
    TrainingFacts,
    mismatch_warnings,
    recording_facts,
    sensor_size_guess,
)

GESTURE = TrainingFacts((128, 128), (64, 64), "synthetic gestures", 1_000_000)


def test_same_sensor_synthetic_recording_gets_no_warning() -> None:
    rec = RecordingFacts((128, 128), 2, "", "synthetic", "named like `dvsapp synth` output")
    assert mismatch_warnings(rec, GESTURE) == []


def test_other_sensor_names_both_sizes_and_aspect() -> None:
    rec = RecordingFacts((1280, 720), 2, "", "synthetic")
    (line,) = mismatch_warnings(rec, GESTURE)
    assert "1280x720" in line and "128x128" in line and "64x64" in line
    assert "aspect ratio" in line
    rec = RecordingFacts((256, 256), 2, "", "synthetic")
    (line,) = mismatch_warnings(rec, GESTURE)
    assert "aspect ratio" not in line


def test_one_polarity_guess_real_and_short() -> None:
    rec = RecordingFacts((128, 128), 1, "scan (max + 1)", "real-dvs128", "a DVS128", 100_000)
    lines = mismatch_warnings(rec, GESTURE)
    assert any("one polarity" in s for s in lines)
    assert any("guess" in s and "128x128" in s for s in lines)
    assert any("synthetic gestures" in s and "real" in s for s in lines)
    assert any("0.1 s" in s and "1 s window" in s for s in lines)
    assert all("\n" not in s for s in lines)


def test_sensor_size_guesses() -> None:
    assert sensor_size_guess({"sensor_size_source": "default (ATIS 304x240)"})
    assert sensor_size_guess({"sensor_size_source": "scan (max + 1)"})
    assert not sensor_size_guess({"sensor_size_source": "geometry"})
    assert sensor_size_guess({"sensor_size_from": "bounding box of the events (max x + 1, ...)"})
    assert sensor_size_guess({"sensor_size_from": "assumed: DVS128 Gesture default"})
    assert not sensor_size_guess({"sensor_size_from": "N-MNIST (34x34)"})
    assert not sensor_size_guess({})


def test_recording_facts_of_a_reader() -> None:
    reader = SimpleNamespace(
        sensor_size=(304, 240, 2),
        metadata={"sensor_size_source": "default (ATIS 304x240)"},
        format_name="dat",
        path="cars.dat",
    )
    facts = recording_facts(reader)
    assert facts.sensor_size == (304, 240) and facts.sensor_guess and facts.origin == "other"
