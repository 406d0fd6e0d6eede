"""The direct path gives the general float path's samples and α, bit for bit, for what it applies to."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from daemon.finish import direct
from daemon.finish.bands import windows
from daemon.finish.finishing import Plan, compose_output, plan_finish, process_window
from daemon.finish.framing import Reframer
from daemon.io.detect import open_image
from daemon.profiles import BUILTIN_PROFILES, Profile, Shadow
from tests.conftest import photo

BAND_ROWS = 64


def _general_bands(source: Path, plan: Plan, bits: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The general path: premultiplied float windows, reframed, composed onto the background."""
    reader = open_image(source, max_megapixels=10)
    width, height = reader.info.oriented_size
    reframer = Reframer(plan.geometry, width, height, plan.channels)
    y = 0
    for window in windows(reader.bands(plan.band_rows), height, plan.band_rows, plan.halo):
        for band in reframer.push(window.y0, process_window(window, plan, width, height)):
            yield compose_output(band, plan, y, bits)
            y += band.shape[0]


def _model_alpha(centre: tuple[int, int], radius: int, size: tuple[int, int]) -> np.ndarray:
    """A soft-edged disc on the model's grid, as a subject there looks after upsampling."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    disc = np.clip((radius - np.hypot(yy - centre[1], xx - centre[0])) / 12, 0, 1).astype(np.float32)
    return cv2.resize(disc, (128, 128), interpolation=cv2.INTER_AREA)


def _both(
    source: Path, profile: Profile, alpha: np.ndarray, bits: int
) -> tuple[Plan, np.ndarray, np.ndarray]:
    reader = open_image(source, max_megapixels=10)
    plan = plan_finish(reader, alpha, profile, BAND_ROWS, torch.device("cpu"))
    assert direct.applies(plan, bits, bits)
    fast = list(direct.direct_bands(reader, plan, bits))
    slow = list(_general_bands(source, plan, bits))
    assert [p.shape for p, _ in fast] == [p.shape for p, _ in slow]  # the same bands for the writers
    samples, reference = np.vstack([p for p, _ in fast]), np.vstack([p for p, _ in slow])
    assert samples.dtype == reference.dtype == (np.uint8 if bits == 8 else np.uint16)
    np.testing.assert_array_equal(samples, reference)
    np.testing.assert_array_equal(np.vstack([a for _, a in fast]), np.vstack([a for _, a in slow]))
    return plan, samples, np.vstack([a for _, a in fast])


def test_product_on_white_with_a_canvas_beyond_the_photo_equals_the_float_path(tmp_path: Path) -> None:
    source = tmp_path / "astronaut.jpg"
    Image.fromarray(photo("astronaut")).save(source, quality=92)
    # A subject high in the frame: the square canvas reaches above the photo and is padded.
    plan, samples, alpha = _both(
        source, BUILTIN_PROFILES["product"], _model_alpha((260, 100), 120, (512, 512)), 8
    )
    assert plan.geometry.top < 0 and plan.profile.decontaminate and plan.guided is not None
    assert (samples[alpha == 0] == 255).all()  # padding and clear pixels are white
    soft = (alpha > 0) & (alpha < 1)
    assert soft.sum() > 1000 and (alpha == 1).sum() > 10_000  # every kind of pixel was there


def test_sixteen_bit_input_keeps_sixteen_bit_samples_equal_to_the_float_path(tmp_path: Path) -> None:
    source = tmp_path / "deep.tif"
    rgb = photo("coffee").astype(np.uint16) * 257 + np.arange(3, dtype=np.uint16)  # low bits matter
    tifffile.imwrite(source, rgb, photometric="rgb")
    _, samples, alpha = _both(
        source, BUILTIN_PROFILES["product"], _model_alpha((300, 250), 140, (400, 600)), 16
    )
    opaque = alpha == 1
    assert opaque.any() and np.isin(samples[opaque] % 257, (0, 1, 2)).all()  # not rounded to 8 bits


@pytest.mark.parametrize("channels", [3, 4])
def test_a_colour_background_without_refinement_equals_the_float_path(tmp_path: Path, channels: int) -> None:
    source = tmp_path / "chelsea.png"
    pixels = photo("chelsea")
    if channels == 4:
        pixels = np.dstack([pixels, np.full(pixels.shape[:2], 200, np.uint8)])
    Image.fromarray(pixels).save(source)
    profile = BUILTIN_PROFILES["raw"].model_copy(update={"name": "teal", "background": "#336699"})
    # The subject reaches past the left edge: clear columns there, no crop.
    _, samples, alpha = _both(source, profile, _model_alpha((40, 150), 150, (300, 451)), 8)
    assert (samples[alpha == 0] == (0x33, 0x66, 0x99)).all()


def test_what_the_direct_path_does_not_take_stays_on_the_float_path(tmp_path: Path) -> None:
    source = tmp_path / "astronaut.png"
    Image.fromarray(photo("astronaut")).save(source)
    alpha = _model_alpha((256, 256), 150, (512, 512))
    product = BUILTIN_PROFILES["product"]
    cases = {
        "transparent": (BUILTIN_PROFILES["portrait"], 8),
        "shadow": (product.model_copy(update={"shadow": Shadow()}), 8),
        "resampled to a fixed canvas": (product.model_copy(update={"canvas": "300x300"}), 8),
        "8-bit in, 16-bit out": (product, 16),
    }
    for name, (profile, bits) in cases.items():
        plan = plan_finish(
            open_image(source, max_megapixels=10), alpha, profile, BAND_ROWS, torch.device("cpu")
        )
        assert not direct.applies(plan, 8, bits), name
