"""The Try preview is the daemon's own finish path at preview scale (daemon/console/preview.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from daemon.config import Config
from daemon.console.preview import PREVIEW_SIDE, Analysed, EngineSource, preview_profile, render_preview
from daemon.finish.cutout import cut_out
from daemon.finish.outputs import Destination
from daemon.io.detect import open_image
from daemon.profiles import Profile
from tests.conftest import photo

FULL = (3000, 2000)  # over 2048 px: the daemon scales length knobs by 3000/2048


def _alpha(size: int = 1024) -> np.ndarray:
    """A soft-edged subject on the model's square grid (what the model hands over)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    inside = ((xx - 0.5) / 0.3) ** 2 + ((yy - 0.55) / 0.4) ** 2
    return np.clip((1.0 - inside) * 6.0, 0.0, 1.0).astype(np.float32)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Analysed]:
    folder = tmp_path_factory.mktemp("preview")
    rgb = cv2.resize(photo("astronaut"), FULL, interpolation=cv2.INTER_CUBIC)
    source = folder / "full.png"
    Image.fromarray(rgb).save(source)
    small = cv2.resize(
        rgb, (PREVIEW_SIDE, round(PREVIEW_SIDE * FULL[1] / FULL[0])), interpolation=cv2.INTER_AREA
    )
    return source, Analysed(folder, "full.png", FULL, small, _alpha())


def _daemon_output_at_preview_scale(
    source: Path, alpha: np.ndarray, profile: Profile, size: tuple[int, int]
) -> np.ndarray:
    out = source.with_name(f"daemon-{profile.erode}-{profile.feather}.png")
    reader = open_image(source, max_megapixels=250)
    try:
        cut_out(reader, alpha, Destination.at(out), profile, device=torch.device("cpu"))
    finally:
        reader.close()
    full = np.asarray(Image.open(out).convert("RGBA"), np.float32)
    return cv2.resize(full, size, interpolation=cv2.INTER_AREA)


def _alpha_of(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGBA"), np.float32)[..., 3]


def test_the_preview_matches_the_daemons_full_resolution_output_scaled_down(
    scene: tuple[Path, Analysed],
) -> None:
    source, image = scene
    profile = Profile(name="t", erode=6.0, feather=4.0, alpha_threshold=10)
    preview, mask = render_preview(image, profile, torch.device("cpu"))
    size = (image.preview.shape[1], image.preview.shape[0])
    daemon = _daemon_output_at_preview_scale(source, image.alpha, profile, size)
    got = _alpha_of(preview)
    assert np.abs(got - daemon[..., 3]).mean() < 1.0  # of 255: resampling noise only
    assert np.array_equal(np.asarray(Image.open(mask).convert("L"), np.float32), got)
    # Without the preview's length scaling the edge would sit visibly elsewhere: the check has teeth.
    unscaled = render_preview(
        image, profile.model_copy(update={"erode": 6.0 * 3000 / 2048}), torch.device("cpu")
    )[0]
    assert np.abs(_alpha_of(unscaled) - daemon[..., 3]).mean() > 2 * np.abs(got - daemon[..., 3]).mean()


def test_preview_lengths_are_the_full_files_lengths_at_preview_scale() -> None:
    profile = Profile(name="t", erode=8.0, feather=2.0, canvas="2000x1000")
    small = preview_profile(profile, (6144, 4096), (1024, 683))
    # The daemon erodes 8 × 6144/2048 = 24 px of 6144; at 1024 that is 4 px.
    assert small.erode == pytest.approx(4.0) and small.feather == pytest.approx(1.0)
    assert small.canvas == "333x167"
    assert small.detail == "none" and small.save_mask
    assert preview_profile(profile, (800, 600), (800, 600)).erode == 8.0  # below 2048: as is


def test_moving_back_to_a_setting_reuses_its_preview(scene: tuple[Path, Analysed]) -> None:
    _, image = scene
    profile = Profile(name="t", feather=3.0)
    first = render_preview(image, profile, torch.device("cpu"))[0]
    stamp = first.stat().st_mtime_ns
    assert render_preview(image, profile, torch.device("cpu"))[0] == first
    assert first.stat().st_mtime_ns == stamp


def test_without_the_services_engine_one_is_loaded_once_from_the_config() -> None:
    source = EngineSource()
    config = Config(device="cpu", model_size=320)
    engine = source.get(None, config)
    assert engine.size == 320 and source.get(None, config) is engine
    assert source.get(engine, config) is engine  # the service's, when it has one
