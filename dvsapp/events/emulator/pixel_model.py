"""A DVS pixel model in the manner of v2e / ESIM: frames in, events out.

Each pixel compares its log intensity with a memorised reference level. Between two frames the
log intensity is taken to move linearly, so every crossing of a threshold gets its own
timestamp interpolated between the two frame times. Per pixel ON/OFF thresholds carry a fixed
mismatch (drawn from the seed), a refractory period drops events closer than it to the pixel's
previous event, the reference leaks downwards (ON leak events at ``leak_rate_hz``), and shot
noise adds random ON/OFF events at ``shot_noise_rate_hz`` per pixel.

Choices worth knowing:

- The reference moves by every threshold crossed, also when the refractory period drops the
  event: a real pixel held in reset loses the change that happened meanwhile.
- Shot-noise events do not move the reference; they pass the refractory filter like any event.
- With a leak, each pixel starts at a random phase of its leak cycle, so leak events do not
  fire in sync across the array.
- Intensities: uint8 is scaled by 1/255, uint16 by 1/65535, floats are taken as linear
  intensity (nominally 0..1). BGR(A) frames are converted to luma (ITU-R BT.601 weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dvsapp.errors import ConfigError
from dvsapp.events.types import EVENT_DTYPE, make_events

#: BT.601 luma weights in OpenCV's B, G, R channel order.
_BGR_LUMA = np.array([0.114, 0.587, 0.299], dtype=np.float32)
#: Smallest threshold a pixel may get from the mismatch draw.
MIN_THRESHOLD = 0.01
_NEVER = np.iinfo(np.int64).min // 4


@dataclass(frozen=True)
class PixelModelConfig:
    """Parameters of the DVS pixel model (thresholds in log-intensity units)."""

    pos_threshold: float = 0.2
    neg_threshold: float = 0.2
    threshold_sigma: float = 0.03  # per-pixel mismatch (std), fixed by ``seed``
    refractory_us: int = 100
    leak_rate_hz: float = 0.01  # ON leak events per pixel per second
    shot_noise_rate_hz: float = 0.001  # random ON/OFF events per pixel per second
    log_eps: float = 0.01  # log(I + eps), I linear in 0..1
    seed: int = 0

    def __post_init__(self) -> None:
        if not (self.pos_threshold > 0 and self.neg_threshold > 0):
            raise ConfigError("pixel model thresholds must be > 0")
        checks = {
            "threshold_sigma": self.threshold_sigma,
            "refractory_us": self.refractory_us,
            "leak_rate_hz": self.leak_rate_hz,
            "shot_noise_rate_hz": self.shot_noise_rate_hz,
        }
        for name, value in checks.items():
            if not value >= 0:
                raise ConfigError(f"pixel model {name} must be >= 0, not {value}")
        if not self.log_eps > 0:
            raise ConfigError(f"pixel model log_eps must be > 0, not {self.log_eps}")


def to_luma(frame: np.ndarray) -> np.ndarray:
    """A frame (HxW grey or HxWx3/4 BGR(A); uint8, uint16 or float) as float32 linear luma."""
    f = np.asarray(frame)
    if f.dtype == np.uint8:
        scale = 1.0 / 255.0
    elif f.dtype == np.uint16:
        scale = 1.0 / 65535.0
    elif np.issubdtype(f.dtype, np.floating):
        scale = 1.0
    else:
        raise ConfigError(f"frame dtype must be uint8, uint16 or float, not {f.dtype}")
    if f.ndim == 3 and f.shape[2] == 1:
        f = f[:, :, 0]
    if f.ndim == 3 and f.shape[2] in (3, 4):
        luma = f[:, :, :3].astype(np.float32) @ _BGR_LUMA
    elif f.ndim == 2:
        luma = f.astype(np.float32)
    else:
        raise ConfigError(f"frame must be HxW or HxWx3/4, not shape {f.shape}")
    if scale != 1.0:
        luma *= np.float32(scale)
    return luma


class DvsPixelModel:
    """Turns successive frames of a ``width`` x ``height`` scene into DVS events.

    ``reset(frame, t_us)`` sets every pixel's reference to the frame; each ``emit(frame, t_us)``
    returns the events (our dtype, time-sorted) between the previous frame and this one.
    Output is deterministic for a given seed and frame sequence.
    """

    def __init__(self, width: int, height: int, config: PixelModelConfig | None = None) -> None:
        if width <= 0 or height <= 0:
            raise ConfigError(f"pixel array must be at least 1x1, not {width}x{height}")
        self.width = int(width)
        self.height = int(height)
        self.config = config or PixelModelConfig()
        cfg = self.config
        mismatch_seq, self._noise_seq = np.random.SeedSequence(cfg.seed).spawn(2)
        rng = np.random.default_rng(mismatch_seq)
        n = self.width * self.height
        self.pos_thresholds = np.maximum(
            cfg.pos_threshold + cfg.threshold_sigma * rng.standard_normal(n), MIN_THRESHOLD
        ).astype(np.float32)
        self.neg_thresholds = np.maximum(
            cfg.neg_threshold + cfg.threshold_sigma * rng.standard_normal(n), MIN_THRESHOLD
        ).astype(np.float32)
        self._rng = np.random.default_rng(self._noise_seq)
        self._ref: np.ndarray | None = None  # memorised log level per pixel (flat)
        self._prev_log: np.ndarray | None = None
        self._prev_t = 0
        self._last_event = np.full(n, _NEVER, dtype=np.int64)

    @property
    def initialised(self) -> bool:
        """Whether ``reset`` has given the pixels a reference level."""
        return self._ref is not None

    def _log(self, frame: np.ndarray) -> np.ndarray:
        luma = to_luma(frame)
        if luma.shape != (self.height, self.width):
            raise ConfigError(
                f"frame is {luma.shape[1]}x{luma.shape[0]}, the pixel model "
                f"{self.width}x{self.height}"
            )
        return np.log(luma.ravel() + np.float32(self.config.log_eps))

    def reset(self, first_frame: np.ndarray, t_us: int) -> None:
        """Set every pixel's reference to ``first_frame`` at time ``t_us``; forget past events."""
        log_i = self._log(first_frame)
        self._rng = np.random.default_rng(self._noise_seq)
        ref = log_i.copy()
        if self.config.leak_rate_hz > 0:  # random leak phase per pixel
            ref -= self._rng.random(ref.size, dtype=np.float32) * self.pos_thresholds
        self._ref = ref
        self._prev_log = log_i
        self._prev_t = int(t_us)
        self._last_event.fill(_NEVER)

    def emit(self, frame: np.ndarray, t_us: int) -> np.ndarray:
        """The events from the previous frame to ``frame`` at ``t_us`` (time-sorted).

        The first call without a ``reset`` resets on this frame and returns no events.
        """
        if self._ref is None or self._prev_log is None:
            self.reset(frame, t_us)
            return np.zeros(0, dtype=EVENT_DTYPE)
        t0, t1 = self._prev_t, int(t_us)
        if t1 <= t0:
            raise ConfigError(f"frame time {t1} us is not after the previous frame's {t0} us")
        cfg = self.config
        dt = t1 - t0
        log_i = self._log(frame)
        ref = self._ref
        drift = np.float32(cfg.leak_rate_hz * dt * 1e-6) * self.pos_thresholds
        d0 = self._prev_log - ref  # offset from the reference at t0
        d1 = log_i - (ref - drift) if cfg.leak_rate_hz > 0 else log_i - ref
        n_on = np.floor(np.maximum(d1, 0) / self.pos_thresholds).astype(np.int64)
        n_off = np.floor(np.maximum(-d1, 0) / self.neg_thresholds).astype(np.int64)
        ref += n_on * self.pos_thresholds - n_off * self.neg_thresholds
        if cfg.leak_rate_hz > 0:
            ref -= drift
        self._prev_log = log_i
        self._prev_t = t1

        pix, t, p = self._crossings(d0, d1, n_on, n_off, t0, dt)
        noise = self._shot_noise(t0, dt)
        if noise is not None:  # merge the (few) noise events into the pixel-grouped crossings
            key = pix * (dt + 1) + (t - t0)  # ascending: by pixel, then time
            n_pix, n_t, n_p = noise
            n_key = n_pix * (dt + 1) + (n_t - t0)
            order = np.argsort(n_key, kind="stable")
            at = np.searchsorted(key, n_key[order], side="right")
            pix = np.insert(pix, at, n_pix[order])
            t = np.insert(t, at, n_t[order])
            p = np.insert(p, at, n_p[order])
        if cfg.refractory_us > 0 and len(pix):
            keep = self._refractory(pix, t)
            pix, t, p = pix[keep], t[keep], p[keep]
        if len(pix):  # pix is grouped, t sorted within groups: the group's last is latest
            group_last = np.ones(len(pix), dtype=bool)
            group_last[:-1] = pix[:-1] != pix[1:]
            self._last_event[pix[group_last]] = t[group_last]
        if dt < 1 << 16:  # t - t0 - 1 fits 16 bits: numpy's stable sort is then a radix sort
            order = np.argsort((t - (t0 + 1)).astype(np.uint16), kind="stable")
        else:
            order = np.argsort(t, kind="stable")
        pix, t, p = pix[order], t[order], p[order]
        return make_events(pix % self.width, pix // self.width, t, p)

    # -- internals -----------------------------------------------------------------------
    def _crossings(
        self,
        d0: np.ndarray,
        d1: np.ndarray,
        n_on: np.ndarray,
        n_off: np.ndarray,
        t0: int,
        dt: int,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Threshold crossings grouped by pixel, in time order within each pixel."""
        n = n_on + n_off  # at most one of the two is non-zero
        active = np.flatnonzero(n)
        counts = n[active]
        total = int(counts.sum())
        if total == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty.copy(), np.zeros(0, dtype=bool)
        pix = np.repeat(active, counts)
        starts = np.cumsum(counts) - counts
        k = np.arange(total, dtype=np.int64) - np.repeat(starts, counts) + 1  # 1..n per pixel
        on = n_on[pix] > 0
        thr = np.where(on, self.pos_thresholds[pix], -self.neg_thresholds[pix])
        a, b = d0[pix], d1[pix]
        s = (k.astype(np.float32) * thr - a) / (b - a)  # where in the interval crossing k lies
        np.clip(s, 0.0, 1.0, out=s)
        t = np.ceil(s * np.float32(dt)).astype(np.int64)
        np.clip(t, 1, dt, out=t)
        t += t0
        return pix, t, on

    def _shot_noise(self, t0: int, dt: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        rate = self.config.shot_noise_rate_hz
        if rate <= 0:
            return None
        n_pix = self.width * self.height
        count = int(self._rng.poisson(rate * dt * 1e-6 * n_pix))
        if count == 0:
            return None
        pix = self._rng.integers(0, n_pix, count, dtype=np.int64)
        t = t0 + 1 + self._rng.integers(0, dt, count, dtype=np.int64)
        p = self._rng.random(count) < 0.5
        return pix, t, p

    def _refractory(self, pix: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Keep-mask for events grouped by pixel and time-sorted within each pixel: greedily
        drop each event closer than the refractory period to the pixel's previous kept one."""
        r = self.config.refractory_us
        first = np.ones(len(pix), dtype=bool)
        first[1:] = pix[1:] != pix[:-1]
        prev_t = np.empty_like(t)
        prev_t[1:] = t[:-1]
        prev_t[first] = self._last_event[pix[first]]
        bad = t - prev_t < r
        keep = np.ones(len(pix), dtype=bool)
        if not bad.any():
            return keep
        # Walk only the pixels with a violation, one event rank at a time.
        sub = np.flatnonzero(np.isin(pix, np.unique(pix[bad])))
        spix, st = pix[sub], t[sub]
        sfirst = first[sub]
        group_start = np.maximum.accumulate(np.where(sfirst, np.arange(len(sub)), 0))
        rank = np.arange(len(sub)) - group_start
        last = self._last_event.copy()
        by_rank = np.argsort(rank, kind="stable")
        bounds = np.searchsorted(rank[by_rank], np.arange(rank.max() + 2))
        for r_i in range(rank.max() + 1):
            idx = by_rank[bounds[r_i] : bounds[r_i + 1]]
            ok = st[idx] - last[spix[idx]] >= r
            last[spix[idx[ok]]] = st[idx[ok]]
            keep[sub[idx[~ok]]] = False
        return keep
