"""Foreground colour estimation ("decontamination"), multi-level, in torch (CPU or CUDA).

At a semi-transparent pixel the photo holds ``I = αF + (1-α)B``: part subject colour F,
part old background B. Putting the original colours on white keeps that B (a halo of
the old background). We solve for F and B as in Germer et al. 2020 ("Fast multi-level
foreground estimation"): per pixel, least squares of the compositing equation plus a
smoothness term towards the 4 neighbours, weighted by ``eps + |Δα|``, swept
coarse-to-fine over an image pyramid.

Written in torch rather than calling pymatting: pymatting's numba loop is whole-image
and single-threaded, and the band pipeline needs the finest sweeps per band
(:func:`sweep`, halo = one row per iteration) after a global solve at working
resolution (:func:`estimate_multilevel`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

REGULARISATION = 1e-5
GRADIENT_WEIGHT = 1.0
SMALL_LEVEL = 32
SMALL_ITERATIONS = 10
BIG_ITERATIONS = 2
#: Jacobi sweeps at full resolution, after the working-resolution solve is upsampled.
FULL_RES_ITERATIONS = 3

_SHIFTS = ((1, 0), (-1, 0), (0, 1), (0, -1))


def _neighbours(x: torch.Tensor) -> list[torch.Tensor]:
    """The 4-neighbours of every pixel of a C×H×W tensor, the border replicated."""
    padded = F.pad(x.unsqueeze(0), (1, 1, 1, 1), mode="replicate")[0]
    h, w = x.shape[-2:]
    return [padded[:, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy, dx in _SHIFTS]


def sweep(
    image: torch.Tensor, alpha: torch.Tensor, fg: torch.Tensor, bg: torch.Tensor, iterations: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``iterations`` Jacobi updates of F and B (each 3×H×W) for ``image`` 3×H×W and ``alpha`` H×W.

    Each update reads only the 4-neighbours, so ``iterations`` rows of halo make a band exact.
    """
    a0 = alpha.unsqueeze(0)
    a1 = 1.0 - a0
    alpha_n = _neighbours(a0)
    weights = [REGULARISATION + GRADIENT_WEIGHT * (a0 - an).abs() for an in alpha_n]
    total = torch.stack(weights).sum(dim=0)
    m00 = a0 * a0 + total
    m01 = a0 * a1
    m11 = a1 * a1 + total
    det = m00 * m11 - m01 * m01
    for _ in range(iterations):
        fg_n, bg_n = _neighbours(fg), _neighbours(bg)
        rhs_f = a0 * image + sum(w * n for w, n in zip(weights, fg_n, strict=True))
        rhs_b = a1 * image + sum(w * n for w, n in zip(weights, bg_n, strict=True))
        fg = ((m11 * rhs_f - m01 * rhs_b) / det).clamp_(0.0, 1.0)
        bg = ((m00 * rhs_b - m01 * rhs_f) / det).clamp_(0.0, 1.0)
    return fg, bg


def _level_sizes(h: int, w: int) -> list[tuple[int, int]]:
    levels = max(1, math.ceil(math.log2(max(h, w))))
    sizes = [(max(1, round(h ** (i / levels))), max(1, round(w ** (i / levels)))) for i in range(levels + 1)]
    return list(dict.fromkeys(sizes))


def estimate_multilevel(image: torch.Tensor, alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """F and B (3×H×W each) for a whole image that fits in memory (working resolution)."""
    h, w = alpha.shape
    mean = image.mean(dim=(1, 2), keepdim=True)
    fg = mean.expand(3, 1, 1).clone()
    bg = fg.clone()
    for lh, lw in _level_sizes(h, w):
        level_image = F.interpolate(image.unsqueeze(0), size=(lh, lw), mode="area")[0]
        level_alpha = F.interpolate(alpha.reshape(1, 1, h, w), size=(lh, lw), mode="area")[0, 0]
        fg = F.interpolate(fg.unsqueeze(0), size=(lh, lw), mode="nearest")[0]
        bg = F.interpolate(bg.unsqueeze(0), size=(lh, lw), mode="nearest")[0]
        iterations = SMALL_ITERATIONS if max(lh, lw) <= SMALL_LEVEL else BIG_ITERATIONS
        fg, bg = sweep(level_image, level_alpha, fg, bg, iterations)
    return fg, bg


def keep_opaque_colours(image: torch.Tensor, alpha: torch.Tensor, fg: torch.Tensor) -> torch.Tensor:
    """Where α is 1 the photo already is the subject's colour: keep it bit for bit."""
    return torch.where((alpha >= 1.0).unsqueeze(0), image, fg)
