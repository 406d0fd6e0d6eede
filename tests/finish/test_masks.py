"""Alpha clean-up: threshold renormalises, erode and feather are seamless per band, islands and holes."""

from __future__ import annotations

import cv2
import numpy as np

from daemon.finish import masks
from daemon.finish.bands import windows


def test_threshold_zeroes_below_and_renormalises_the_rest() -> None:
    alpha = np.array([0.0, 0.1, 0.2, 0.6, 1.0], np.float32)
    out = masks.apply_threshold(alpha, 51)  # 0.2
    np.testing.assert_allclose(out, [0.0, 0.0, 0.0, 0.5, 1.0], atol=1e-6)


def test_erode_pulls_the_edge_in_by_the_radius() -> None:
    alpha = np.zeros((80, 80), np.float32)
    alpha[20:60, 20:60] = 1.0
    eroded = masks.erode(alpha, 3)
    assert eroded[23:57, 23:57].min() == 1.0
    assert eroded[22, 30] == 0.0 and eroded[30, 56 + 1] == 0.0


def test_islands_go_and_the_subject_with_its_soft_edge_stays() -> None:
    disc = np.zeros((100, 100), np.float32)
    cv2.circle(disc, (40, 50), 25, 1.0, -1)
    alpha: np.ndarray = cv2.GaussianBlur(disc, (0, 0), 1.5)
    alpha[5:12, 85:95] = 0.9  # a stray island
    kept = masks.keep_largest_subject(alpha)
    assert kept[5:12, 85:95].max() == 0.0
    # The subject keeps its soft edge: only the faint far tail of the blur may be cut.
    assert np.abs(kept[10:90, 5:75] - alpha[10:90, 5:75]).max() < 0.02


def test_holes_are_filled_but_open_bays_are_not() -> None:
    alpha = np.zeros((100, 100), np.float32)
    cv2.circle(alpha, (50, 50), 40, 1.0, -1)
    cv2.circle(alpha, (50, 50), 8, 0.0, -1)  # a hole inside
    alpha[45:55, 85:100] = 0.0  # a bay open to the border
    filled = masks.fill_holes(alpha)
    assert filled[50, 50] == 1.0
    assert filled[50, 95] == 0.0


def test_erode_and_feather_in_bands_equal_one_piece() -> None:
    rng = np.random.default_rng(3)
    alpha = cv2.GaussianBlur((rng.random((300, 200)) > 0.5).astype(np.float32), (0, 0), 2)

    def chain(a: np.ndarray) -> np.ndarray:
        return masks.feather(masks.erode(a, 2.5), 1.5)

    halo = masks.erode_halo(2.5) + masks.feather_halo(1.5)
    bands = iter([(y, alpha[y : y + 37]) for y in range(0, 300, 37)])
    stitched = np.vstack([chain(w.pixels)[w.inner] for w in windows(bands, 300, 64, halo)])
    np.testing.assert_allclose(stitched, chain(alpha), atol=1e-6)
