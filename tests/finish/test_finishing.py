"""The raw profile's band compositing: the original's samples, untouched, with the model's α."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.finish.finishing import compose_raw_band, scale_alpha


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


def test_a_raw_band_that_is_a_view_of_rows_composes_like_a_copy() -> None:
    whole = np.random.default_rng(6).integers(0, 255, (64, 40, 3), dtype=np.uint8)
    alpha = np.random.default_rng(7).random((64, 40), dtype=np.float32)
    np.testing.assert_array_equal(
        compose_raw_band(whole[16:48], alpha[16:48]), compose_raw_band(whole[16:48].copy(), alpha[16:48])
    )
