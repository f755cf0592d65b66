"""Worker -> GUI hand-over: bounded, latest-value, at most one pending wake-up."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from dvsapp.pipeline.records import ModelInfo, PipelineStats, StepFrame


class Mailbox:
    """Worker -> GUI hand-over: a bounded deque of StepFrames (raster columns), the latest
    frame, the latest stats and model info, and at most one pending wake-up.

    ``put`` never blocks: when the deque is full the oldest frame is dropped and counted. The
    waker (set by the GUI, e.g. a function that emits a Qt signal) is called only when no
    wake-up is pending; the GUI calls ``drain()`` which clears the pending flag. The waker
    runs in the caller's thread (the worker), outside the lock, so it may call ``drain``.
    A new model info, and a stats change of state or message, wake the GUI too.
    """

    def __init__(self, maxlen: int = 512) -> None:
        if maxlen < 1:
            raise ValueError(f"mailbox maxlen must be >= 1, got {maxlen}")
        self._lock = threading.Lock()
        self._frames: deque[StepFrame] = deque(maxlen=maxlen)
        self._latest: StepFrame | None = None
        self._info: dict[int, ModelInfo | None] = {}  # lane -> model info
        self._stats: PipelineStats | None = None
        self._dropped = 0
        self._pending = False
        self._waker: Callable[[], None] | None = None
        self.waker_error = ""  # the last exception a waker raised (it is not propagated)

    @property
    def maxlen(self) -> int:
        return self._frames.maxlen or 0

    def set_waker(self, waker: Callable[[], None] | None) -> None:
        """Set (or clear) the wake-up callback; wakes at once when frames are waiting."""
        with self._lock:
            self._waker = waker
            self._pending = False
            due = waker is not None and bool(self._frames)
        if due:
            self._wake()

    def put(self, frame: StepFrame) -> None:
        """Add a frame (dropping and counting the oldest when full); never blocks."""
        with self._lock:
            if len(self._frames) == self._frames.maxlen:
                self._dropped += 1
            self._frames.append(frame)
            self._latest = frame
        self._wake()

    def drain(self) -> list[StepFrame]:
        """Every frame since the last drain, oldest first (clears the pending wake-up)."""
        with self._lock:
            frames = list(self._frames)
            self._frames.clear()
            self._pending = False
        return frames

    def latest(self) -> StepFrame | None:
        """The newest frame ever put (drain does not clear it)."""
        return self._latest

    @property
    def dropped(self) -> int:
        """Frames dropped unseen because the deque was full."""
        return self._dropped

    @property
    def pending(self) -> bool:
        """A wake-up was sent and no drain has happened since."""
        return self._pending

    # -- model info and stats (latest value only) ---------------------------------------
    def publish_info(self, info: ModelInfo | None, lane: int = 0) -> None:
        """The layout of the worker's model on ``lane`` changed (wakes the GUI); lane 1 is
        the compared model (None: compare mode is off)."""
        self._info = {**self._info, lane: info}
        self._wake()

    def model_info(self, lane: int = 0) -> ModelInfo | None:
        return self._info.get(lane)

    def publish_stats(self, stats: PipelineStats, wake: bool = False) -> None:
        """Replace the latest stats; ``wake`` when the GUI should look now."""
        self._stats = stats
        if wake:
            self._wake()

    def stats(self) -> PipelineStats | None:
        return self._stats

    def _wake(self) -> None:
        """Call the waker unless a wake-up is already pending."""
        with self._lock:
            waker = self._waker
            if waker is None or self._pending:
                return
            self._pending = True
        try:
            waker()
        except Exception as e:  # a GUI gone or broken must not kill the worker
            self.waker_error = f"{type(e).__name__}: {e}"
            with self._lock:
                self._pending = False
