"""Edge detail that grows with the input: the same model again on crops along the uncertain edge.

IS-Net's real output grid is 512² at its 1024² input (its first convolution has stride 2),
so on a 24 MP photo one α sample spans ~12×8 source pixels. Re-running the model on
square crops of ``k × size`` source pixels (``k`` = 2 for 2048-px crops) shows it the edge
at near-native resolution. A crop, though, has lost the picture's context: a crop filled
half by a hair cap resolves every strand and calls the cap *background*. So a crop never
decides what is subject (measured in a prototype; NOTES.md §6):

- the global pass owns the low frequencies and every big decision: a crop only adds its
  high-frequency part ``H(c − g) = (c − g) − L(c − g)``, where ``L`` is a Gaussian at the
  global grid's own scale; where crop and global agree at that scale (``|L(c − g)|`` small)
  the result is the crop's value exactly, where they disagree it stays the global value;
- only inside the global pass's uncertain band (0.02 < α < 0.98, dilated); pixels the
  global pass is sure are subject (α ≥ 0.98) are never changed (:meth:`DetailMap.apply`);
- a crop that calls more than :data:`REJECT_BACKGROUND_SHARE` of the global pass's confident
  background more than faint (α > :data:`REJECT_FIRING`) sees texture as subject and is dropped
  whole. A share of samples, not a mean: on the harness's 18 crops (bench/quality.py --large)
  clean crops fire on ≤ 0.0002 % of that background, texture-seeing ones on ≥ 1.4 %, while
  the mean mixed wide faint haze (0.0010 on a good studio crop) with sparse strong texture
  (0.0038 on a brick crop that cost IoU), so no mean threshold separates them. Only the
  background side is tested: a two-sided test rejected 12 of 15 good crops;
- overlapping crops blend with a Hann window (a partition of unity at 50 % overlap: no
  seams), and crop outputs are clamped, never min-max normalised.

All of this happens on the crops' own grid (``k`` source px a sample), at plan time. The
full-resolution step is then pointwise (:meth:`DetailMap.apply`): a bilinear upsampling
of one small "fine grid" of deltas, so a band-wise run equals a one-piece run exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

from daemon.finish.bands import resize_block
from daemon.io._types import ImageReader

if TYPE_CHECKING:
    import torch

#: The global pass's uncertain band: where crops may add detail.
BAND = (0.02, 0.98)
#: Global α at or above this is subject for sure: never changed by a crop.
SURE_SUBJECT = BAND[1]
#: The band is dilated by this many samples of the model's grid (1024²), about 1–2 of its real ones.
BAND_DILATION = 3
#: A crop sample over the global pass's confident background "fires" above this α: well over
#: the model's haze on clean backdrops (its 99.9th percentile there is ≤ 0.009 on the harness).
REJECT_FIRING = 0.05
#: A crop firing on more than this share of the confident background is rejected: inside the
#: gap between clean crops (≤ 2e-6) and texture-seeing ones (≥ 0.014) by an order of magnitude each way.
REJECT_BACKGROUND_SHARE = 0.001
#: Fewer confident-background samples than this fraction of a crop: nothing to test, the crop is kept.
MIN_BACKGROUND_FRACTION = 0.01
#: The low-pass ``L``: a Gaussian with σ = this × the global pass's real sample spacing.
LOW_PASS_SIGMA = 0.5
#: Agreement at the global grid's scale: |L(c − g)| ≤ AGREE gives the crop's detail in full,
#: ≥ DISAGREE none of it (a linear ramp between).
AGREE, DISAGREE = 0.1, 0.3
#: ``detail_budget: auto`` on CUDA: the crops batch in fp16 there, so 16 cost little beside the rest.
CUDA_DETAIL_BUDGET = 16
#: ``detail_budget: auto`` on a CPU. Each crop is one more model run at the model's input size, so
#: it costs about one first pass: 4.3-5.1 s a crop on the 2-core bench machine at 24 MP, against
#: 13.1 s for the whole of ``portrait`` with ``detail: none`` (bench/results/detail_cost.json).
#: The target is ≤ 3× ``detail: none`` in all, so the crop pass gets about 2× of it (~26 s): 5
#: crops reach that with no margin, 4 leave room for the larger crops' reading. Fewer crops than
#: the band needs are made larger (:func:`choose_crops`), so the edge still gets its detail.
CPU_DETAIL_BUDGET = 4
#: Rows read from the file at a time while collecting crops.
READ_ROWS = 512

Predict = Callable[[Sequence[np.ndarray]], list[np.ndarray]]


@dataclass(frozen=True)
class CropBox:
    """A square crop of ``factor × model`` source pixels at (``x0``, ``y0``), both multiples of ``factor``."""

    x0: int
    y0: int
    factor: int
    model: int

    @property
    def size(self) -> int:
        return self.factor * self.model


@dataclass(frozen=True)
class CropStats:
    chosen: int
    rejected: int
    factor: int


def resolve_budget(budget: int | Literal["auto"], device: torch.device) -> int:
    """The most crops per image: ``budget`` as given, or for ``auto`` what ``device`` affords."""
    if budget != "auto":
        return budget
    return CUDA_DETAIL_BUDGET if device.type == "cuda" else CPU_DETAIL_BUDGET


def uncertain_band(alpha: np.ndarray) -> np.ndarray:
    """The global pass's uncertain band on its own grid, dilated by :data:`BAND_DILATION` samples."""
    unsure = ((alpha > BAND[0]) & (alpha < BAND[1])).astype(np.uint8)
    size = 2 * BAND_DILATION + 1
    return cv2.dilate(unsure, np.ones((size, size), np.uint8)).astype(bool)


def _positions(length: int, crop: int, stride: int, factor: int) -> list[int]:
    last = (length - crop) // factor * factor
    starts = list(range(0, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)
    return starts


def _central(start: int, size: int, length: int, grid: int) -> tuple[int, int]:
    """The grid cells of a crop's central half along one axis (to the image's border at its ends).

    At 50 % overlap every pixel lies in the central half of some crop, where its Hann weight is
    ≥ 0.5; a crop whose central half misses the band would only add faint edges of its window
    (a third fewer crops on a 24 MP portrait, each a full model run).
    """
    low = start if start == 0 else start + size // 4
    high = start + size if start + size >= length else start + size - size // 4
    return low * grid // length, -(-high * grid // length)


def choose_crops(
    alpha: np.ndarray, width: int, height: int, model: int, crop: int, overlap: float, budget: int
) -> list[CropBox]:
    """Crops along the uncertain band of the global pass's ``alpha`` over a ``width``×``height`` image.

    Crops are ``crop`` source px (rounded to a multiple of ``model``), on a grid of stride
    ``(1 − overlap) × crop``. When more than ``budget``
    are needed, larger source crops are used (a 100 MP file gets 3–4× crops), and at the
    largest that fits the image, the ``budget`` crops holding the most band are kept.
    A crop is kept when the band reaches its central half (:func:`_central`).
    No crops when the image is not larger than the model's input by a useful margin.
    """
    largest = min(width, height) // model
    factor = min(max(1, round(crop / model)), largest)
    if factor < 1 or max(width, height) < 1.25 * factor * model:
        return []
    band = uncertain_band(alpha)
    if not band.any():
        return []
    gh, gw = band.shape
    summed = np.pad(band.astype(np.int64).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    while True:
        size = factor * model
        stride = max(factor, round(size * (1.0 - overlap) / factor) * factor)
        scored = []
        for y0 in _positions(height, size, stride, factor):
            gy0, gy1 = _central(y0, size, height, gh)
            for x0 in _positions(width, size, stride, factor):
                gx0, gx1 = _central(x0, size, width, gw)
                count = summed[gy1, gx1] - summed[gy0, gx1] - summed[gy1, gx0] + summed[gy0, gx0]
                if count:
                    scored.append((int(count), CropBox(x0, y0, factor, model)))
        if len(scored) <= budget or factor >= largest:
            scored.sort(key=lambda item: -item[0])
            return sorted((box for _, box in scored[:budget]), key=lambda b: (b.y0, b.x0))
        factor += 1


def read_crops(reader: ImageReader, boxes: Sequence[CropBox]) -> list[np.ndarray]:
    """Each box's pixels as ``model``² RGB ``uint8``, box-averaged ``factor``² → 1, from the reader's bands.

    Only the crops' sums (``model``² float32 each) are held, never the image: rows are added
    to their crop as bands go by.
    """
    sums = [np.zeros((b.model, b.model, 3), np.float32) for b in boxes]
    peak = 255.0
    for y0, band in reader.bands(READ_ROWS):
        y1 = y0 + band.shape[0]
        if band.dtype == np.uint16:
            peak = 65535.0
        for box, total in zip(boxes, sums, strict=True):
            top, bottom = max(y0, box.y0), min(y1, box.y0 + box.size)
            if top >= bottom:
                continue
            k = box.factor
            rows = band[top - y0 : bottom - y0, box.x0 : box.x0 + box.size, :3].astype(np.float32)
            rows = rows.reshape(bottom - top, box.model, k, 3).sum(axis=2)
            target = (np.arange(top, bottom) - box.y0) // k
            starts = np.flatnonzero(np.r_[True, target[1:] != target[:-1]])
            total[target[starts]] += np.add.reduceat(rows, starts, axis=0)
    return [
        np.clip(np.rint(total * (255.0 / (peak * b.factor**2))), 0, 255).astype(np.uint8)
        for b, total in zip(boxes, sums, strict=True)
    ]


def _sample(grid: np.ndarray, box: CropBox, width: int, height: int, interpolation: int) -> np.ndarray:
    """``grid`` (the global pass's, any size over the image) at the centres of ``box``'s samples."""
    gh, gw = grid.shape
    centres = box.factor * (np.arange(box.model, dtype=np.float64) + 0.5)  # source px from the box
    xs = ((box.x0 + centres) * gw / width - 0.5).astype(np.float32)
    ys = ((box.y0 + centres) * gh / height - 0.5).astype(np.float32)
    map_x, map_y = np.meshgrid(xs, ys)
    return cv2.remap(grid.astype(np.float32), map_x, map_y, interpolation, borderMode=cv2.BORDER_REPLICATE)


def hann(length: int, flat_start: bool, flat_end: bool) -> np.ndarray:
    """sin² window (sums to 1 at 50 % overlap), flat towards an image border where no crop follows."""
    window = np.sin(np.pi * (np.arange(length) + 0.5) / length) ** 2
    half = length // 2
    if flat_start:
        window[:half] = 1.0
    if flat_end:
        window[half:] = 1.0
    return window.astype(np.float32)


def crop_delta(
    crop_alpha: np.ndarray, box: CropBox, alpha: np.ndarray, width: int, height: int
) -> np.ndarray | None:
    """What ``crop_alpha`` adds to the global ``alpha`` on the box's grid; ``None``: the crop is rejected."""
    c = np.clip(crop_alpha.astype(np.float32), 0.0, 1.0)  # clamped, never min-max normalised
    g = _sample(alpha, box, width, height, cv2.INTER_LINEAR)
    band = _sample(uncertain_band(alpha).astype(np.float32), box, width, height, cv2.INTER_NEAREST) > 0.5
    background = (g <= BAND[0]) & ~band
    firing = float((c[background] > REJECT_FIRING).mean()) if background.any() else 0.0
    if background.mean() >= MIN_BACKGROUND_FRACTION and firing > REJECT_BACKGROUND_SHARE:
        return None
    gh, gw = alpha.shape
    # The global pass's real sample spacing (half its input grid: stride-2 first conv), in crop samples.
    sigma_x = LOW_PASS_SIGMA * 2.0 * width / gw / box.factor
    sigma_y = LOW_PASS_SIGMA * 2.0 * height / gh / box.factor
    difference = c - g
    low = cv2.GaussianBlur(difference, (0, 0), sigmaX=sigma_x, sigmaY=sigma_y, borderType=cv2.BORDER_REFLECT)
    agree = np.clip((DISAGREE - np.abs(low)) / (DISAGREE - AGREE), 0.0, 1.0)
    delta = agree * (difference - low)
    delta[~band | (g >= SURE_SUBJECT)] = 0.0
    return delta


@dataclass(frozen=True)
class DetailMap:
    """The crops' blended detail on a grid of ``factor`` source px, over the box (``x0``, ``y0``)."""

    delta: np.ndarray  # float32, (rows, columns) of the fine grid
    x0: int
    y0: int
    factor: int
    stats: CropStats

    def apply(self, alpha: np.ndarray, top: int, width: int) -> np.ndarray:
        """Rows ``[top, top + len(alpha))`` of the global α at full resolution with the detail added.

        Pointwise in the rows: any split into bands gives the same pixels.
        """
        k, (rows, columns) = self.factor, self.delta.shape
        r0, r1 = max(top, self.y0), min(top + alpha.shape[0], self.y0 + rows * k)
        c1 = min(width, self.x0 + columns * k)
        if r0 >= r1:
            return alpha
        delta = resize_block(
            self.delta, columns * k, rows * k, range(r0 - self.y0, r1 - self.y0), range(c1 - self.x0)
        )
        out = alpha.copy()
        region = out[r0 - top : r1 - top, self.x0 : c1]
        fused = np.clip(region + delta, 0.0, 1.0)
        region[...] = np.where(region >= SURE_SUBJECT, region, fused)
        return out


def fuse_crops(
    alpha: np.ndarray, boxes: Sequence[CropBox], crop_alphas: Sequence[np.ndarray], width: int, height: int
) -> DetailMap | None:
    """Blend every accepted crop's delta with Hann windows on one grid; ``None`` when no crop is kept."""
    if not boxes:
        return None
    k = boxes[0].factor
    x0, y0 = min(b.x0 for b in boxes), min(b.y0 for b in boxes)
    x1, y1 = max(b.x0 + b.size for b in boxes), max(b.y0 + b.size for b in boxes)
    shape = ((y1 - y0) // k, (x1 - x0) // k)
    weighted, weights = np.zeros(shape, np.float32), np.zeros(shape, np.float32)
    rejected = 0
    for box, crop_alpha in zip(boxes, crop_alphas, strict=True):
        delta = crop_delta(crop_alpha, box, alpha, width, height)
        if delta is None:
            rejected += 1
            continue
        wy = hann(box.model, box.y0 == 0, box.y0 + box.size + k > height)
        wx = hann(box.model, box.x0 == 0, box.x0 + box.size + k > width)
        window = wy[:, None] * wx[None, :]
        row, column = (box.y0 - y0) // k, (box.x0 - x0) // k
        at = (slice(row, row + box.model), slice(column, column + box.model))
        weighted[at] += window * delta
        weights[at] += window
    if rejected == len(boxes):
        return None
    # Where windows sum to less than 1 (the band's ends, next to a rejected crop) the detail fades out.
    delta = weighted / np.maximum(weights, 1.0)
    return DetailMap(delta, x0, y0, k, CropStats(len(boxes), rejected, k))


def compute_detail(
    predict: Predict,
    reader: ImageReader,
    alpha: np.ndarray,
    *,
    crop: int,
    overlap: float,
    budget: int,
    model: int,
) -> DetailMap | None:
    """Choose crops along ``alpha``'s uncertain band, run ``predict`` on them, fuse; ``None``: no detail."""
    width, height = reader.info.oriented_size
    boxes = choose_crops(alpha, width, height, model, crop, overlap, budget)
    if not boxes:
        return None
    crop_alphas = predict(read_crops(reader, boxes))
    return fuse_crops(alpha, boxes, crop_alphas, width, height)
