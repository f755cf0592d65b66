"""The streaming binner: packets of events in, finished frames out, in order."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from dvsapp.binning.backend import Backend, check_events
from dvsapp.binning.config import BinningConfig
from dvsapp.binning.denoise import Denoiser
from dvsapp.binning.numpy_backend import NumpyBackend
from dvsapp.binning.plan import clamp_late, count_plan, emission_plan, present_bins
from dvsapp.errors import ConfigError
from dvsapp.events.types import EVENT_DTYPE

if TYPE_CHECKING:
    import torch

BackendName = Literal["numpy", "torch"]

#: Default for ``max_empty_frames``: empty frames emitted in a row before the rest of a gap
#: is skipped (1000 frames of 128x128x2 float32 are 128 MiB).
DEFAULT_MAX_EMPTY_FRAMES = 1000


@dataclass(frozen=True)
class Frames:
    """Finished frames and their time spans.

    Attributes:
        data: ``[N, C, H, W]``; a numpy array, or a torch tensor on the binner's device.
        t_start_us: int64 ``[N]``; time mode: the bin's start; count mode: its first event's t.
        t_end_us: int64 ``[N]``, exclusive; time mode: start + window; count mode: the
            latest event's t + 1.
    """

    data: np.ndarray | torch.Tensor
    t_start_us: np.ndarray
    t_end_us: np.ndarray

    def __len__(self) -> int:
        return int(self.t_start_us.size)

    @staticmethod
    def concat(parts: list[Frames]) -> Frames:
        """Frames of several calls joined in order (``parts`` must not be empty)."""
        datas = [p.data for p in parts]
        if isinstance(datas[0], np.ndarray):
            data: Any = np.concatenate(datas)
        else:
            import torch

            data = torch.cat(datas)
        starts = np.concatenate([p.t_start_us for p in parts])
        return Frames(data, starts, np.concatenate([p.t_end_us for p in parts]))


def _cap(value: Any) -> int | None:
    """A validated ``max_empty_frames``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise ConfigError(f"binning: max_empty_frames must be an integer >= 0, got {value!r}")
    return int(value)


def _make_backend(config: BinningConfig, backend: str, device: Any) -> Backend:
    if backend == "numpy":
        if device is not None and str(device) != "cpu":
            raise ConfigError(f"binning: the numpy back end runs on the CPU, not {device!r}")
        return NumpyBackend(config)
    if backend == "torch":
        from dvsapp.binning.torch_backend import TorchBackend

        return TorchBackend(config, device)
    raise ConfigError(f"binning: backend must be 'numpy' or 'torch', got {backend!r}")


class StreamingBinner:
    """Cuts a stream of event packets into frames, as tonic's ToFrame cuts a whole recording.

    Time mode: bin ``k`` is ``[t0 + k*w, t0 + (k+1)*w)``, with ``t0`` the first event's t
    (tonic's SliceByTime) unless ``t0_us`` is given. A bin is finished when an event at or
    after its end arrives, or by :meth:`advance_to`; empty bins between events give zero
    frames. Count mode: a frame is finished by its ``event_count``-th event.

    Events must lie inside ``sensor_size`` (else :class:`ConfigError`). Late events (t
    before the open bin, or out of order within a packet, or before ``t0_us``) are counted
    in the open bin, never dropped; :attr:`late_events` counts them.

    ``max_empty_frames`` caps the empty frames emitted in a row (across calls): a gap of more
    empty bins than that emits the first ``max_empty_frames`` and skips the rest (counted in
    :attr:`skipped_frames`; later frames keep their true timestamps). The cap depends only
    on the events, not on how they were split into packets. ``None`` removes it (a one-hour
    gap with 1 ms bins then allocates 3.6 M frames).

    With ``config.denoise_us`` set, each packet first goes through a :class:`Denoiser` at the
    sensor resolution (on the host, for either back end), so frames equal tonic's ``Denoise``
    -> ``Downsample`` -> ``ToFrame``; the grid, counts and late events are those of the kept
    events, and :attr:`denoised_events` counts the dropped ones. The filter's memory spans
    packets and is cleared with the grid by :meth:`reset` (so also after :meth:`flush`).
    """

    def __init__(
        self,
        config: BinningConfig,
        backend: BackendName = "numpy",
        device: str | torch.device | None = None,
        *,
        t0_us: int | None = None,
        max_empty_frames: int | None = DEFAULT_MAX_EMPTY_FRAMES,
    ) -> None:
        self.config = config
        self.backend_name = backend
        self.max_empty_frames = _cap(max_empty_frames)
        self._backend = _make_backend(config, backend, device)
        self._t0_init = None if t0_us is None else int(t0_us)
        self.skipped_frames = 0
        self.late_events = 0
        #: Events the denoising filter dropped (all calls; 0 without ``denoise_us``).
        self.denoised_events = 0
        self.denoiser = (
            None if config.denoise_us is None else Denoiser(config.sensor_size, config.denoise_us)
        )
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next event starts a new grid (at ``t0_us`` if given), and
        the denoising filter forgets every pixel's last event."""
        if self.denoiser is not None:
            self.denoiser.reset()
        self._t0 = self._t0_init
        self._bin = 0  # absolute index of the open time bin
        self._acc = self._backend.zeros()
        self._n_open = 0  # events in the open frame
        self._t_first = 0  # count mode: t of the open frame's first event
        self._t_max = 0  # latest t in the open frame
        self._run = 0  # empty bins closed in a row

    @property
    def pending_events(self) -> int:
        """Events in the open (unfinished) frame."""
        return self._n_open

    @property
    def open_bin_start_us(self) -> int | None:
        """Time mode: start of the open bin (None before the grid is known)."""
        if self.config.mode != "time" or self._t0 is None:
            return None
        return self._t0 + self._bin * self._window

    @property
    def _window(self) -> int:
        assert self.config.time_window_us is not None
        return self.config.time_window_us

    def push(self, events: np.ndarray) -> Frames:
        """Add a packet; return the frames it finished (possibly none)."""
        return self._push(events, close=False)

    def push_and_flush(self, events: np.ndarray, *, drop_boundary_tail: bool = False) -> Frames:
        """:meth:`push` then :meth:`flush` in one pass (no copy to join their frames)."""
        return self._push(events, close=True, drop_boundary_tail=drop_boundary_tail)

    def _push(self, events: np.ndarray, close: bool, drop_boundary_tail: bool = False) -> Frames:
        if not isinstance(events, np.ndarray) or events.dtype != EVENT_DTYPE:
            raise TypeError(f"binning: events must be an array of dtype {EVENT_DTYPE}")
        if events.size == 0:
            return self.flush(drop_boundary_tail=drop_boundary_tail) if close else self._no_frames()
        check_events(events, self.config)
        if self.denoiser is not None:
            n = events.size
            events = events[self.denoiser.keep(events)]
            self.denoised_events += n - events.size
            if events.size == 0:
                return (
                    self.flush(drop_boundary_tail=drop_boundary_tail)
                    if close
                    else self._no_frames()
                )
        if self.config.mode == "count":
            frames = self._push_count(events, close)
        else:
            frames = self._push_time(events, close)
        if not close:
            return frames
        if not self._n_open or (drop_boundary_tail and self._is_boundary_tail()):
            frames = Frames(frames.data[:-1], frames.t_start_us[:-1], frames.t_end_us[:-1])
        self.reset()
        return frames

    def advance_to(self, t_us: int) -> Frames:
        """Time mode: finish every bin that ends at or before ``t_us`` (a quiet live source).

        Does nothing before the grid is known (no event and no ``t0_us``) and in count mode.
        """
        start = self.open_bin_start_us
        if start is None or t_us - start < self._window:
            return self._no_frames()
        last = (int(t_us) - start) // self._window
        none = np.zeros(0, np.int64)
        return self._emit(events=None, bins=none, counts=none, last=last, t_last=None)

    def flush(self, *, drop_boundary_tail: bool = False) -> Frames:
        """Finish the open frame (if it holds events), then :meth:`reset`.

        This is ToFrame's ``include_incomplete=True``. ``drop_boundary_tail=True`` copies a
        tonic quirk: when the last events fall exactly on a bin start (and after the first
        bin), ToFrame drops them instead of giving them a frame of their own.
        """
        frames = self._no_frames()
        if self._n_open and not (drop_boundary_tail and self._is_boundary_tail()):
            start, end = self._open_span()
            frames = self._frames(self._backend.finish(self._acc), [start], [end])
        self.reset()
        return frames

    def _open_span(self) -> tuple[int, int]:
        """(start, exclusive end) of the open frame."""
        if self.config.mode == "count":
            return self._t_first, self._t_max + 1
        start = self.open_bin_start_us
        assert start is not None
        return start, start + self._window

    def _is_boundary_tail(self) -> bool:
        return (
            self.config.mode == "time" and self._bin > 0 and self._t_max == self.open_bin_start_us
        )

    def _push_time(self, events: np.ndarray, close: bool) -> Frames:
        if self._t0 is None:
            self._t0 = int(events["t"][0])
        start = self.open_bin_start_us
        assert start is not None
        t, late = clamp_late(events["t"], start)
        self.late_events += late
        bins, counts, last = present_bins(t, start, self._window)
        return self._emit(events, bins, counts, last, int(t[-1]), close)

    def _emit(
        self,
        events: np.ndarray | None,
        bins: np.ndarray,
        counts: np.ndarray,
        last: int,
        t_last: int | None,
        close: bool = False,
    ) -> Frames:
        """Time mode: close relative bins ``0 .. last-1``; bin ``last`` stays open."""
        plan = emission_plan(
            bins,
            counts,
            last,
            open_has_events=self._n_open > 0,
            run=self._run,
            cap=self.max_empty_frames,
        )
        packet = events if events is not None else np.zeros(0, EVENT_DTYPE)
        has_acc = self._n_open > 0
        data, self._acc = self._backend.scatter(packet, plan.counts, self._acc, has_acc, close)
        open_count = int(plan.counts[-1])
        if last > 0 or not self._n_open:
            self._n_open, self._t_max = open_count, t_last if open_count else 0
        else:
            self._n_open += open_count
            self._t_max = max(self._t_max, t_last or 0)
        bins = np.append(plan.bins, last) if close else plan.bins
        starts = self._t0 + (self._bin + bins) * self._window  # type: ignore[operator]
        self._bin += last
        self._run = plan.run
        self.skipped_frames += plan.skipped
        return self._frames(data, starts, starts + self._window)

    def _push_count(self, events: np.ndarray, close: bool) -> Frames:
        t = events["t"]
        assert self.config.event_count is not None
        counts = count_plan(self._n_open, t.size, self.config.event_count)
        has_acc = self._n_open > 0
        data, self._acc = self._backend.scatter(events, counts, self._acc, has_acc, close)
        firsts = np.cumsum(counts) - counts
        done = counts.size - 1
        open_count = int(counts[-1])
        edges = firsts if open_count else firsts[:-1]
        maxima = np.maximum.reduceat(t, edges) if edges.size else np.zeros(0, np.int64)
        starts, ends = t[firsts[:done]], maxima[:done] + 1
        if done and self._n_open:
            starts[0] = self._t_first
            ends[0] = max(int(ends[0]), self._t_max + 1)
        if done or not self._n_open:
            self._t_first = int(t[firsts[-1]]) if open_count else 0
            self._t_max = int(maxima[-1]) if open_count else 0
            self._n_open = open_count
        else:
            self._t_max = max(self._t_max, int(maxima[-1]))
            self._n_open += open_count
        if close:
            start, end = self._open_span()
            starts, ends = np.append(starts, start), np.append(ends, end)
        return self._frames(data, starts, ends)

    def _frames(self, data: Any, starts: Any, ends: Any) -> Frames:
        return Frames(data, np.asarray(starts, np.int64), np.asarray(ends, np.int64))

    def _no_frames(self) -> Frames:
        none = np.zeros(0, np.int64)
        return Frames(self._backend.empty(), none, none.copy())


def bin_events(
    events: np.ndarray,
    config: BinningConfig,
    backend: BackendName = "numpy",
    device: str | torch.device | None = None,
    *,
    drop_boundary_tail: bool = False,
    **kwargs: Any,
) -> Frames:
    """All frames of one recording (push and flush on a fresh binner).

    ``kwargs`` go to :class:`StreamingBinner` (``t0_us``, ``max_empty_frames``); see
    :meth:`StreamingBinner.flush` for ``drop_boundary_tail``.
    """
    return StreamingBinner(config, backend, device, **kwargs).push_and_flush(
        events, drop_boundary_tail=drop_boundary_tail
    )
