"""Shared fixtures: real photos from scikit-image, the real weights, the real ``hotmatte`` command."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pytest
import skimage.data
from PIL import Image, ImageCms

if TYPE_CHECKING:
    from tests.studio import Studio

REPO = Path(__file__).resolve().parents[1]
HOTMATTE = [sys.executable, "-m", "daemon.cli"]
#: Small enough for quick tests; quality checks that need the trained size use 1024.
SMALL_MODEL_SIZE = 256


def photo(name: str) -> np.ndarray:
    """A real RGB photo shipped with scikit-image (``astronaut``, ``chelsea``, ``coffee``, ``rocket``…)."""
    image: np.ndarray = getattr(skimage.data, name)()
    return image


def save_jpeg(path: Path, rgb: np.ndarray, **params: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, "JPEG", quality=92, **params)
    return path


def run_hotmatte(
    *args: str | Path | int,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    run_as: dict[str, Any] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``hotmatte ARGS`` as a real process; ``run_as``: extra ``Popen`` keywords (another user)."""
    return subprocess.run(
        [*HOTMATTE, *map(str, args)],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        **(run_as or {}),
    )


def cmyk_to_srgb_reference(cmyk: Image.Image, icc: bytes) -> Image.Image:
    """An independent CMYK → sRGB conversion the readers are checked against: Photoshop's
    default intent (relative colorimetric with black point compensation), through Pillow."""
    transform = ImageCms.buildTransform(
        ImageCms.ImageCmsProfile(io.BytesIO(icc)),
        ImageCms.createProfile("sRGB"),
        "CMYK",
        "RGB",
        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
        flags=ImageCms.Flags.BLACKPOINTCOMPENSATION,
    )
    converted = ImageCms.applyTransform(cmyk, transform)
    assert converted is not None
    return converted


@pytest.fixture(scope="session")
def weights_dir() -> Path:
    directory = REPO / "weights"
    assert (directory / "manifest.json").is_file(), "run `make weights` (hotmatte weights fetch) first"
    return directory


def farthest_island(alpha: np.ndarray) -> float:
    """How far (px) the farthest piece of α > 0 lies from the largest one."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats((alpha > 0).astype(np.uint8), connectivity=8)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    distance = cv2.distanceTransform((labels != largest).astype(np.uint8), cv2.DIST_L2, 3)
    return max((float(distance[labels == k].min()) for k in range(1, count) if k != largest), default=0.0)


@pytest.fixture
def studio() -> Iterator[Studio]:
    """A production-like studio: non-root service user, studio group, shared folders (tests/studio.py)."""
    from tests.studio import make_studio

    yield from make_studio()
