"""The raw profile's band compositing: the original's samples, untouched, with the model's α."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from daemon.finish import finishing
from daemon.finish.bands import windows
from daemon.finish.finishing import compose_raw_band, plan_finish, process_window, scale_alpha
from daemon.io.detect import open_image
from daemon.profiles import BUILTIN_PROFILES
from tests.conftest import photo


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [3, 4])
def test_raw_band_keeps_every_colour_sample_and_replaces_alpha_with_the_scaled_model_alpha(
    dtype: type[np.unsignedinteger], channels: int
) -> None:
    rng = np.random.default_rng(5)
    peak = np.iinfo(dtype).max
    rgb = rng.integers(0, peak, (37, 53, channels), dtype=dtype, endpoint=True)
    alpha = rng.random((37, 53), dtype=np.float32)
    alpha[0, :4] = [0.0, 1.0, 0.5 / peak, 1.5 / peak]  # the ends and two half-level ties
    out = compose_raw_band(rgb, alpha)
    # The plain numpy composition the OpenCV interleave replaced.
    expected = np.dstack([rgb[..., :3], scale_alpha(alpha, np.dtype(dtype))])
    assert out.dtype == dtype and out.shape == (37, 53, 4)
    np.testing.assert_array_equal(out, expected)
    # Into the rows of a reused, larger buffer (the cut-out's band ring): filled in place.
    reused = np.zeros((40, 53, 4), dtype)
    assert compose_raw_band(rgb, alpha, reused[:37]).base is reused
    np.testing.assert_array_equal(reused[:37], expected)


def test_a_raw_band_that_is_a_view_of_rows_composes_like_a_copy() -> None:
    whole = np.random.default_rng(6).integers(0, 255, (64, 40, 3), dtype=np.uint8)
    alpha = np.random.default_rng(7).random((64, 40), dtype=np.float32)
    np.testing.assert_array_equal(
        compose_raw_band(whole[16:48], alpha[16:48]), compose_raw_band(whole[16:48].copy(), alpha[16:48])
    )


def _product_windows(tmp_path: Path) -> tuple[list[np.ndarray], int]:
    """Every window of a product cut-out of a photo, processed as the float path does; soft α count."""
    source = tmp_path / "astronaut.jpg"
    Image.fromarray(photo("astronaut")).save(source, quality=92)
    yy, xx = np.mgrid[0:128, 0:128].astype(np.float32)
    model_alpha = np.clip((45 - np.hypot(yy - 60, xx - 70)) / 4, 0, 1).astype(np.float32)
    reader = open_image(source, max_megapixels=10)
    plan = plan_finish(reader, model_alpha, BUILTIN_PROFILES["product"], 64, torch.device("cpu"))
    assert plan.profile.decontaminate
    width, height = reader.info.oriented_size
    outputs = [
        process_window(window, plan, width, height)
        for window in windows(reader.bands(plan.band_rows), height, plan.band_rows, plan.halo)
    ]
    soft = sum(int(np.count_nonzero((o[..., 3] > 0) & (o[..., 3] < 1))) for o in outputs)
    return outputs, soft


def test_decontamination_swept_in_small_tiles_equals_one_sweep_over_each_soft_box(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(finishing, "SWEEP_TILE", (1 << 20, 1 << 20))
    whole, soft = _product_windows(tmp_path)
    # Tiles far smaller than the edge's curve: most are skipped, the rest swept on their own boxes.
    monkeypatch.setattr(finishing, "SWEEP_TILE", (7, 19))
    tiled, _ = _product_windows(tmp_path)
    assert soft > 2000
    for one, other in zip(whole, tiled, strict=True):
        np.testing.assert_array_equal(one, other)
