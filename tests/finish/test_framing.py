"""Framing: product boxes with margin and canvas, exact ID sizes, band-wise crop and resample."""

from __future__ import annotations

import numpy as np

from daemon.finish.faces import Face
from daemon.finish.framing import Geometry, Reframer, id_geometry, product_geometry, subject_box


def test_square_canvas_centres_the_subject_with_its_margin() -> None:
    g = product_geometry((100.0, 50.0, 300.0, 450.0), margin=10, canvas="square")
    assert (g.out_w, g.out_h) == (480, 480)  # 400 tall + 2 × 10 % of 400
    assert g.left + g.right == 400 and g.top + g.bottom == 500  # centred on the box


def test_fixed_canvas_has_exact_size_and_fits_the_subject() -> None:
    g = product_geometry((0.0, 0.0, 1000.0, 500.0), margin=0, canvas="800x800")
    assert (g.out_w, g.out_h) == (800, 800)
    assert g.right - g.left >= 1000 and g.bottom - g.top >= 500


def test_subject_box_maps_low_res_to_full_res() -> None:
    alpha = np.zeros((50, 100), np.float32)
    alpha[10:20, 30:40] = 1.0
    x0, y0, x1, y1 = subject_box(alpha, 1000, 500)
    assert 280 <= x0 <= 300 and 400 <= x1 <= 420 and 90 <= y0 <= 100 and 200 <= y1 <= 220


def test_id_crops_are_exact_and_face_centred() -> None:
    for size, expected in (("35x45mm", (413, 531)), ("2x2in", (600, 600))):
        g = id_geometry(Face(400, 300, 200, 240), size)
        assert (g.out_w, g.out_h) == expected
        assert abs((g.left + g.right) / 2 - 500) <= 1 and abs((g.top + g.bottom) / 2 - 420) <= 1


def _reframe_in_bands(image: np.ndarray, g: Geometry, band: int) -> np.ndarray:
    h, w, c = image.shape
    reframer = Reframer(g, w, h, c)
    out = [piece for y in range(0, h, band) for piece in reframer.push(y, image[y : y + band])]
    return np.vstack(out)


def test_reframing_in_bands_equals_one_piece_and_pads_with_zero() -> None:
    rng = np.random.default_rng(5)
    image = rng.random((300, 200, 4)).astype(np.float32)
    for g in (Geometry(-20, -30, 180, 340, 200, 370), Geometry(-20, 10, 230, 260, 100, 100)):
        one_piece = _reframe_in_bands(image, g, 300)
        assert one_piece.shape == (g.out_h, g.out_w, 4)
        np.testing.assert_allclose(_reframe_in_bands(image, g, 32), one_piece, atol=1e-6)
    crop = _reframe_in_bands(image, Geometry(-20, -30, 180, 340, 200, 370), 64)
    assert crop[:30].max() == 0.0 and crop[:, :20].max() == 0.0
    np.testing.assert_array_equal(crop[30:330, 20:200], image[:, :180])


def test_a_resampled_crop_reads_nothing_outside_its_box() -> None:
    rng = np.random.default_rng(6)
    image = rng.random((300, 200, 4)).astype(np.float32)
    g = Geometry(20, 10, 180, 250, 70, 100)  # a 160×240 box shrunk to 70×100
    reference = _reframe_in_bands(image, g, 300)
    outside = image.copy()
    outside[:10], outside[250:], outside[:, :20], outside[:, 180:] = 50.0, 50.0, 50.0, 50.0
    for band in (300, 32, 7):
        np.testing.assert_allclose(_reframe_in_bands(outside, g, band), reference, atol=1e-6)
