"""The area-shrink the readers share to build their proxies, and the banded proxy built on it."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import cv2
import numpy as np

from daemon.io._colour import to_uint8


def area_resize(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """``pixels`` (H×W×C) resized to ``width``×``height`` with INTER_AREA; C is kept even when 1."""
    if pixels.shape[0] == height and pixels.shape[1] == width:
        return pixels
    resized = cv2.resize(np.ascontiguousarray(pixels), (width, height), interpolation=cv2.INTER_AREA)
    # cv2 drops a trailing axis of length 1.
    return resized.reshape(height, width, pixels.shape[2])


#: Rows a banded proxy reads at a time (rounded to a multiple of the shrink factor).
PROXY_BAND_ROWS = 512


def banded_proxy(
    width: int, height: int, max_side: int, rgb_rows: Callable[[int, int], np.ndarray]
) -> np.ndarray:
    """An RGB ``uint8`` proxy whose longer side is at most ``max_side``, built band by band.

    ``rgb_rows(y0, y1)`` gives rows ``[y0, y1)`` as RGB; each band is shrunk by an integer
    factor with area averaging, then the whole is resized once to fit, so the full image is
    never held.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be positive, got {max_side}")
    longest = max(width, height)
    factor = max(1, longest // max_side)
    band_rows = max(factor, (PROXY_BAND_ROWS // factor) * factor)
    small_width = max(1, width // factor)
    pieces = []
    for y0 in range(0, height, band_rows):
        y1 = min(y0 + band_rows, height)
        pieces.append(area_resize(rgb_rows(y0, y1), small_width, max(1, round((y1 - y0) / factor))))
    rgb = to_uint8(np.concatenate(pieces, axis=0))
    scale = min(1.0, max_side / longest)
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    if (rgb.shape[1], rgb.shape[0]) != target:
        rgb = area_resize(rgb, *target)
    return rgb


def join_bands(
    bands: Iterable[tuple[int, np.ndarray]], shape: tuple[int, int, int], dtype: np.dtype
) -> np.ndarray:
    """The whole image from a reader's ``(y0, band)`` pieces (for ``read()``; finishing never calls it)."""
    out = np.empty(shape, dtype=dtype)
    for y0, band in bands:
        out[y0 : y0 + band.shape[0]] = band
    return out
