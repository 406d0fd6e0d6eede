"""Alpha clean-up: threshold, erode, feather (per band, at full resolution) and islands/holes
(once, on the model's low-resolution alpha, where a subject is a few connected components).

Every full-resolution operation here looks at most :func:`erode_halo` / :func:`feather_halo`
rows away, so the band pipeline gives the same result as a one-piece run.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

#: α above this counts as subject when deciding what an island or a hole is.
SUBJECT_LEVEL = 0.5


def apply_threshold(alpha: np.ndarray, threshold: int) -> np.ndarray:
    """α below ``threshold``/255 becomes 0 and the rest is stretched back to [0, 1]."""
    if threshold <= 0:
        return alpha
    t = threshold / 255.0
    return np.clip((alpha - t) / (1.0 - t), 0.0, 1.0).astype(np.float32)


def _disc(radius: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))


def erode_halo(pixels: float) -> int:
    return math.ceil(pixels)


def erode(alpha: np.ndarray, pixels: float) -> np.ndarray:
    """Grey-scale erosion by a disc: pulls the edge in by ``pixels`` (rounded up to whole px)."""
    radius = erode_halo(pixels)
    if radius <= 0:
        return alpha
    # BORDER_REPLICATE: at the image border and at a band's halo edge alike, nothing outside shrinks α.
    return cv2.erode(alpha, _disc(radius), borderType=cv2.BORDER_REPLICATE)


def feather_halo(pixels: float) -> int:
    return math.ceil(3 * pixels) if pixels > 0 else 0


def feather(alpha: np.ndarray, pixels: float) -> np.ndarray:
    """Gaussian softening of the edge with σ = ``pixels``."""
    if pixels <= 0:
        return alpha
    radius = feather_halo(pixels)
    return cv2.GaussianBlur(alpha, (2 * radius + 1, 2 * radius + 1), pixels, borderType=cv2.BORDER_REPLICATE)


def keep_largest_subject(alpha: np.ndarray) -> np.ndarray:
    """Zero every island not connected to the largest subject component (low-resolution α)."""
    binary = (alpha > SUBJECT_LEVEL).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if count <= 2:
        return alpha
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    # Grown by a few px so the soft edge around the kept subject survives; islands' soft edges do not.
    keep = cv2.dilate((labels == largest).astype(np.uint8), _disc(4)).astype(bool)
    return np.where(keep, alpha, 0.0).astype(np.float32)


def fill_holes(alpha: np.ndarray) -> np.ndarray:
    """Set α to 1 in background pockets that do not touch the image border (low-resolution α)."""
    background = (alpha <= SUBJECT_LEVEL).astype(np.uint8)
    count, labels = cv2.connectedComponents(background, connectivity=4)
    border = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    holes = (labels > 0) & ~np.isin(labels, border)
    if count <= 1 or not holes.any():
        return alpha
    return np.where(holes, 1.0, alpha).astype(np.float32)
