"""Foreground estimation recovers the subject's colours at soft edges; band sweeps are seamless."""

from __future__ import annotations

import numpy as np
import torch

from daemon.bands import windows
from daemon.refine.foreground import estimate_multilevel, keep_opaque_colours, sweep
from tests.conftest import photo


def _scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Known F (smooth orange), known soft α (disc with a wide ramp), real photo as B."""
    h, w = 256, 320
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    alpha = np.clip((90 - np.hypot(yy - 128, xx - 160)) / 25, 0, 1).astype(np.float32)
    fg = np.dstack([0.95 + 0 * xx, 0.55 + 0.1 * np.sin(xx / 20), 0.15 + 0 * xx]).astype(np.float32)
    bg = photo("astronaut")[:h, 100 : 100 + w].astype(np.float32) / 255.0
    image = alpha[..., None] * fg + (1 - alpha[..., None]) * bg
    return image, alpha, fg


def _t(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)).permute(2, 0, 1).contiguous()


def test_estimated_foreground_is_closer_to_the_truth_than_the_photo() -> None:
    image, alpha, true_fg = _scene()
    fg_t, _ = estimate_multilevel(_t(image), torch.from_numpy(alpha))
    fg = keep_opaque_colours(_t(image), torch.from_numpy(alpha), fg_t).permute(1, 2, 0).numpy()
    soft = (alpha > 0.05) & (alpha < 0.95)
    error_photo = np.abs(image - true_fg)[soft].mean()
    error_estimate = np.abs(fg - true_fg)[soft].mean()
    assert error_estimate < 0.5 * error_photo, (error_photo, error_estimate)
    assert np.array_equal(fg[alpha >= 1], image[alpha >= 1])


def test_band_sweeps_equal_one_piece() -> None:
    image, alpha, _ = _scene()
    fg0, bg0 = estimate_multilevel(_t(image[::4, ::4]), torch.from_numpy(alpha[::4, ::4].copy()))
    up = torch.nn.functional.interpolate
    fg_init = up(fg0[None], size=alpha.shape, mode="bilinear")[0].permute(1, 2, 0).numpy()
    bg_init = up(bg0[None], size=alpha.shape, mode="bilinear")[0].permute(1, 2, 0).numpy()
    pixels = np.dstack([image, alpha, fg_init, bg_init])

    def run(p: np.ndarray) -> np.ndarray:
        fg, _ = sweep(_t(p[..., :3]), torch.from_numpy(p[..., 3].copy()), _t(p[..., 4:7]), _t(p[..., 7:]), 3)
        return fg.permute(1, 2, 0).numpy()

    one_piece = run(pixels)
    bands = iter([(y, pixels[y : y + 40]) for y in range(0, alpha.shape[0], 40)])
    pieces = [run(w.pixels)[w.inner] for w in windows(bands, alpha.shape[0], 32, 3)]
    np.testing.assert_allclose(np.vstack(pieces), one_piece, atol=1e-6)
    no_halo = [run(w.pixels)[w.inner] for w in windows(iter([(0, pixels)]), alpha.shape[0], 32, 0)]
    assert np.abs(np.vstack(no_halo) - one_piece).max() > 1e-4  # the halo is what makes it seamless
