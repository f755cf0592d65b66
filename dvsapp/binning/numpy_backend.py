"""numpy back end: one flat ``np.bincount`` per memory block of frames."""

from __future__ import annotations

import numpy as np

from dvsapp.binning.backend import axis_lut, saturation
from dvsapp.binning.config import BinningConfig

#: Counts per bincount call (int64: 16 MiB), so the scratch array stays cache-friendly and
#: peak memory is the output plus one block, however many frames a packet closes.
BLOCK_ELEMS = 1 << 21


class NumpyBackend:
    """Bins on the CPU with numpy; accumulators are flat int64 counts."""

    def __init__(self, config: BinningConfig) -> None:
        self.config = config
        self.shape = config.frame_shape
        c, h, w = self.shape
        self.plane = h * w
        self.size = c * h * w
        self.dtype = np.dtype(config.dtype)
        self.top = saturation(config.dtype)
        self.itype = np.int32 if self.size < 2**31 else np.int64
        self._luts: tuple[np.ndarray, np.ndarray] | None = None
        if config.downsampled:
            (sw, sh), (iw, ih) = config.sensor_size, config.input_size
            luts = axis_lut(sw, iw), axis_lut(sh, ih) * w
            self._luts = luts[0].astype(self.itype), luts[1].astype(self.itype)

    def zeros(self) -> np.ndarray:
        return np.zeros(self.size, np.int64)

    def empty(self) -> np.ndarray:
        return np.zeros((0, *self.shape), self.dtype)

    def spatial_index(self, events: np.ndarray) -> np.ndarray:
        """``c*H*W + y'*W + x'`` per event (int32; int64 for frames over 2**31 pixels)."""
        itype = self.itype
        x, y = events["x"], events["y"]
        if self._luts is None:
            idx = np.multiply(y, itype(self.shape[2]), dtype=itype)
            idx += x
        else:
            xl, yl = self._luts
            idx = yl.take(y)
            idx += xl.take(x)
        if self.shape[0] == 2:
            idx += events["p"].view(np.uint8) * itype(self.plane)
        return idx

    def scatter(
        self,
        events: np.ndarray,
        counts: np.ndarray,
        acc: np.ndarray,
        has_acc: bool,
        close: bool = False,
    ) -> tuple[np.ndarray, np.ndarray]:
        n_frames = counts.size - (0 if close else 1)
        out = np.empty((n_frames, self.size), self.dtype)
        block = max(1, BLOCK_ELEMS // self.size)
        ends = np.concatenate(([0], np.cumsum(counts)))
        new_acc = acc
        for lo in range(0, counts.size, block):
            hi = min(lo + block, counts.size)
            part = self._count_block(events[ends[lo] : ends[hi]], counts[lo:hi])
            if lo == 0 and has_acc:
                part[0] += acc
            if hi == counts.size:
                new_acc = self.zeros() if close else part[-1].copy()
                part = part if close else part[:-1]
            self._finish_into(part, out[lo : lo + part.shape[0]])
        return out.reshape(n_frames, *self.shape), new_acc

    def _count_block(self, events: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """int64 counts ``[len(counts), C*H*W]`` of consecutive runs of ``counts[i]`` events."""
        flat = np.repeat(np.arange(counts.size, dtype=np.int64) * self.size, counts)
        flat += self.spatial_index(events)
        part = np.bincount(flat, minlength=counts.size * self.size)
        return part.reshape(counts.size, self.size)

    def finish(self, acc: np.ndarray) -> np.ndarray:
        out = np.empty((1, self.size), self.dtype)
        self._finish_into(acc[None].copy(), out)
        return out.reshape(1, *self.shape)

    def _finish_into(self, counts: np.ndarray, out: np.ndarray) -> None:
        """Clip, binarize and cast int64 ``counts`` (modified in place) into ``out``."""
        cfg = self.config
        if cfg.binarize:
            out[...] = counts > 0
            return
        limit = min(cfg.clip or np.inf, self.top or np.inf)
        if limit != np.inf:
            np.minimum(counts, int(limit), out=counts)
        out[...] = counts
