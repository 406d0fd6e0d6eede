"""Band-wise α upsampling: the OpenCV fast path (single-channel images) against the plain
bilinear gather it replaced, which colour images and every block keep."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.finish.bands import resize_block, resize_rows

#: The documented tolerance of the fast path (cv2 across, numpy down) against resize_block
#: (numpy down, then across): the same bilinear weights summed in another order, so they agree
#: to float32 rounding. Quantised to 8 or 16 bits that is at most one level, on the rare
#: sample whose value falls on a rounding boundary (3e-8 of a 12 MP RGBA PNG's samples,
#: 2e-5 of a 24 MP TIFF's in bench/results/throughput-latest.json).
FLOAT_TOLERANCE = 1e-6
QUANTISED_TOLERANCE = 1


@pytest.mark.parametrize("shape", [(1024, 1024), (257, 190), (64, 64)])
def test_fast_band_upsampling_matches_the_bilinear_gather_within_float_rounding(
    shape: tuple[int, ...],
) -> None:
    rng = np.random.default_rng(3)
    image = rng.random(shape, dtype=np.float32)
    width, height = 1500, 1100
    for y0 in range(0, height, 256):
        y1 = min(height, y0 + 256)
        fast = resize_rows(image, width, height, y0, y1)
        plain = resize_block(image, width, height, range(y0, y1), range(width))
        assert fast.shape == plain.shape and fast.dtype == plain.dtype
        assert float(np.abs(fast - plain).max()) <= FLOAT_TOLERANCE
        levels = np.abs(np.rint(fast * 65535).astype(np.int64) - np.rint(plain * 65535).astype(np.int64))
        assert int(levels.max()) <= QUANTISED_TOLERANCE


def test_bands_of_the_fast_path_stitch_into_the_one_piece_resize() -> None:
    image = np.random.default_rng(4).random((200, 300), dtype=np.float32)
    whole = resize_rows(image, 900, 700, 0, 700)
    stitched = np.concatenate([resize_rows(image, 900, 700, y, min(700, y + 96)) for y in range(0, 700, 96)])
    np.testing.assert_array_equal(stitched, whole)


def test_colour_images_keep_the_exact_gather() -> None:
    image = np.random.default_rng(5).random((120, 90, 3), dtype=np.float32)
    rows = resize_rows(image, 700, 500, 100, 300)
    np.testing.assert_array_equal(rows, resize_block(image, 700, 500, range(100, 300), range(700)))
