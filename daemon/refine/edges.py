"""Guided refinement limited to the model's uncertain edge band.

A guided filter over the whole upsampled alpha changes α wherever its window reaches a
ramp, including pixels the model is sure of: it leaves a haze of 0.95s inside the edge
(which decontamination then "un-mixes" into tinted colours) and of 0.05s outside it.
So the filter's result is used only within ``band_radius`` px of where the model itself
is unsure (α in (:data:`UNCERTAIN`, 1 − :data:`UNCERTAIN`)); elsewhere the model is
trusted and its α is snapped to 0 or 1.

The upsampled α is bilinear from the model's 1024² grid, so its edge ramps are wider than
the photo's; it is steepened around 0.5 (:data:`EDGE_GAIN`) before the guided filter
snaps it to the image's edges. On the real-photo scenes of ``bench/quality.py`` this
band-limited, steepened refinement cut the halo by a third against ``raw`` where
whole-image filtering cut it by about a quarter, and lowered SAD instead of raising it
(the measured table is in the issue-6 note).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from daemon.refine.guide import Guide
from daemon.refine.guided import MAX_STEP, GuidedFilter, align

UNCERTAIN = 0.1
EDGE_GAIN = 1.5


@dataclass(frozen=True)
class EdgeRefiner:
    """A guided filter applied only in the uncertain band; band-exact with :attr:`halo` rows."""

    guided: GuidedFilter
    #: Columns per block; a multiple of MAX_STEP so every block starts on the coarse grid.
    block_columns: int = 1024

    @property
    def band_radius(self) -> int:
        return max(1, round(self.guided.radius / 2))

    @property
    def step(self) -> int:
        return self.guided.step

    @property
    def halo(self) -> int:
        return self.guided.halo + self.band_radius

    def __call__(self, guide: Guide, alpha: torch.Tensor) -> torch.Tensor:
        """``guide`` 3×H×W (:class:`~daemon.refine.guide.Guide`) and ``alpha`` H×W, float32 in [0, 1].

        Returns the refined H×W α.

        Runs per block of :attr:`block_columns` columns with :attr:`halo` columns either side
        (aligned to the coarse grid, so blocks equal a one-piece run), skipping blocks with no
        unsure α near them: a 12000 px wide band no longer filters every column at once. Within
        a block only the box around its unsure pixels is filtered, with the same aligned halo:
        where an edge crosses a block in a few dozen rows or columns, the rest is snapped α
        anyway (half of a 24 MP product cut-out's filtering was spent there).
        """
        snapped, unsure, boxes = _masks(alpha)
        if not boxes.any():  # most windows of a large file: nothing to refine
            return snapped
        height, width = alpha.shape
        margin = align(self.halo, MAX_STEP)
        out = snapped.clone()
        r = self.band_radius
        for c0 in range(0, width, self.block_columns):
            c1 = min(width, c0 + self.block_columns)
            near = boxes.box(max(0, c0 - r), c1 + r)
            if near is None:
                continue
            (first_row, last_row), (first_column, last_column) = near
            # Starts on the coarse grid, as the window's own first row is (GuidedFilter's band rule).
            top = max(0, (first_row - margin) // MAX_STEP * MAX_STEP)
            bottom = min(height, align(last_row + margin, MAX_STEP))
            left = max(0, (first_column - margin) // MAX_STEP * MAX_STEP)
            right = min(width, align(last_column + margin, MAX_STEP))
            block = (slice(top, bottom), slice(left, right))
            refined = self._refine(guide[:, block[0], block[1]], alpha[block], unsure[block], snapped[block])
            # The block's own columns only; beyond the unsure pixels' band the result is snapped α.
            keep0, keep1 = max(c0, left), min(c1, right)
            out[top:bottom, keep0:keep1] = refined[:, keep0 - left : keep1 - left]
        return out

    def _refine(
        self, guide: torch.Tensor, alpha: torch.Tensor, unsure: torch.Tensor, snapped: torch.Tensor
    ) -> torch.Tensor:
        band = self._grow(unsure)
        steep = ((alpha - 0.5) * EDGE_GAIN + 0.5).clamp_(0.0, 1.0)
        return torch.where(band, self.guided(guide.contiguous(), steep), snapped)

    def _grow(self, unsure: torch.Tensor) -> torch.Tensor:
        """``unsure`` dilated by a (2r+1)² square: two 1-D max pools, as a square one costs r times more."""
        r = self.band_radius
        if unsure.device.type == "cpu":
            # OpenCV's uint8 dilation by a rectangle (separable, SIMD) gives the same mask for a
            # 30th of torch's float max pools on the CPU (2 s of a 24 MP product cut-out); its
            # default border value never widens the band either.
            mask = np.ascontiguousarray(unsure.numpy()).view(np.uint8)
            grown = cv2.dilate(mask, np.ones((2 * r + 1, 2 * r + 1), np.uint8))
            return torch.from_numpy(grown.view(np.bool_))
        x = unsure.to(torch.float32)[None, None]
        # max_pool2d pads with -inf, so the image border never widens the band.
        x = F.max_pool2d(x, (2 * r + 1, 1), stride=1, padding=(r, 0))
        x = F.max_pool2d(x, (1, 2 * r + 1), stride=1, padding=(0, r))
        return x[0, 0] > 0


#: Bounds as float32 values, for OpenCV's inclusive comparisons: torch and numpy compare float32
#: α with the float32 roundings of 0.5, UNCERTAIN and 1 − UNCERTAIN, strictly where it says so.
_HALF_BELOW = float(np.nextafter(np.float32(0.5), np.float32(0.0)))
_UNSURE_LOW = float(np.nextafter(np.float32(UNCERTAIN), np.float32(1.0)))
_UNSURE_HIGH = float(np.nextafter(np.float32(1.0 - UNCERTAIN), np.float32(0.0)))


class _UnsureBoxes:
    """Where ``unsure`` is set within column ranges: (rows, columns) as [first, last + 1) pairs."""

    def __init__(self, unsure: torch.Tensor, mask: np.ndarray | None) -> None:
        self._unsure, self._mask = unsure, mask  # mask: the same, uint8 0/1, on the CPU

    def any(self) -> bool:
        return bool(self._mask.any()) if self._mask is not None else bool(self._unsure.any())

    def box(self, left: int, right: int) -> tuple[tuple[int, int], tuple[int, int]] | None:
        if self._mask is not None:
            part = self._mask[:, left:right]
            # numpy's row and column maxima of uint8: torch's any(dim) on a column slice took 10x
            # as long, OpenCV's reduce along rows 70x.
            rows = np.flatnonzero(part.max(axis=1))
            if not len(rows):
                return None
            columns = np.flatnonzero(part.max(axis=0)) + left
        else:
            near = self._unsure[:, left:right]
            rows = torch.nonzero(near.any(dim=1)).flatten().numpy(force=True)
            if not len(rows):
                return None
            columns = torch.nonzero(near.any(dim=0)).flatten().numpy(force=True) + left
        return (int(rows[0]), int(rows[-1]) + 1), (int(columns[0]), int(columns[-1]) + 1)


def _masks(alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, _UnsureBoxes]:
    """(α snapped to 0 or 1 at 0.5, where the model is unsure, the boxes of the latter)."""
    if alpha.device.type != "cpu":
        unsure = (alpha > UNCERTAIN) & (alpha < 1.0 - UNCERTAIN)
        return (alpha >= 0.5).to(alpha.dtype), unsure, _UnsureBoxes(unsure, None)
    # One OpenCV pass each instead of torch's compare, compare, and, convert (0.1 s a 24 MP file).
    values = np.ascontiguousarray(alpha.numpy())
    snapped = cv2.threshold(values, _HALF_BELOW, 1.0, cv2.THRESH_BINARY)[1]
    mask = cv2.inRange(values, _UNSURE_LOW, _UNSURE_HIGH)
    np.bitwise_and(mask, 1, out=mask)
    unsure = torch.from_numpy(mask.view(np.bool_))
    return torch.from_numpy(snapped), unsure, _UnsureBoxes(unsure, mask)
