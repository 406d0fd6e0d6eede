"""The crop pass's fusion on drawn scenes whose right answer is known, and its crop reading and choice.

Crop outputs are drawn here (what a crop of the model would say); the code under test is
the choice of crops, the reading of their pixels and the fusion, never the model.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import torch

from daemon.io._types import ImageInfo
from daemon.refine.crops import (
    CPU_DETAIL_BUDGET,
    CUDA_DETAIL_BUDGET,
    SURE_SUBJECT,
    CropBox,
    DetailMap,
    choose_crops,
    fuse_crops,
    read_crops,
    resolve_budget,
)

MODEL = 64


def _disk(width: int, height: int, radius: float) -> np.ndarray:
    """A disk's exact-ish α (anti-aliased edge) at full resolution."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    distance = np.hypot(xx - width / 2, yy - height / 2)
    return np.clip(radius - distance + 0.5, 0.0, 1.0)


def _global(truth: np.ndarray, grid: int) -> np.ndarray:
    """What the global pass sees: the truth on a coarse grid, blurred by its stride-2 first layer."""
    small = cv2.resize(truth, (grid, grid), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small, (0, 0), 1.0)


def _crops_of(image: np.ndarray, boxes: list[CropBox]) -> list[np.ndarray]:
    """Each box of a full-resolution α, box-averaged to the model's size: a crop that sees perfectly."""
    return [
        cv2.resize(
            image[b.y0 : b.y0 + b.size, b.x0 : b.x0 + b.size],
            (b.model, b.model),
            interpolation=cv2.INTER_AREA,
        )
        for b in boxes
    ]


def _upsampled(alpha: np.ndarray, width: int, height: int) -> np.ndarray:
    return cv2.resize(alpha, (width, height), interpolation=cv2.INTER_LINEAR)


def _fused(detail: DetailMap | None, alpha: np.ndarray, width: int, height: int) -> np.ndarray:
    full = _upsampled(alpha, width, height)
    return full if detail is None else detail.apply(full, 0, width)


class _Reader:
    """An image reader over an array (the real readers are tested in tests/io)."""

    def __init__(self, pixels: np.ndarray, rows: int = 37) -> None:
        height, width = pixels.shape[:2]
        bits = 16 if pixels.dtype == np.uint16 else 8
        self.info = ImageInfo("test", width, height, pixels.shape[2], bits, "rgb", False)
        self.pixels, self.rows = pixels, rows

    def bands(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        for y in range(0, self.pixels.shape[0], self.rows):
            yield y, self.pixels[y : y + self.rows]


def test_a_crop_that_calls_the_subject_background_cannot_remove_it() -> None:
    width = height = 512
    truth = _disk(width, height, 150)
    alpha = _global(truth, 32)
    boxes = choose_crops(alpha, width, height, MODEL, 2 * MODEL, 0.5, 64)
    assert boxes
    # Context loss: every crop resolves the edge sharply but calls the subject's inside background.
    ring = truth * (cv2.erode(truth, np.ones((25, 25))) < 0.5)
    fused = _fused(fuse_crops(alpha, boxes, _crops_of(ring, boxes), width, height), alpha, width, height)
    before = _upsampled(alpha, width, height)
    assert np.array_equal(fused[before >= SURE_SUBJECT], before[before >= SURE_SUBJECT])
    # Ungated (crop detail used where crop and global disagree), 4.6 % of the subject fell below 0.5.
    assert (fused > 0.5)[truth > 0.5].all()


def test_strands_a_crop_resolves_reach_the_alpha_where_crop_and_global_agree() -> None:
    width = height = 512
    truth = _disk(width, height, 140)
    for angle in np.linspace(-2.6, -0.5, 12):  # thin strands leaving the top of the disk
        end = (int(256 + 230 * np.cos(angle)), int(256 + 230 * np.sin(angle)))
        start = (int(256 + 130 * np.cos(angle)), int(256 + 130 * np.sin(angle)))
        drawn = np.zeros_like(truth)
        cv2.line(drawn, start, end, 1.0, 2, cv2.LINE_AA)
        truth = np.maximum(truth, drawn)
    alpha = _global(truth, 32)
    boxes = choose_crops(alpha, width, height, MODEL, MODEL, 0.5, 256)
    fused = _fused(fuse_crops(alpha, boxes, _crops_of(truth, boxes), width, height), alpha, width, height)
    before = _upsampled(alpha, width, height)
    edge = cv2.dilate(truth, np.ones((9, 9))) != cv2.erode(truth, np.ones((9, 9)))
    mse_before = ((before - truth) ** 2)[edge].mean()
    mse_after = ((fused - truth) ** 2)[edge].mean()
    assert mse_after < 0.65 * mse_before, (mse_before, mse_after)


def test_a_crop_that_sees_background_texture_is_rejected() -> None:
    width = height = 512
    truth = _disk(width, height, 150)
    alpha = _global(truth, 32)
    boxes = choose_crops(alpha, width, height, MODEL, 2 * MODEL, 0.5, 64)
    seen = _crops_of(truth, boxes)
    bricks = np.zeros((MODEL, MODEL), np.float32)
    bricks[::8, :] = 0.6  # mortar lines the crop calls subject, over the confident background
    textured = [np.maximum(c, bricks) for c in seen]
    detail = fuse_crops(alpha, boxes, textured, width, height)
    corner_crops = [b for b in boxes if b.x0 == 0 and b.y0 == 0]
    assert corner_crops, "a crop covering the corner's confident background"
    assert detail is None or detail.stats.rejected >= len(corner_crops)
    fused = _fused(detail, alpha, width, height)
    # Beyond the dilated band (4 grid samples of 16 px) nothing changes whatever the crops say.
    sure_background = (_upsampled(alpha, width, height) <= 0.02).astype(np.uint8)
    background = cv2.erode(sure_background, np.ones((129, 129), np.uint8)).astype(bool)
    assert background.sum() > 10_000
    assert np.array_equal(fused[background], _upsampled(alpha, width, height)[background])
    clean = fuse_crops(alpha, boxes, seen, width, height)
    assert clean is not None and clean.stats.rejected == 0


def test_no_seams_across_overlapping_crops_that_disagree() -> None:
    width = height = 320
    alpha = np.full((20, 20), 0.5, np.float32)  # unsure everywhere: every crop is chosen
    boxes = choose_crops(alpha, width, height, MODEL, MODEL, 0.5, 256)
    assert len(boxes) > 50
    xs = np.arange(MODEL, dtype=np.float32)
    strengths = np.random.default_rng(3).choice([0.0, 2.0], len(boxes))  # neighbours disagree
    outputs = [
        0.5 + s * 0.1 * np.sin(2 * np.pi * (box.x0 + xs) / 4)[None, :].repeat(MODEL, 0)
        for s, box in zip(strengths, boxes, strict=True)
    ]
    fused = _fused(fuse_crops(alpha, boxes, outputs, width, height), alpha, width, height)
    # The stripes' strength along rows, per 4 columns: with flat (box) windows it jumps by 0.10 at
    # crop borders; the Hann blend changes by at most 0.04.
    for row in range(40, 280, 7):
        envelope = np.maximum.reduceat(np.abs(fused[row] - 0.5), np.arange(0, width, 4))
        assert np.abs(np.diff(envelope[4:-4])).max() < 0.05, row


def test_band_wise_equals_one_piece() -> None:
    width, height = 448, 384
    truth = _disk(width, height, 120)
    alpha = _global(truth, 32)
    boxes = choose_crops(alpha, width, height, MODEL, MODEL, 0.5, 256)
    detail = fuse_crops(alpha, boxes, _crops_of(truth, boxes), width, height)
    assert detail is not None
    full = _upsampled(alpha, width, height)
    one_piece = detail.apply(full, 0, width)
    bands = [detail.apply(full[y : y + 50], y, width) for y in range(0, height, 50)]
    np.testing.assert_array_equal(np.vstack(bands), one_piece)


def test_crop_pixels_are_box_averaged_from_the_bands_at_any_depth() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 65536, (300, 260, 4), dtype=np.uint16)
    box = CropBox(x0=6, y0=40, factor=3, model=80)
    (crop,) = read_crops(_Reader(image), [box])  # type: ignore[arg-type]
    expected = cv2.resize(
        image[40:280, 6:246, :3].astype(np.float32) / 257.0, (80, 80), interpolation=cv2.INTER_AREA
    )
    assert crop.dtype == np.uint8 and crop.shape == (80, 80, 3)
    assert np.abs(crop.astype(np.float32) - expected).max() <= 0.51
    eight = (image >> 8).astype(np.uint8)
    (crop8,) = read_crops(_Reader(eight, rows=512), [box])  # type: ignore[arg-type]
    block = eight[40:280, 6:246, :3].astype(np.float32)
    expected8 = cv2.resize(block, (80, 80), interpolation=cv2.INTER_AREA)
    assert np.abs(crop8.astype(np.float32) - expected8).max() <= 0.51


def test_crops_follow_the_band_and_grow_to_stay_within_the_budget() -> None:
    width, height = 4096, 3072
    truth = _disk(256, 192, 60)
    alpha = _global(truth, 256)
    few = choose_crops(alpha, width, height, MODEL, MODEL, 0.5, 8)
    many = choose_crops(alpha, width, height, MODEL, MODEL, 0.5, 10_000)
    assert 0 < len(few) <= 8 and few[0].factor > 1
    assert len(many) > 8 and many[0].factor == 1
    band = (alpha > 0.02) & (alpha < 0.98)
    for box in many:  # every crop reaches the band
        gy0, gx0 = box.y0 * 256 // height, box.x0 * 256 // width
        gy1, gx1 = -(-(box.y0 + box.size) * 256 // height), -(-(box.x0 + box.size) * 256 // width)
        assert band[max(0, gy0 - 3) : gy1 + 3, max(0, gx0 - 3) : gx1 + 3].any()
    assert choose_crops(np.zeros((256, 256), np.float32), width, height, MODEL, MODEL, 0.5, 8) == []


def _brick_spots(value: float) -> np.ndarray:
    """Sparse strong texture a crop calls subject: 2×2 spots every 16 samples (1.6 % of the crop)."""
    spots = np.zeros((MODEL, MODEL), np.float32)
    for y in range(3, MODEL, 16):
        for x in range(5, MODEL, 16):
            spots[y : y + 2, x : x + 2] = value
    return spots


def test_a_crop_firing_on_sparse_background_texture_cannot_flip_background_to_subject() -> None:
    # The busy-brick failure (bench/quality.py --large): the crop's mean over the confident
    # background was 0.0038 (under the old 0.01 gate) because the texture is sparse, yet where
    # it fires inside the band it pushed background across α = 0.5 and cost IoU.
    width = height = 512
    truth = _disk(width, height, 80)
    alpha = _global(truth, 32)
    # Crops of 256 px: each sees some confident background (one that sees none cannot be tested).
    boxes = choose_crops(alpha, width, height, MODEL, 4 * MODEL, 0.5, 64)
    spots = _brick_spots(0.3)
    textured = [np.maximum(c, spots) for c in _crops_of(truth, boxes)]
    detail = fuse_crops(alpha, boxes, textured, width, height)
    fused = _fused(detail, alpha, width, height)
    before = _upsampled(alpha, width, height)
    flipped = (fused > 0.5) & (before <= 0.5) & (truth < 0.5)
    assert not flipped.any(), int(flipped.sum())


def test_a_crop_with_faint_haze_over_the_background_is_kept() -> None:
    # Faint haze is wide but weak (a good studio crop's mean was 0.0010): it is not texture.
    width = height = 512
    truth = _disk(width, height, 150)
    alpha = _global(truth, 32)
    boxes = choose_crops(alpha, width, height, MODEL, 2 * MODEL, 0.5, 64)
    hazy = [np.clip(c + 0.02, 0.0, 1.0) for c in _crops_of(truth, boxes)]
    detail = fuse_crops(alpha, boxes, hazy, width, height)
    assert detail is not None and detail.stats.rejected == 0


def test_auto_budget_is_resolved_by_the_engines_device() -> None:
    # A device object is all the resolution looks at: no GPU is needed to build a cuda one.
    assert resolve_budget("auto", torch.device("cuda")) == CUDA_DETAIL_BUDGET == 16
    assert resolve_budget("auto", torch.device("cuda", 1)) == CUDA_DETAIL_BUDGET
    assert resolve_budget("auto", torch.device("cpu")) == CPU_DETAIL_BUDGET
    assert CPU_DETAIL_BUDGET < CUDA_DETAIL_BUDGET


def test_an_explicit_budget_is_honoured_on_every_device() -> None:
    for device in (torch.device("cpu"), torch.device("cuda")):
        assert resolve_budget(8, device) == 8
        assert resolve_budget(1, device) == 1
        assert resolve_budget(200, device) == 200


def test_a_24_mp_portrait_on_cpu_gets_at_most_the_cpu_budget_of_larger_crops() -> None:
    # The model's 1024² grid over a 6000×4000 photo: a head-and-shoulders outline, whose uncertain
    # band asks for 13 crops of 2048 px (bench/results/detail_cost.json) when the budget allows.
    width, height, grid = 6000, 4000, 1024
    yy, xx = np.mgrid[0:grid, 0:grid].astype(np.float32)
    head = np.hypot((xx - 512) / 260, (yy - 380) / 300) < 1
    shoulders = (yy > 640) & (np.abs(xx - 512) < 420)
    alpha = cv2.GaussianBlur((head | shoulders).astype(np.float32), (0, 0), 4.0)
    cuda = choose_crops(alpha, width, height, grid, 2048, 0.5, resolve_budget("auto", torch.device("cuda")))
    cpu = choose_crops(alpha, width, height, grid, 2048, 0.5, resolve_budget("auto", torch.device("cpu")))
    assert len(cuda) > CPU_DETAIL_BUDGET and cuda[0].factor == 2
    assert 0 < len(cpu) <= CPU_DETAIL_BUDGET and cpu[0].factor > 2  # fewer crops, each larger
