"""Refinement only where the model is unsure: the subject's inside keeps α = 1, bands equal one piece."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from daemon.finish.bands import windows
from daemon.refine.edges import EdgeRefiner
from daemon.refine.guided import MAX_STEP, GuidedFilter, align
from tests.refine.test_guided import _edge_scene


def _refine(image: np.ndarray, alpha: np.ndarray, refiner: EdgeRefiner | GuidedFilter) -> np.ndarray:
    guide = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()
    return refiner(guide, torch.from_numpy(np.ascontiguousarray(alpha))).numpy()


def _model_like_alpha(true_alpha: np.ndarray) -> np.ndarray:
    """The model's α at full resolution: a 1024-px grid bilinearly upsampled ~8x."""
    small = cv2.resize(true_alpha, (60, 45), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (480, 360), interpolation=cv2.INTER_LINEAR)


def test_only_the_uncertain_band_is_filtered_and_its_edge_gets_closer_to_the_truth() -> None:
    image, true_alpha = _edge_scene()
    alpha = _model_like_alpha(true_alpha)
    gf = GuidedFilter(radius=8, eps=1e-4)
    refiner = EdgeRefiner(gf)
    refined = _refine(image, alpha, refiner)
    whole = _refine(image, alpha, gf)
    size = 2 * refiner.band_radius + 1
    unsure = ((alpha > 0.1) & (alpha < 0.9)).astype(np.uint8)
    trusted = cv2.dilate(unsure, np.ones((size, size), np.uint8)) == 0
    # Where the model is sure, its α is snapped to 0 or 1; a whole-image filter leaves a haze there.
    assert np.isin(refined[trusted], (0.0, 1.0)).all()
    assert (~np.isin(whole[trusted], (0.0, 1.0))).sum() > 1000
    edge = cv2.dilate(true_alpha, np.ones((25, 25))) != cv2.erode(true_alpha, np.ones((25, 25)))
    assert np.abs(refined - true_alpha)[edge].mean() < 0.9 * np.abs(alpha - true_alpha)[edge].mean()


def test_bands_with_halo_equal_one_piece() -> None:
    image, true_alpha = _edge_scene()
    alpha = _model_like_alpha(true_alpha)
    for refiner in (EdgeRefiner(GuidedFilter(radius=3, eps=1e-2)), EdgeRefiner(GuidedFilter(20, 1e-3))):
        one_piece = _refine(image, alpha, refiner)
        pixels = np.dstack([image, alpha])
        bands = iter([(y, pixels[y : y + 50]) for y in range(0, 360, 50)])
        pieces = [
            _refine(w.pixels[..., :3], w.pixels[..., 3], refiner)[w.inner]
            for w in windows(bands, 360, 64, align(refiner.halo, MAX_STEP))
        ]
        np.testing.assert_array_equal(np.vstack(pieces), one_piece)


def test_column_blocks_equal_one_piece() -> None:
    image, true_alpha = _edge_scene()
    alpha = _model_like_alpha(true_alpha)
    gf = GuidedFilter(radius=8, eps=1e-4)
    one_piece = _refine(image, alpha, EdgeRefiner(gf, block_columns=4096))
    for block in (MAX_STEP * 8, MAX_STEP * 3):
        np.testing.assert_array_equal(_refine(image, alpha, EdgeRefiner(gf, block_columns=block)), one_piece)


def test_filtering_only_the_rows_around_unsure_pixels_equals_filtering_the_whole_image() -> None:
    image, _ = _edge_scene()
    # A small subject: its edge crosses each column block in a few rows, far from the window's ends.
    disc = np.zeros((360, 480), np.float32)
    cv2.circle(disc, (250, 170), 60, 1.0, -1)
    alpha = _model_like_alpha(disc)
    for gf in (GuidedFilter(radius=8, eps=1e-4), GuidedFilter(radius=3, eps=1e-2)):
        refiner = EdgeRefiner(gf, block_columns=MAX_STEP * 8)
        steep = np.clip((alpha - 0.5) * 1.5 + 0.5, 0.0, 1.0)
        unsure = ((alpha > 0.1) & (alpha < 0.9)).astype(np.uint8)
        size = 2 * refiner.band_radius + 1
        band = cv2.dilate(unsure, np.ones((size, size), np.uint8)) > 0
        whole = np.where(band, _refine(image, steep, gf), (alpha >= 0.5).astype(np.float32))
        np.testing.assert_array_equal(_refine(image, alpha, refiner), whole)


def test_alpha_exactly_at_the_thresholds_is_snapped_and_called_unsure_as_torch_compares_it() -> None:
    image, _ = _edge_scene()
    edges_ = [0.5, 0.1, 0.9, 1.0 - 0.1]
    values = np.array(
        [
            v
            for e in edges_
            for v in (e, *np.nextafter(np.array([e, e], np.float32), np.array([0, 1], np.float32)))
        ],
        np.float32,
    )
    # Each value alone, so the band around one never covers another, on the side where being
    # called unsure shows: low values within opaque α, high ones within clear α.
    alpha = np.zeros((360, 480), np.float32)
    alpha[:180] = 1.0
    for i, value in enumerate(values):
        alpha[40 + (180 if value > 0.5 else 0), 30 + 35 * i] = value
    refiner = EdgeRefiner(GuidedFilter(radius=3, eps=1e-2))
    a = torch.from_numpy(alpha)
    snapped = (a >= 0.5).to(torch.float32)
    band = cv2.dilate(
        ((a > 0.1) & (a < 1.0 - 0.1)).numpy().astype(np.uint8),
        np.ones((2 * refiner.band_radius + 1,) * 2, np.uint8),
    )
    steep = torch.clamp((a - 0.5) * 1.5 + 0.5, 0.0, 1.0)
    guide = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).contiguous()
    expected = torch.where(torch.from_numpy(band > 0), refiner.guided(guide, steep), snapped)
    np.testing.assert_array_equal(_refine(image, alpha, refiner), expected.numpy())
