"""A small numpy rasteriser: anti-aliased capsules (distance-to-segment) into grey float frames.

A capsule is the set of points within ``r`` of the segment ``a -> b``; its coverage of a pixel
(centre at integer coordinates) is ``clip(r + 0.5 - distance, 0, 1)``, a one-pixel linear ramp
that moves smoothly with sub-pixel motion, which is what a DVS pixel model needs (a hard edge
would make every crossing pixel jump by the full contrast in one frame).

Speed: the static scene (background and the parts of the figure that do not move) is drawn once;
each frame only computes the moving capsules inside their own bounding boxes, then blends the
coverage of each layer (a union by maximum) over the static image.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Capsule = tuple[float, float, float, float, float]  # ax, ay, bx, by, r


class CapsuleRenderer:
    """Draws layers of capsules at fixed grey levels over a static image (float32, H x W)."""

    def __init__(self, static: np.ndarray) -> None:
        self.static = np.ascontiguousarray(static, dtype=np.float32)
        self.height, self.width = self.static.shape
        self._xs = np.arange(self.width, dtype=np.float32)
        self._ys = np.arange(self.height, dtype=np.float32)[:, None]
        self._cov = np.zeros((2, self.height, self.width), dtype=np.float32)
        self._frame = np.empty_like(self.static)

    def coverage(self, out: np.ndarray, capsules: Sequence[Capsule]) -> np.ndarray:
        """Union (maximum) of the capsules' coverage, accumulated into ``out``."""
        for ax, ay, bx, by, r in capsules:
            pad = r + 1.0
            x0 = max(int(np.floor(min(ax, bx) - pad)), 0)
            x1 = min(int(np.ceil(max(ax, bx) + pad)) + 1, self.width)
            y0 = max(int(np.floor(min(ay, by) - pad)), 0)
            y1 = min(int(np.ceil(max(ay, by) + pad)) + 1, self.height)
            if x0 >= x1 or y0 >= y1:
                continue
            px = self._xs[x0:x1] - np.float32(ax)
            py = self._ys[y0:y1] - np.float32(ay)
            dx, dy = np.float32(bx - ax), np.float32(by - ay)
            len2 = float(dx * dx + dy * dy)
            if len2 > 1e-9:
                s = (px * (dx / len2) + py * (dy / len2)).clip(0.0, 1.0)
                qx = px - s * dx
                qy = py - s * dy
                dist = np.sqrt(qx * qx + qy * qy)
            else:
                dist = np.sqrt(px * px + py * py)
            cov = np.float32(r + 0.5) - dist
            np.clip(cov, 0.0, 1.0, out=cov)
            region = out[y0:y1, x0:x1]
            np.maximum(region, cov, out=region)
        return out

    def render(
        self, layers: Sequence[tuple[Sequence[Capsule], float]], gain: float = 1.0
    ) -> np.ndarray:
        """The static image with each (capsules, level) layer blended over it in order, times
        ``gain`` (global lighting). Returns an internal buffer, valid until the next call."""
        frame = self._frame
        np.copyto(frame, self.static)
        for i, (capsules, level) in enumerate(layers):
            cov = self._cov[i % 2]
            cov.fill(0.0)
            self.coverage(cov, capsules)
            # frame += (level - frame) * cov
            tmp = np.subtract(np.float32(level), frame)
            tmp *= cov
            frame += tmp
        if gain != 1.0:
            frame *= np.float32(gain)
        return frame


def draw_static(
    background: np.ndarray, layers: Sequence[tuple[Sequence[Capsule], float]]
) -> np.ndarray:
    """``background`` with the capsule layers blended over it (drawn once per scene)."""
    renderer = CapsuleRenderer(background)
    return renderer.render(layers).copy()
