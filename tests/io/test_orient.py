"""EXIF orientation: OpenCV's contiguous copy equals numpy's view for every orientation and layout."""

from __future__ import annotations

import numpy as np
import pytest

from daemon.io._orient import orient, oriented_copy


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("shape", [(5, 7), (5, 7, 1), (5, 7, 3), (6, 3, 4), (4, 6, 5)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.int32])
def test_an_oriented_copy_equals_the_oriented_view_and_owns_contiguous_memory(
    orientation: int, shape: tuple[int, ...], dtype: type
) -> None:
    stored: np.ndarray = np.random.default_rng(orientation).integers(0, 200, shape).astype(dtype)
    view = orient(stored, orientation)
    copy = oriented_copy(stored, orientation)
    assert copy.shape == view.shape and copy.dtype == view.dtype
    np.testing.assert_array_equal(copy, view)
    assert copy.flags.c_contiguous
    if orientation != 1:
        assert not np.shares_memory(copy, stored)


def test_an_orientation_outside_one_to_eight_is_refused() -> None:
    with pytest.raises(ValueError, match="orientation 9"):
        oriented_copy(np.zeros((2, 2, 3), np.uint8), 9)
