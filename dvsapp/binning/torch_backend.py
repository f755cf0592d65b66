"""torch back end: bins on the configured device with one ``index_add_`` per packet.

Only the x, y and p columns travel to the device (once per packet, 5 bytes an event); the
timestamps stay on the host, where :mod:`dvsapp.binning.plan` turns them into per-frame run
lengths. Counts accumulate in float32, exact up to 2**24 events per pixel per frame.
"""

from __future__ import annotations

import numpy as np
import torch

from dvsapp.binning.backend import axis_lut, saturation
from dvsapp.binning.config import BinningConfig

TORCH_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "float64": torch.float64,
    "uint8": torch.uint8,
    "int16": torch.int16,
    "int32": torch.int32,
}


def _column(events: np.ndarray, name: str, device: torch.device) -> torch.Tensor:
    """One event column, contiguous, on ``device`` (bool polarity as uint8)."""
    col = events[name].copy()  # ascontiguousarray keeps odd strides on 1-element views
    if col.dtype == np.bool_:
        col = col.view(np.uint8)
    return torch.from_numpy(col).to(device)


class TorchBackend:
    """Bins with torch on ``device``; accumulators are flat float32 tensors."""

    def __init__(self, config: BinningConfig, device: str | torch.device | None = None) -> None:
        self.config = config
        self.device = torch.device("cpu" if device is None else device)
        self.shape = config.frame_shape
        c, h, w = self.shape
        self.plane = h * w
        self.size = c * h * w
        self.dtype = TORCH_DTYPES[config.dtype]
        self.top = saturation(config.dtype)
        self._luts: tuple[torch.Tensor, torch.Tensor] | None = None
        if config.downsampled:
            (sw, sh), (iw, ih) = config.sensor_size, config.input_size
            xl, yl = axis_lut(sw, iw), axis_lut(sh, ih) * w
            self._luts = torch.from_numpy(xl).to(self.device), torch.from_numpy(yl).to(self.device)

    def zeros(self) -> torch.Tensor:
        return torch.zeros(self.size, dtype=torch.float32, device=self.device)

    def empty(self) -> torch.Tensor:
        return torch.zeros((0, *self.shape), dtype=self.dtype, device=self.device)

    def spatial_index(self, events: np.ndarray) -> torch.Tensor:
        """``c*H*W + y'*W + x'`` per event, int64 on the device."""
        x = _column(events, "x", self.device).long()
        y = _column(events, "y", self.device).long()
        if self._luts is None:
            idx = y.mul_(self.shape[2]).add_(x)
        else:
            xl, yl = self._luts
            idx = yl[y].add_(xl[x])
        if self.shape[0] == 2:
            idx.add_(_column(events, "p", self.device), alpha=self.plane)
        return idx

    def scatter(
        self,
        events: np.ndarray,
        counts: np.ndarray,
        acc: torch.Tensor,
        has_acc: bool,
        close: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n_frames = counts.size - (0 if close else 1)
        idx = self.spatial_index(events)
        starts = torch.arange(counts.size, device=self.device) * self.size
        runs = torch.from_numpy(counts).to(self.device)
        idx += torch.repeat_interleave(starts, runs, output_size=len(events))
        buf = torch.zeros(counts.size * self.size, dtype=torch.float32, device=self.device)
        buf.index_add_(0, idx, torch.ones(len(events), dtype=torch.float32, device=self.device))
        buf = buf.view(counts.size, self.size)
        if has_acc:
            buf[0] += acc
        new_acc = self.zeros() if close else buf[n_frames].clone()
        return self._finish(buf[:n_frames]).view(n_frames, *self.shape), new_acc

    def finish(self, acc: torch.Tensor) -> torch.Tensor:
        return self._finish(acc[None].clone()).view(1, *self.shape)

    def _finish(self, counts: torch.Tensor) -> torch.Tensor:
        """Clip, binarize and cast float32 ``counts`` (modified in place)."""
        cfg = self.config
        if cfg.binarize:
            return (counts > 0).to(self.dtype)
        limit = min(cfg.clip or np.inf, self.top or np.inf)
        if limit != np.inf:
            counts.clamp_(max=float(limit))
        return counts.to(self.dtype)
