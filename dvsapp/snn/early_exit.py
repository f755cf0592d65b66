"""Early exit: stop trusting more time-steps once the prediction is settled.

Each window (a fresh T-step inference, or a reporting window of a free-running stream) is
watched by one or more policies. After step ``t`` (1-based) a policy sees the softmax of the
accumulated output, i.e. of the mean of the per-step logits so far, and says whether to exit.

* :class:`ConfidenceExit`: fires at the first step where the top class's probability (or the
  margin between the two most probable classes) has been at least ``threshold`` for
  ``consecutive`` steps in a row, with the same top class throughout.
* :class:`TemporalExit`: fires at a fixed step, e.g. BNTT's exit step where the mean learned
  gamma falls below a threshold (:meth:`TemporalExit.from_model`).

Reporting (:class:`ExitResult`): ``exit_step`` is the number of steps run when the first
policy fired, ``exit_pred`` the class chosen then, ``end_pred`` the class at the window's
end. When no policy fires, ``exit_step`` is the window's length and ``exit_pred`` equals
``end_pred`` (``fired`` is False): the whole window was needed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from dvsapp.errors import ConfigError

Metric = Literal["prob", "margin"]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, computed stably in float64, returned as float32."""
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


class ExitPolicy(ABC):
    """Decides, step by step within a window, whether the prediction may stop here."""

    name: str = ""

    def reset(self) -> None:  # noqa: B027 - stateless policies need nothing
        """Start a new window."""

    @abstractmethod
    def update(self, step: int, probs: np.ndarray) -> bool:
        """Step ``step`` (1-based) ran; ``probs`` is the softmax of the mean logits so far.
        True when the policy would exit at this step."""


class ConfidenceExit(ExitPolicy):
    """Exit once the prediction has been confident for ``consecutive`` steps in a row.

    ``metric="prob"``: the top class's probability; ``"margin"``: top-1 minus top-2
    probability. A step counts when the metric is ``>= threshold`` and the top class is the
    same as on the previous counted step.
    """

    name = "confidence"

    def __init__(self, threshold: float = 0.9, consecutive: int = 3, metric: Metric = "prob"):
        if metric not in ("prob", "margin"):
            raise ConfigError(f"early exit: metric must be 'prob' or 'margin', got {metric!r}")
        if not 0.0 < float(threshold) <= 1.0:
            raise ConfigError(f"early exit: threshold must be in (0, 1], got {threshold!r}")
        if isinstance(consecutive, bool) or not isinstance(consecutive, int) or consecutive < 1:
            raise ConfigError(
                f"early exit: consecutive must be an integer >= 1, got {consecutive!r}"
            )
        self.threshold = float(threshold)
        self.consecutive = consecutive
        self.metric = metric
        self.reset()

    def reset(self) -> None:
        self._streak = 0
        self._top = -1

    def score(self, probs: np.ndarray) -> tuple[int, float]:
        """(top class, metric value) of one probability vector."""
        top = int(np.argmax(probs))
        p1 = float(probs[top])
        if self.metric == "prob" or probs.size < 2:
            return top, p1
        return top, p1 - float(np.partition(probs, -2)[-2])

    def update(self, step: int, probs: np.ndarray) -> bool:
        top, value = self.score(probs)
        if value >= self.threshold:
            self._streak = self._streak + 1 if top == self._top else 1
            self._top = top
        else:
            self._streak, self._top = 0, -1
        return self._streak >= self.consecutive


class TemporalExit(ExitPolicy):
    """Exit at a fixed step of every window (BNTT's temporal early exit)."""

    name = "temporal"

    def __init__(self, exit_step: int) -> None:
        if isinstance(exit_step, bool) or not isinstance(exit_step, int) or exit_step < 1:
            raise ConfigError(f"early exit: exit_step must be an integer >= 1, got {exit_step!r}")
        self.exit_step = exit_step

    @classmethod
    def from_model(cls, model_or_state_dict: Any, threshold: float) -> TemporalExit:
        """The step where the BNTT model's mean gamma first drops below ``threshold``."""
        from dvsapp.snn.bntt import temporal_exit_step

        return cls(int(temporal_exit_step(model_or_state_dict, threshold)))

    def update(self, step: int, probs: np.ndarray) -> bool:
        return step >= self.exit_step


@dataclass(frozen=True)
class ExitResult:
    """How one window ended (see the module docstring for the no-exit convention)."""

    exit_step: int
    exit_pred: int
    end_pred: int
    fired: bool
    reason: str | None  # the name of the policy that fired, None when none did


class ExitTracker:
    """Runs the policies over one window and remembers the first exit."""

    def __init__(self, policies: Sequence[ExitPolicy] = ()) -> None:
        self.policies = tuple(policies)
        self.reset()

    def reset(self) -> None:
        """Start a new window."""
        for p in self.policies:
            p.reset()
        self.exit_step: int | None = None
        self.exit_pred: int | None = None
        self.reason: str | None = None

    def update(self, step: int, probs: np.ndarray) -> bool:
        """Feed step ``step`` (1-based); True when the window exits at this very step."""
        if self.exit_step is not None:
            return False
        for p in self.policies:
            if p.update(step, probs):
                self.exit_step, self.exit_pred, self.reason = step, int(np.argmax(probs)), p.name
                return True
        return False

    def result(self, steps: int, end_pred: int) -> ExitResult:
        """The window's outcome after ``steps`` steps ending on ``end_pred``."""
        if self.exit_step is None or self.exit_pred is None:
            return ExitResult(steps, end_pred, end_pred, False, None)
        return ExitResult(self.exit_step, self.exit_pred, end_pred, True, self.reason)


def evaluate_exit(policies: Sequence[ExitPolicy], step_logits: np.ndarray) -> ExitResult:
    """The exit of one window from its per-step logits ``[T, K]`` (offline, e.g. for tests
    and evaluation); the same computation as the stepper's."""
    logits = np.asarray(step_logits, dtype=np.float64)
    if logits.ndim != 2 or logits.shape[0] == 0:
        raise ConfigError(f"early exit: expected [T, K] logits with T >= 1, got {logits.shape}")
    tracker = ExitTracker(policies)
    means = np.cumsum(logits, axis=0) / np.arange(1, len(logits) + 1)[:, None]
    probs = softmax(means)
    for t, p in enumerate(probs, start=1):
        if tracker.update(t, p):
            break
    return tracker.result(len(logits), int(np.argmax(probs[-1])))
