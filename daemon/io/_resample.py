"""The one area-shrink the readers share to build their proxies."""

from __future__ import annotations

import cv2
import numpy as np


def area_resize(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    """``pixels`` (H×W×C) resized to ``width``×``height`` with INTER_AREA; C is kept even when 1."""
    if pixels.shape[0] == height and pixels.shape[1] == width:
        return pixels
    resized = cv2.resize(np.ascontiguousarray(pixels), (width, height), interpolation=cv2.INTER_AREA)
    # cv2 drops a trailing axis of length 1.
    return resized.reshape(height, width, pixels.shape[2])
