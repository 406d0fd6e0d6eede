"""WebP output end to end: ``hotmatte process`` with a custom profile, the real model, real files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import SMALL_MODEL_SIZE, photo, run_hotmatte, save_jpeg


def _process_with_web_profile(
    config: Path, out: Path, source: Path, *options: str
) -> subprocess.CompletedProcess[str]:
    return run_hotmatte(
        "process",
        "--config",
        config,
        "--profile",
        "web",
        *options,
        "--model-size",
        SMALL_MODEL_SIZE,
        "-o",
        out,
        source,
    )


def test_custom_webp_profile_writes_a_transparent_webp_and_refuses_what_webp_cannot_hold(
    tmp_path: Path,
) -> None:
    config = tmp_path / "hotmatte.yaml"
    # --model-size below also checks that a CLI override keeps the config's custom profiles.
    config.write_text("profiles:\n  web: {extends: portrait, output_format: webp, jpeg_quality: 90}\n")
    source = save_jpeg(tmp_path / "in" / "astronaut.jpg", photo("astronaut"))
    # One pixel wider than WebP allows; cheap to decode, so the refusal is what is tested.
    save_jpeg(tmp_path / "in" / "banner.jpg", np.full((16, 16_384, 3), 128, np.uint8))
    out = tmp_path / "out"

    result = _process_with_web_profile(config, out, tmp_path / "in")

    assert result.returncode == 1, result.stderr
    assert "banner.jpg: UnsupportedInput: WEBP cannot hold 16384x16: at most 16383 px a side" in result.stderr
    assert "choose output_format png or tiff" in result.stderr
    assert sorted(p.name for p in out.rglob("*")) == ["astronaut.webp"]  # no half-written banner
    written = out / "astronaut.webp"
    assert written.read_bytes()[:4] == b"RIFF" and written.read_bytes()[8:12] == b"WEBP"
    with Image.open(written) as image:
        assert image.format == "WEBP" and image.mode == "RGBA"
        rgba = np.asarray(image)
    assert rgba.shape[:2] == photo("astronaut").shape[:2]

    # The same profile as a PNG (lossless, written by the streaming PNG encoder) is the reference.
    png_out = tmp_path / "png"
    result = _process_with_web_profile(config, png_out, source, "--format", "png")
    assert result.returncode == 0, result.stderr
    reference = np.asarray(Image.open(png_out / "astronaut.png"))
    np.testing.assert_array_equal(rgba[..., 3], reference[..., 3])  # alpha is exact
    alpha = rgba[..., 3]
    # The subject is kept: the face opaque, the wall right of the rocket cut away.
    assert alpha[70:150, 180:260].mean() > 240 and alpha[200:300, 440:].mean() < 30
    # Colours within lossy WebP's error where the subject shows (measured 2.0 at quality 90).
    shown = alpha > 128
    assert shown.mean() > 0.2
    assert np.abs(rgba[..., :3].astype(int) - reference[..., :3])[shown].mean() < 4
