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

    Each update reads only the 4-neighbours, so ``iterations`` rows (or columns) of halo make a
    band (or a block) exact.
    """
    a0 = alpha.unsqueeze(0)
    a1 = 1.0 - a0
    stacked = (a0 - torch.stack(_neighbours(a0))).abs_().mul_(GRADIENT_WEIGHT).add_(REGULARISATION)
    weights = list(stacked.unbind())
    total = stacked.sum(dim=0)
    m00 = a0 * a0 + total
    m01 = a0 * a1
    m11 = a1 * a1 + total
    det = m00 * m11 - m01 * m01
    # F and B are swept as one 2×3×H×W state, so every step is one tensor operation, not two,
    # and in place: at full resolution each fresh tensor is MB of newly zeroed pages, and on a
    # busy CPU each operation costs a wait for torch's worker threads. Each pixel still goes
    # through the plain formulas in the same order, so results are bit for bit the same.
    h, w = alpha.shape
    state = torch.stack([fg, bg])
    data = torch.stack([a0 * image, a1 * image])
    diagonal = torch.stack([m11, m00])
    scratch = torch.empty_like(state)
    for _ in range(iterations):
        rhs = _weighted_sum(_neighbours(state.view(6, h, w)), weights, scratch.view(6, h, w))
        rhs = rhs.view(2, 3, h, w).add_(data)
        cross = torch.mul(m01, rhs, out=scratch)
        state = diagonal * rhs  # F: (m11·rhs_f − m01·rhs_b) / det, B: (m00·rhs_b − m01·rhs_f) / det
        state[0].sub_(cross[1])
        state[1].sub_(cross[0])
        state.div_(det).clamp_(0.0, 1.0)
    return state[0], state[1]


def _weighted_sum(
    values: list[torch.Tensor], weights: list[torch.Tensor], scratch: torch.Tensor
) -> torch.Tensor:
    """Σ wᵢ·vᵢ, summed left to right."""
    total = weights[0] * values[0]
    for w, v in zip(weights[1:], values[1:], strict=True):
        total.add_(torch.mul(w, v, out=scratch))
    return total


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
