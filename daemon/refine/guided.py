"""Fast guided filter (He & Sun 2015) with a colour guide, in torch (CPU or CUDA).

The model's alpha is upsampled from 1024² and is blurry at full resolution; filtering it
guided by the full-resolution image snaps its edges to the image's. The linear
coefficients are solved on a grid ``step`` times coarser (the "fast" part) and
interpolated back, then applied to the full-resolution guide.

Written here rather than taken from a library: opencv-contrib's ximgproc is not in
opencv-python-headless, and the band pipeline needs control of the coarse grid's
alignment (see :class:`GuidedFilter`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: The coarse grid's step is a power of two up to this; band starts are multiples of it.
MAX_STEP = 8


def _box(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a (2r+1)² box, counting only pixels inside the tensor (so edges are not darkened)."""
    k = 2 * radius + 1
    x = F.avg_pool2d(x, (k, 1), stride=1, padding=(radius, 0), count_include_pad=False)
    return F.avg_pool2d(x, (1, k), stride=1, padding=(0, radius), count_include_pad=False)


@dataclass(frozen=True)
class GuidedFilter:
    """Filter ``radius`` (full-resolution px) and regularisation ``eps`` (on a [0, 1] guide).

    Band use: a window whose first row is a multiple of :attr:`step` sees the same
    coarse grid as the whole image, so with :attr:`halo` rows either side its kept
    rows equal a one-piece run.
    """

    radius: float
    eps: float

    @property
    def step(self) -> int:
        step = 1
        while step * 2 <= min(MAX_STEP, self.radius / 2):
            step *= 2
        return step

    @property
    def coarse_radius(self) -> int:
        return max(1, round(self.radius / self.step))

    @property
    def halo(self) -> int:
        # Two box passes on the coarse grid, one coarse row for the interpolation, one for pooling.
        return (2 * self.coarse_radius + 2) * self.step

    def __call__(self, guide: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """``guide`` 3×H×W and ``alpha`` H×W, float32 in [0, 1]; returns the refined H×W α."""
        h, w = alpha.shape
        s, r = self.step, self.coarse_radius
        image = guide.unsqueeze(0)
        p = alpha.reshape(1, 1, h, w)
        if s > 1:
            image_lo = F.avg_pool2d(image, s, stride=s, ceil_mode=True)
            p_lo = F.avg_pool2d(p, s, stride=s, ceil_mode=True)
        else:
            image_lo, p_lo = image, p
        a, b = _coefficients(image_lo, p_lo, r, self.eps)
        mean_a, mean_b = _box(a, r), _box(b, r)
        if s > 1:
            mean_a = _upsample(mean_a, s, h, w)
            mean_b = _upsample(mean_b, s, h, w)
        # aᵀI + b as one product and three in-place adds, the channels in the order sum(dim=1)
        # takes them: bit for bit the same, and three times faster than the product tensor
        # then its reduction over channels (a 736×6000 window: 44 → 14 ms).
        q = mean_a[:, 0] * image[:, 0]
        q += mean_a[:, 1] * image[:, 1]
        q += mean_a[:, 2] * image[:, 2]
        q += mean_b[:, 0]
        return q[0].clamp_(0.0, 1.0)


def _upsample(x: torch.Tensor, step: int, h: int, w: int) -> torch.Tensor:
    # scale_factor, not size: the coordinate mapping must not depend on the window's height.
    up = F.interpolate(
        x, scale_factor=step, mode="bilinear", align_corners=False, recompute_scale_factor=False
    )
    return up[:, :, :h, :w]


def _coefficients(
    image: torch.Tensor, p: torch.Tensor, r: int, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel linear model α ≈ aᵀI + b over each box (colour guided filter)."""
    mean_i = _box(image, r)  # 1×3×h×w
    mean_p = _box(p, r)
    cov_ip = _box(image * p, r) - mean_i * mean_p
    products = torch.cat([image[:, i : i + 1] * image[:, j : j + 1] for i, j in _PAIRS], dim=1)
    var = _box(products, r) - torch.cat([mean_i[:, i : i + 1] * mean_i[:, j : j + 1] for i, j in _PAIRS], 1)
    rr, rg, rb, gg, gb, bb = (var[:, k] for k in range(6))
    rr, gg, bb = rr + eps, gg + eps, bb + eps
    # Symmetric 3×3 inverse by cofactors, vectorised over every pixel.
    i_rr, i_rg, i_rb = gg * bb - gb * gb, gb * rb - rg * bb, rg * gb - gg * rb
    i_gg, i_gb, i_bb = rr * bb - rb * rb, rb * rg - rr * gb, rr * gg - rg * rg
    det = rr * i_rr + rg * i_rg + rb * i_rb
    c_r, c_g, c_b = cov_ip[:, 0], cov_ip[:, 1], cov_ip[:, 2]
    a = torch.stack(
        [
            (i_rr * c_r + i_rg * c_g + i_rb * c_b) / det,
            (i_rg * c_r + i_gg * c_g + i_gb * c_b) / det,
            (i_rb * c_r + i_gb * c_g + i_bb * c_b) / det,
        ],
        dim=1,
    )
    b = mean_p - (a * mean_i).sum(dim=1, keepdim=True)
    return a, b


_PAIRS = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))


def scaled(radius: float, eps: float, scale: float) -> GuidedFilter:
    """The filter for an image whose length knobs are multiplied by ``scale``."""
    return GuidedFilter(radius=max(1.0, radius * scale), eps=eps)


def align(value: int, step: int) -> int:
    """``value`` rounded up to a multiple of ``step`` (halos must keep windows on the coarse grid)."""
    return math.ceil(value / step) * step
