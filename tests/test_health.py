"""Firing-rate health: silent and saturated layers are flagged after `patience` steps in a
row, and recover at the first step back in range."""

from __future__ import annotations

import numpy as np
import pytest

from dvsapp.errors import ConfigError
from dvsapp.snn.health import FiringRateHealth

NAMES = ("conv1", "layer1", "layer2", "fc")


def _feed(health: FiringRateHealth, steps: list[list[float]]) -> list[dict[str, str]]:
    return [dict(health.update(np.array(r)).flagged()) for r in steps]


def test_silent_layer_is_flagged_after_patience_steps() -> None:
    h = FiringRateHealth(silent_below=1e-3, saturated_above=0.9, patience=3)
    h.bind(NAMES)
    history = _feed(h, [[0.2, 0.1, 0.0, 0.1]] * 4)
    assert history == [{}, {}, {"layer2": "silent"}, {"layer2": "silent"}]
    assert h.status == {"conv1": "ok", "layer1": "ok", "layer2": "silent", "fc": "ok"}
    assert h.report.summary() == "1 silent (layer2)"


def test_saturated_layer_and_recovery() -> None:
    h = FiringRateHealth(patience=2)
    h.bind(NAMES)
    history = _feed(h, [[0.95, 0.1, 0.1, 0.1], [0.97, 0.1, 0.1, 0.1], [0.5, 0.1, 0.1, 0.1]])
    assert history == [{}, {"conv1": "saturated"}, {}]
    assert h.report.ok and h.report.summary() == "all layers ok"


def test_an_interruption_restarts_the_count() -> None:
    h = FiringRateHealth(patience=3)
    h.bind(NAMES)
    quiet, alive = [0.0, 0.1, 0.1, 0.1], [0.01, 0.1, 0.1, 0.1]
    history = _feed(h, [quiet, quiet, alive, quiet, quiet, quiet])
    assert [bool(f) for f in history] == [False, False, False, False, False, True]


def test_thresholds_are_strict_and_both_kinds_are_summarised() -> None:
    h = FiringRateHealth(silent_below=0.01, saturated_above=0.9, patience=1)
    report = h.update({"a": 0.01, "b": 0.9, "c": 0.0, "d": 1.0, "e": 0.0})
    assert report.flagged() == {"c": "silent", "e": "silent", "d": "saturated"}
    assert report.summary() == "2 silent (c, e); 1 saturated (d)"
    assert report.status("a") == report.status("b") == "ok"
    h.reset()
    assert h.report.ok


@pytest.mark.parametrize(
    "kwargs", [{"silent_below": 0.5, "saturated_above": 0.4}, {"patience": 0}, {"patience": 1.5}]
)
def test_bad_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        FiringRateHealth(**kwargs)


def test_wrong_number_of_rates_is_refused() -> None:
    h = FiringRateHealth()
    h.bind(NAMES)
    with pytest.raises(ConfigError, match="3 rates for 4 layers"):
        h.update(np.zeros(3))
