"""The guided filter snaps a blurred alpha to the image's edge, and bands equal a one-piece run."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from daemon.finish.bands import windows
from daemon.refine import guided
from daemon.refine.guided import MAX_STEP, GuidedFilter, align
from tests.conftest import photo


def _edge_scene() -> tuple[np.ndarray, np.ndarray]:
    """A real photo as background, a sharp-edged textured disc as subject, and the disc's true α."""
    background = photo("coffee")[:360, :480].astype(np.float32) / 255.0
    yy, xx = np.mgrid[0:360, 0:480]
    true_alpha = (np.hypot(yy - 180, xx - 240) < 110).astype(np.float32)
    subject = np.dstack([0.9 - 0.2 * np.sin(xx / 7.0), 0.3 + 0.1 * np.cos(yy / 5.0), 0.2 + 0 * xx]).astype(
        np.float32
    )
    image = true_alpha[..., None] * subject + (1 - true_alpha[..., None]) * background
    return image, true_alpha


def _run(image: np.ndarray, alpha: np.ndarray, gf: GuidedFilter) -> np.ndarray:
    guide = torch.from_numpy(image).permute(2, 0, 1).contiguous()
    return gf(guide, torch.from_numpy(alpha)).numpy()


def test_refinement_moves_a_blurred_alpha_towards_the_true_edge() -> None:
    image, true_alpha = _edge_scene()
    # What the model gives at full resolution: its 1024-px α, bilinearly upsampled ~8x, is soft.
    small = cv2.resize(true_alpha, (60, 45), interpolation=cv2.INTER_AREA)
    blurred = cv2.resize(small, (480, 360), interpolation=cv2.INTER_LINEAR)
    refined = _run(image, blurred, GuidedFilter(radius=8, eps=1e-4))
    edge = cv2.dilate(true_alpha, np.ones((25, 25))) != cv2.erode(true_alpha, np.ones((25, 25)))
    before = np.abs(blurred - true_alpha)[edge].mean()
    after = np.abs(refined - true_alpha)[edge].mean()
    assert after < 0.95 * before, (before, after)


def test_bands_with_halo_equal_one_piece() -> None:
    image, true_alpha = _edge_scene()
    alpha = cv2.GaussianBlur(true_alpha, (0, 0), 6)
    for gf in (GuidedFilter(radius=3, eps=1e-2), GuidedFilter(radius=20, eps=1e-3)):
        one_piece = _run(image, alpha, gf)
        halo = align(gf.halo, MAX_STEP)
        pixels = np.dstack([image, alpha])
        bands = iter([(y, pixels[y : y + 50]) for y in range(0, 360, 50)])
        pieces = []
        for window in windows(bands, 360, 64, halo):
            refined = _run(window.pixels[..., :3], window.pixels[..., 3], gf)
            pieces.append(refined[window.inner])
        np.testing.assert_allclose(np.vstack(pieces), one_piece, atol=1e-6)


def test_too_small_a_halo_shows_a_seam() -> None:
    """The band test above can fail: without the halo, band edges differ."""
    image, true_alpha = _edge_scene()
    alpha = cv2.GaussianBlur(true_alpha, (0, 0), 6)
    gf = GuidedFilter(radius=20, eps=1e-3)
    one_piece = _run(image, alpha, gf)
    top = _run(image[:128], alpha[:128], gf)
    assert np.abs(top[:128] - one_piece[:128]).max() > 1e-3


def _textbook(gf: GuidedFilter, guide: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """The filter as first written: q = Σ_c a_c·I_c + b as one product tensor summed over channels."""
    h, w = alpha.shape
    s, r = gf.step, gf.coarse_radius
    image, p = guide.unsqueeze(0), alpha.reshape(1, 1, h, w)
    image_lo = torch.nn.functional.avg_pool2d(image, s, stride=s, ceil_mode=True) if s > 1 else image
    p_lo = torch.nn.functional.avg_pool2d(p, s, stride=s, ceil_mode=True) if s > 1 else p
    a, b = guided._coefficients(image_lo, p_lo, r, gf.eps)
    mean_a, mean_b = guided._box(a, r), guided._box(b, r)
    if s > 1:
        mean_a, mean_b = guided._upsample(mean_a, s, h, w), guided._upsample(mean_b, s, h, w)
    return ((mean_a * image).sum(dim=1) + mean_b[:, 0])[0].clamp(0.0, 1.0)


def test_the_channel_by_channel_output_is_bit_for_bit_the_textbook_sum() -> None:
    rng = np.random.default_rng(3)
    for radius in (1.0, 8.0, 40.0):  # steps 1, 4 and 8
        gf = GuidedFilter(radius=radius, eps=1e-4)
        guide = torch.from_numpy(rng.random((3, 131, 197), dtype=np.float32))
        alpha = torch.from_numpy(rng.random((131, 197), dtype=np.float32))
        assert torch.equal(gf(guide, alpha), _textbook(gf, guide, alpha)), radius
