"""Full-resolution work in horizontal bands with halos, so neighbourhood filters have no seams.

A filter that looks ``h`` rows up and down gives, on rows ``[y0, y1)``, exactly what a
one-piece run gives when it is fed rows ``[y0 - H, y1 + H)`` with ``H`` ≥ the sum of the
halos of every filter in the chain. :func:`windows` turns a reader's plain bands into such
overlapping windows while holding only one window of pixels.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Window:
    """Rows ``[top, bottom)`` of the image, of which ``[y0, y1)`` are the ones to keep."""

    y0: int
    y1: int
    top: int
    pixels: np.ndarray

    @property
    def bottom(self) -> int:
        return self.top + self.pixels.shape[0]

    @property
    def inner(self) -> slice:
        """The kept rows, as a slice of anything computed on the whole window."""
        return slice(self.y0 - self.top, self.y1 - self.top)


def windows(bands: Iterator[tuple[int, np.ndarray]], height: int, step: int, halo: int) -> Iterator[Window]:
    """Windows of ``step`` kept rows and up to ``halo`` rows either side, from consecutive ``bands``."""
    chunks: list[tuple[int, np.ndarray]] = []
    have = 0  # rows [chunks[0].y, have) are buffered
    for y0 in range(0, height, step):
        y1 = min(height, y0 + step)
        top, bottom = max(0, y0 - halo), min(height, y1 + halo)
        while have < bottom:
            start, band = next(bands)
            if start != have:
                raise ValueError(f"reader gave rows from {start}, expected {have}")
            chunks.append((start, band))
            have = start + band.shape[0]
        while chunks and chunks[0][0] + chunks[0][1].shape[0] <= top:
            chunks.pop(0)
        pieces = [band[max(0, top - s) : bottom - s] for s, band in chunks if s < bottom]
        yield Window(y0, y1, top, pieces[0] if len(pieces) == 1 else np.concatenate(pieces))


@dataclass(frozen=True)
class Axis:
    """Bilinear sampling positions along one axis, half-pixel centres (as ``cv2.resize``)."""

    low: np.ndarray
    high: np.ndarray
    weight: np.ndarray

    @classmethod
    def mapping(cls, source: int, target: int, start: int = 0, stop: int | None = None) -> Axis:
        stop = target if stop is None else stop
        centres = (np.arange(start, stop, dtype=np.float64) + 0.5) * (source / target) - 0.5
        centres = np.clip(centres, 0.0, source - 1)
        low = np.floor(centres).astype(np.intp)
        high = np.minimum(low + 1, source - 1)
        return cls(low, high, (centres - low).astype(np.float32))


def resize_rows(
    image: np.ndarray, width: int, height: int, y0: int, y1: int, work: np.ndarray | None = None
) -> np.ndarray:
    """Rows ``[y0, y1)`` of ``image`` (H×W or H×W×C) bilinearly resized to ``width``×``height``.

    Each output row depends only on its own coordinate, so bands stitch with no
    seam and equal a one-piece resize.

    A single-channel image (α, the shadow) has its rows interpolated in numpy on the source
    grid (the few source rows the band samples, at the source's width), then its columns by
    ``cv2.resize`` to ``width`` with the row count kept (same half-pixel mapping; a row count
    that does not change is no interpolation): bilinear is separable, and this order does the
    numpy work on a quarter of the pixels or fewer. The result equals :func:`resize_block`'s to
    float32 rounding (within 1e-6 for values in [0, 1]; tests/finish/test_bands.py holds the
    tolerance).

    ``work``, float32 of shape (at least ``y1 - y0``, ``width``), is filled instead of a fresh
    array (the result is a view of it): a caller resizing band after band then touches no newly
    zeroed pages. The values are the same.
    """
    y = Axis.mapping(image.shape[0], height, y0, y1)
    if not len(y.low) or width <= 0 or image.dtype != np.float32 or image.ndim != 2:
        # Colour images (the coarse foreground and background, a background picture) keep the
        # numpy path: decontamination's blocks (resize_block) must equal these rows exactly.
        return resize_block(image, width, height, range(y0, y1), range(width))
    wy = y.weight[:, None]
    down = image[y.low] * (1.0 - wy)
    down += image[y.high] * wy
    rows = len(y.low)
    out = None if work is None else work[:rows]
    return cv2.resize(down, (width, rows), dst=out, interpolation=cv2.INTER_LINEAR)


def resize_block(image: np.ndarray, width: int, height: int, rows: range, columns: range) -> np.ndarray:
    """``resize_rows(image, width, height, rows.start, rows.stop)[:, columns.start:columns.stop]``, exactly.

    Only the source columns the block samples are interpolated, so a narrow block of a wide
    image costs its own size, not the whole rows'.
    """
    y = Axis.mapping(image.shape[0], height, rows.start, rows.stop)
    x = Axis.mapping(image.shape[1], width, columns.start, columns.stop)
    if not len(x.low):
        return np.zeros((len(y.low), 0, *image.shape[2:]), np.result_type(image, np.float32))
    first, last = int(x.low[0]), int(x.high[-1]) + 1  # the mapping is monotonic
    source = image[:, first:last]
    extra = (None,) * (image.ndim - 2)
    wy = y.weight[(slice(None), None, *extra)]
    vertical = source[y.low] * (1.0 - wy) + source[y.high] * wy
    wx = x.weight[(None, slice(None), *extra)]
    return vertical[:, x.low - first] * (1.0 - wx) + vertical[:, x.high - first] * wx
