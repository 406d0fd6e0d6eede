"""Output framing: product auto-crop with margin and canvas, ID-photo face crops, drop shadows.

The crop box is decided once from low-resolution data (the alpha, the face); the
full-resolution rows then stream through :class:`Reframer`, which crops, pads and (for
fixed output sizes) resamples band by band, so no full-size image is ever held.
Data passing through is premultiplied (colour × α), so padding is plain zeros and
resampling never drags background colour into the edge.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from daemon.finish.faces import Face
from daemon.profiles import ID_SIZES, Profile, Shadow

#: α above this (low resolution) is part of the subject's bounding box.
BOX_LEVEL = 0.05
#: ID photos: the detected face box (brows to chin) is this share of the crop height.
ID_FACE_SHARE = 0.42


@dataclass(frozen=True)
class Geometry:
    """Input rectangle ``[left, right) × [top, bottom)`` (may reach past the image) → ``out_w``×``out_h``."""

    left: int
    top: int
    right: int
    bottom: int
    out_w: int
    out_h: int

    @classmethod
    def identity(cls, width: int, height: int) -> Geometry:
        return cls(0, 0, width, height, width, height)

    @property
    def crop_size(self) -> tuple[int, int]:
        return self.right - self.left, self.bottom - self.top

    @property
    def resamples(self) -> bool:
        return self.crop_size != (self.out_w, self.out_h)

    def is_identity(self, width: int, height: int) -> bool:
        return self == Geometry.identity(width, height)


def subject_box(alpha_low: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    """Bounding box (x0, y0, x1, y1) of the subject in full-resolution pixels, from a low-res α."""
    ys, xs = np.nonzero(alpha_low > BOX_LEVEL)
    if len(xs) == 0:
        return 0.0, 0.0, float(width), float(height)
    fx, fy = width / alpha_low.shape[1], height / alpha_low.shape[0]
    # One low-res pixel of slack each side: its soft edge reaches that far at full resolution.
    return (
        max(0.0, (xs.min() - 1) * fx),
        max(0.0, (ys.min() - 1) * fy),
        min(float(width), (xs.max() + 2) * fx),
        min(float(height), (ys.max() + 2) * fy),
    )


def _centred(cx: float, cy: float, w: float, h: float, out_w: int, out_h: int) -> Geometry:
    left, top = round(cx - w / 2), round(cy - h / 2)
    return Geometry(left, top, left + max(1, round(w)), top + max(1, round(h)), out_w, out_h)


def product_geometry(box: tuple[float, float, float, float], margin: float, canvas: str) -> Geometry:
    """The subject's box plus ``margin`` % of its longer side, on the chosen canvas, subject centred."""
    x0, y0, x1, y1 = box
    pad = margin / 100.0 * max(x1 - x0, y1 - y0)
    w, h = x1 - x0 + 2 * pad, y1 - y0 + 2 * pad
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if canvas == "none":
        return _centred(cx, cy, w, h, round(w), round(h))
    if canvas == "square":
        side = max(w, h)
        return _centred(cx, cy, side, side, round(side), round(side))
    out_w, out_h = (int(v) for v in canvas.split("x"))
    scale = max(w / out_w, h / out_h)  # fit the subject with its margin inside the canvas
    return _centred(cx, cy, out_w * scale, out_h * scale, out_w, out_h)


def id_geometry(face: Face, id_size: str) -> Geometry:
    """A crop of the standard's aspect with the face centred, resampled to its exact pixels."""
    out_w, out_h = ID_SIZES[id_size]
    crop_h = face.height / ID_FACE_SHARE
    cx, cy = face.centre
    return _centred(cx, cy, crop_h * out_w / out_h, crop_h, out_w, out_h)


def choose_geometry(
    profile: Profile, width: int, height: int, alpha_low: np.ndarray, face: Face | None
) -> Geometry:
    if profile.crop == "subject":
        return product_geometry(subject_box(alpha_low, width, height), profile.margin, profile.canvas)
    if profile.crop == "face":
        assert face is not None
        return id_geometry(face, profile.id_size)
    return Geometry.identity(width, height)


def shadow_map(alpha_low: np.ndarray, shadow: Shadow, pixels_per_low: float, scale: float) -> np.ndarray:
    """Shadow strength (0–1) on the low-res grid: α shifted by ``distance``, blurred by ``blur``, × opacity.

    ``pixels_per_low`` is full-resolution px per low-res px; ``scale`` the length-knob scale.
    """
    angle = math.radians(shadow.angle)
    dx = math.cos(angle) * shadow.distance * scale / pixels_per_low
    dy = math.sin(angle) * shadow.distance * scale / pixels_per_low
    shift = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
    h, w = alpha_low.shape
    moved = cv2.warpAffine(alpha_low, shift, (w, h), flags=cv2.INTER_LINEAR, borderValue=0.0)
    sigma = max(0.5, shadow.blur * scale / pixels_per_low)
    return cv2.GaussianBlur(moved, (0, 0), sigma) * np.float32(shadow.opacity)


def _weights(source: int, target: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Tap indices and weights (target × taps) of an antialiased linear resampler.

    Crop position ``i`` is source index ``offset + i``. Taps outside the crop get no weight
    (the rest are renormalised), so the box's edge rows never depend on pixels outside it;
    those pixels may be gone already from the band pipeline's buffer.
    """
    ratio = source / target
    support = max(1.0, ratio)
    centres = (np.arange(target) + 0.5) * ratio - 0.5
    taps = math.ceil(2 * support) + 1
    first = np.floor(centres - support).astype(np.int64) + 1
    index = first[:, None] + np.arange(taps)[None, :]
    weight = np.maximum(0.0, 1.0 - np.abs(index - centres[:, None]) / support)
    weight[(index < 0) | (index >= source)] = 0.0
    weight /= weight.sum(axis=1, keepdims=True)
    return index + offset, weight.astype(np.float32)


class Reframer:
    """Turns full-width input rows (premultiplied, float32 H×W×C) into the output's rows."""

    def __init__(self, geometry: Geometry, width: int, height: int, channels: int) -> None:
        self.g, self.width, self.height, self.channels = geometry, width, height, channels
        crop_w, crop_h = geometry.crop_size
        self._col_index, self._col_weight = _weights(crop_w, geometry.out_w, geometry.left)
        self._row_index, self._row_weight = _weights(crop_h, geometry.out_h, geometry.top)
        self._pending: list[tuple[int, np.ndarray]] = []  # (first input row, columns-done rows)
        self._next_out = 0

    def _columns(self, rows: np.ndarray) -> np.ndarray:
        if not self.g.resamples:
            padded = np.zeros((rows.shape[0], self.g.out_w, self.channels), np.float32)
            lo, hi = max(0, self.g.left), min(self.width, self.g.right)
            if hi > lo:
                padded[:, lo - self.g.left : hi - self.g.left] = rows[:, lo:hi]
            return padded
        out = np.zeros((rows.shape[0], self.g.out_w, self.channels), np.float32)
        for t in range(self._col_index.shape[1]):
            index = self._col_index[:, t]
            valid = (index >= 0) & (index < self.width)
            out[:, valid] += rows[:, index[valid]] * self._col_weight[valid, t][None, :, None]
        return out

    def _row_source(self, y: int) -> np.ndarray | None:
        for start, rows in self._pending:
            if start <= y < start + rows.shape[0]:
                return rows[y - start]
        return None

    def push(self, y0: int, rows: np.ndarray) -> Iterator[np.ndarray]:
        """Feed input rows ``[y0, y0 + len)`` (every input row, in order); yield finished output bands."""
        if not self.g.resamples:
            lo, hi = max(y0, self.g.top), min(y0 + rows.shape[0], self.g.bottom)
            if hi > lo:
                yield from self._pad_rows(lo - self.g.top)
                yield self._columns(rows[lo - y0 : hi - y0])
                self._next_out = hi - self.g.top
            if y0 + rows.shape[0] >= self.height:
                yield from self._pad_rows(self.g.out_h)
            return
        self._pending.append((y0, self._columns(rows)))
        have = y0 + rows.shape[0]
        yield from self._emit_ready(have)
        keep_from = int(self._row_index[min(self._next_out, self.g.out_h - 1)].min())
        self._pending = [(s, r) for s, r in self._pending if s + r.shape[0] > keep_from]

    def _pad_rows(self, until: int) -> Iterator[np.ndarray]:
        if until > self._next_out:
            yield np.zeros((until - self._next_out, self.g.out_w, self.channels), np.float32)
            self._next_out = until

    def _emit_ready(self, have: int) -> Iterator[np.ndarray]:
        done: list[np.ndarray] = []
        while self._next_out < self.g.out_h:
            index = self._row_index[self._next_out]
            needed = int(min(index.max(), self.height - 1)) if index.max() >= 0 else -1
            if needed >= have and have < self.height:
                break
            row = np.zeros((self.g.out_w, self.channels), np.float32)
            for y, w in zip(index, self._row_weight[self._next_out], strict=True):
                source = self._row_source(int(y)) if 0 <= y < self.height and w > 0 else None
                if source is not None:
                    row += w * source
            done.append(row)
            self._next_out += 1
        if done:
            yield np.stack(done)
