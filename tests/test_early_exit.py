"""Early exit on hand-made logits: confidence held for k steps, the margin metric, a fixed
temporal exit, and the no-exit convention (exit step = window length, exit class = end)."""

from __future__ import annotations

import numpy as np
import pytest

from dvsapp.errors import ConfigError
from dvsapp.snn.early_exit import ConfidenceExit, TemporalExit, evaluate_exit, softmax


def _logits(*rows: tuple[float, ...]) -> np.ndarray:
    return np.array(rows, dtype=np.float64)


UNSURE = (0.0, 0.0, 0.0)  # uniform: p(top) = 1/3
SURE_0 = (8.0, 0.0, 0.0)  # pushes class 0 strongly
SURE_2 = (0.0, 0.0, 30.0)


def test_softmax_of_the_running_mean() -> None:
    p = softmax(np.array([[2.0, 1.0, 0.0]]))[0]
    e = np.exp([2.0, 1.0, 0.0])
    np.testing.assert_allclose(p, e / e.sum(), rtol=1e-6)


def test_confidence_fires_after_k_consecutive_confident_steps() -> None:
    # running means of class 0: 0, 4, 5.33, 6 -> p(top) = 1/3, 0.965, 0.99, 0.995
    logits = _logits(UNSURE, SURE_0, SURE_0, SURE_0, SURE_0, SURE_0)
    assert evaluate_exit([ConfidenceExit(0.9, consecutive=1)], logits).exit_step == 2
    r = evaluate_exit([ConfidenceExit(0.9, consecutive=3)], logits)
    assert (r.exit_step, r.exit_pred, r.end_pred, r.fired) == (4, 0, 0, True)
    assert r.reason == "confidence"


def test_a_dip_restarts_the_count() -> None:
    # confident at steps 1, 2, then a dip at 3 (mean of class 0 falls below), then again
    logits = _logits(SURE_0, SURE_0, (-40.0, 0.0, 0.0), (60.0, 0.0, 0.0), SURE_0, SURE_0)
    means = np.cumsum(logits, 0) / np.arange(1, 7)[:, None]
    top = softmax(means).max(1)
    assert list(top >= 0.9) == [True, True, False, True, True, True]
    assert evaluate_exit([ConfidenceExit(0.9, consecutive=3)], logits).exit_step == 6
    assert evaluate_exit([ConfidenceExit(0.9, consecutive=2)], logits).exit_step == 2


def test_a_change_of_top_class_restarts_the_count() -> None:
    logits = _logits(SURE_0, SURE_0, SURE_2, SURE_2, SURE_2)
    means = np.cumsum(logits, 0) / np.arange(1, 6)[:, None]
    assert list(softmax(means).argmax(1)) == [0, 0, 2, 2, 2]
    assert softmax(means).max(1).min() >= 0.9  # confident all along, but about two classes
    r = evaluate_exit([ConfidenceExit(0.9, consecutive=3)], logits)
    assert (r.exit_step, r.exit_pred) == (5, 2)


def test_no_exit_reports_the_window_length_and_the_end_class() -> None:
    logits = _logits(UNSURE, (0.0, 0.5, 0.0), UNSURE, (0.0, 0.5, 0.0))
    r = evaluate_exit([ConfidenceExit(0.9, consecutive=1)], logits)
    assert (r.exit_step, r.exit_pred, r.end_pred, r.fired, r.reason) == (4, 1, 1, False, None)
    assert evaluate_exit([], logits).exit_step == 4


def test_margin_metric_uses_top1_minus_top2() -> None:
    # p = (0.49, 0.49, 0.02): top probability 0.49 but margin 0; then class 0 pulls ahead
    tie = (3.2, 3.2, 0.0)
    logits = _logits(tie, tie, (9.2, 3.2, 0.0), (9.2, 3.2, 0.0))
    assert evaluate_exit([ConfidenceExit(0.45, 1, metric="prob")], logits).exit_step == 1
    r = evaluate_exit([ConfidenceExit(0.45, 1, metric="margin")], logits)
    means = np.cumsum(logits, 0) / np.arange(1, 5)[:, None]
    p = np.sort(softmax(means), axis=1)
    margins = p[:, -1] - p[:, -2]
    assert margins[0] < 0.45 and margins[1] < 0.45
    assert r.exit_step == 1 + int(np.argmax(margins >= 0.45)) == 3


def test_temporal_exit_fires_at_its_step_and_first_policy_wins() -> None:
    logits = _logits(*[SURE_0] * 6)
    assert evaluate_exit([TemporalExit(4)], logits).exit_step == 4
    assert evaluate_exit([TemporalExit(9)], logits).fired is False
    r = evaluate_exit([TemporalExit(5), ConfidenceExit(0.9, 2)], logits)
    assert (r.exit_step, r.reason) == (2, "confidence")


@pytest.mark.parametrize(
    "make",
    [
        lambda: ConfidenceExit(0.0),
        lambda: ConfidenceExit(1.5),
        lambda: ConfidenceExit(0.9, consecutive=0),
        lambda: ConfidenceExit(0.9, metric="entropy"),  # type: ignore[arg-type]
        lambda: TemporalExit(0),
    ],
)
def test_bad_settings_are_refused(make) -> None:
    with pytest.raises(ConfigError):
        make()


def test_temporal_exit_from_bntt_gammas() -> None:
    import torch
    from toy_snn import small_real_model

    from dvsapp.snn.bntt import BnttNorm

    model = small_real_model("vgg_small")  # T = 4
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, BnttNorm):
                m.weight.copy_(torch.tensor([1.0, 0.8, 0.4, 0.2])[:, None].expand_as(m.weight))
    assert TemporalExit.from_model(model, threshold=0.5).exit_step == 3
    assert TemporalExit.from_model(model.state_dict(), threshold=0.9).exit_step == 2
    assert TemporalExit.from_model(model, threshold=0.1).exit_step == 4  # never below: T


@pytest.mark.parametrize(
    ("threshold", "metric", "probs"),
    [
        (1.0, "prob", [1.0, 0.0, 0.0]),  # a threshold of 1.0 is reachable: p == 1 fires
        (0.5, "prob", [0.5, 0.25, 0.25]),
        (0.5, "margin", [0.75, 0.25, 0.0]),  # top1 - top2 == 0.5 exactly
    ],
)
def test_a_metric_exactly_at_the_threshold_counts(
    threshold: float, metric: str, probs: list[float]
) -> None:
    """``>= threshold`` (the class docstring), not ``>``: equality counts."""
    p = np.array(probs, dtype=np.float64)
    policy = ConfidenceExit(threshold, consecutive=2, metric=metric)  # type: ignore[arg-type]
    assert policy.update(1, p) is False  # one step of two
    assert policy.update(2, p) is True
    below = ConfidenceExit(threshold, consecutive=1, metric=metric)  # type: ignore[arg-type]
    assert below.update(1, np.array([0.4, 0.35, 0.25])) is False
