"""Foreground estimation recovers the subject's colours at soft edges; band and block sweeps are seamless."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from daemon.finish.bands import resize_block, resize_rows, windows
from daemon.finish.finishing import Plan, plan_finish, process_window, window_alpha
from daemon.io.detect import open_image
from daemon.profiles import BUILTIN_PROFILES
from daemon.refine.foreground import FULL_RES_ITERATIONS, estimate_multilevel, keep_opaque_colours, sweep
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


# -- process_window decontaminates in column blocks, skipping those with no soft α ------------


def _portrait_plan(tmp_path: Path, band_rows: int) -> tuple[Plan, Path]:
    """``portrait`` on a real photo, with a soft-edged disc on the left as the model's α."""
    source = tmp_path / "astronaut.png"
    Image.fromarray(photo("astronaut")).save(source)
    yy, xx = np.mgrid[0:512, 0:512].astype(np.float32)
    alpha = np.clip((110 - np.hypot(yy - 260, xx - 190)) / 30, 0, 1).astype(np.float32)
    model_alpha = cv2.resize(alpha, (256, 256), interpolation=cv2.INTER_AREA)
    reader = open_image(source, max_megapixels=10)
    return plan_finish(
        reader, model_alpha, BUILTIN_PROFILES["portrait"], band_rows, torch.device("cpu")
    ), source


def _whole_window_colours(
    window_pixels: np.ndarray, alpha: np.ndarray, plan: Plan, rows: range
) -> np.ndarray:
    """The one-piece reference: F and B upsampled and swept over the whole window at once."""
    assert plan.low.fg is not None and plan.low.bg is not None
    image = torch.from_numpy(window_pixels.astype(np.float32) / 255.0).permute(2, 0, 1).contiguous()
    a = torch.from_numpy(alpha)
    place = (512, 512, rows.start, rows.stop)
    fg0, bg0 = (_t(resize_rows(low, *place)) for low in (plan.low.fg, plan.low.bg))
    fg, _ = sweep(image, a, fg0, bg0, FULL_RES_ITERATIONS)
    return keep_opaque_colours(image, a, fg).permute(1, 2, 0).numpy()


def test_column_blocks_equal_the_whole_window_where_alpha_is_not_zero(tmp_path: Path) -> None:
    band_rows, block = 64, 96  # blocks that do not divide the width, and cut through the soft edge
    plan, source = _portrait_plan(tmp_path, band_rows)
    reader = open_image(source, max_megapixels=10)
    soft_blocks: set[bool] = set()
    for window in windows(reader.bands(band_rows), 512, band_rows, plan.halo):
        rgb = torch.from_numpy(window.pixels.astype(np.float32) / 255.0).permute(2, 0, 1)
        alpha = window_alpha(window, plan, 512, 512, rgb)
        kept = alpha[window.inner]
        reference = _whole_window_colours(window.pixels, alpha, plan, range(window.top, window.bottom))
        out = process_window(window, plan, 512, 512, block_columns=block)
        np.testing.assert_array_equal(out[..., 3], kept)
        shown = kept > 0
        expected = reference[window.inner] * kept[..., None]
        np.testing.assert_allclose(out[..., :3][shown], expected[shown], rtol=0, atol=1e-6)
        assert not out[..., :3][~shown].any()
        for x0 in range(0, 512, block):
            part = kept[:, x0 : x0 + block]
            soft_blocks.add(bool(((part > 0) & (part < 1)).any()))
    # Both paths ran: blocks that were swept, and blocks skipped because α there is only 0 or 1.
    assert soft_blocks == {True, False}


def test_block_resize_equals_the_rows_resize() -> None:
    low = photo("coffee")[::7, ::7].astype(np.float32) / 255.0
    rows = range(333, 777)
    whole = resize_rows(low, 1900, 1234, rows.start, rows.stop)
    for columns in (range(0, 1900), range(0, 1), range(1899, 1900), range(611, 1102), range(5, 5)):
        block = resize_block(low, 1900, 1234, rows, columns)
        np.testing.assert_array_equal(block, whole[:, columns.start : columns.stop])
