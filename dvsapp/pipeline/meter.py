"""Rolling one-second counters for the status bar."""

from __future__ import annotations

from collections import deque

WINDOW_S = 1.0


class Meter:
    """Events, step latencies and stream progress over the last second of wall time."""

    def __init__(self) -> None:
        self._events: deque[tuple[float, int]] = deque()
        self._steps: deque[tuple[float, float, float, int]] = deque()
        self._since: float | None = None

    def reset(self, now: float | None = None) -> None:
        """Forget the samples (the stream time jumped)."""
        self._events.clear()
        self._steps.clear()
        self._since = now

    def add_events(self, now: float, n: int) -> None:
        self._since = now if self._since is None else self._since
        self._events.append((now, n))

    def add_step(self, now: float, latency_ms: float, overhead_ms: float, t_end_us: int) -> None:
        self._since = now if self._since is None else self._since
        self._steps.append((now, latency_ms, overhead_ms, t_end_us))

    def _prune(self, now: float) -> None:
        for q in (self._events, self._steps):
            while q and now - q[0][0] > WINDOW_S:
                q.popleft()

    def events_per_s(self, now: float) -> float:
        self._prune(now)
        span = min(WINDOW_S, now - self._since) if self._since is not None else 0.0
        return sum(n for _, n in self._events) / span if span > 0 else 0.0

    def step_means(self, now: float) -> tuple[float, float]:
        """Mean (model latency, pipeline overhead) in ms of the steps in the last second."""
        self._prune(now)
        if not self._steps:
            return 0.0, 0.0
        n = len(self._steps)
        return sum(s[1] for s in self._steps) / n, sum(s[2] for s in self._steps) / n

    def realtime_factor(self, now: float) -> float:
        """Stream time stepped / wall time between the first and last step of the second."""
        self._prune(now)
        if len(self._steps) < 2:
            return 0.0
        (w0, *_, t0), (w1, *_, t1) = self._steps[0], self._steps[-1]
        return (t1 - t0) / 1e6 / (w1 - w0) if w1 > w0 else 0.0
