"""The benchmark's input folder: 24 JPEGs of about 12 MP made from scikit-image's real photos.

Four photos with a subject (astronaut, chelsea, coffee, rocket) each give six files:
landscape and portrait 4000×3000, a square, and three stored landscape with an EXIF
orientation (6, 8 and 3) so readers must rotate. They sit in nested folders, as a shoot does.

The photos are small (≤ 640 px), so they are upscaled; fine grain noise (σ ≈ 2.5) is added so
the JPEGs and the PNG outputs compress like real 12 MP camera files instead of flat gradients.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import skimage.data
import tifffile
from PIL import Image

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
LANDSCAPE = (4000, 3000)  # width, height: 12.0 MP
SQUARE = (3464, 3464)  # 12.0 MP
ORIENTATION_TAG = 0x0112

#: (variant name, stored size, EXIF orientation, sub-folder)
VARIANTS: tuple[tuple[str, tuple[int, int], int, str], ...] = (
    ("land", LANDSCAPE, 1, "day1"),
    ("port", (LANDSCAPE[1], LANDSCAPE[0]), 1, "day1/set-a"),
    ("square", SQUARE, 1, "day1/set-a"),
    ("exif6", LANDSCAPE, 6, "day2"),
    ("exif8", LANDSCAPE, 8, "day2/set-b/close-ups"),
    ("exif3", LANDSCAPE, 3, "day2/set-b"),
)


def _cover(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Crop ``rgb`` to the aspect of ``size`` (centred), then upscale it to ``size``."""
    width, height = size
    h, w = rgb.shape[:2]
    scale = max(width / w, height / h)
    crop_w, crop_h = round(width / scale), round(height / scale)
    x0, y0 = (w - crop_w) // 2, (h - crop_h) // 2
    cropped = rgb[y0 : y0 + crop_h, x0 : x0 + crop_w]
    return cv2.resize(cropped, (width, height), interpolation=cv2.INTER_CUBIC)


def _grain(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = rng.normal(0.0, 2.5, rgb.shape).astype(np.float32)
    return np.clip(rgb.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def _stored_for(displayed: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels to store so that a viewer applying ``orientation`` shows ``displayed``."""
    if orientation == 6:  # viewer turns 90° clockwise, so store it turned counter-clockwise
        return np.ascontiguousarray(np.rot90(displayed, 1))
    if orientation == 8:
        return np.ascontiguousarray(np.rot90(displayed, -1))
    if orientation == 3:
        return np.ascontiguousarray(displayed[::-1, ::-1])
    return displayed


def build_dataset(root: Path, seed: int = 5) -> list[Path]:
    """Write the 24 JPEGs below ``root`` (skipping files already there); return them sorted."""
    rng = np.random.default_rng(seed)
    written: list[Path] = []
    for photo in PHOTOS:
        source: np.ndarray = getattr(skimage.data, photo)()
        for variant, stored_size, orientation, folder in VARIANTS:
            path = root / folder / f"{photo}-{variant}.jpg"
            written.append(path)
            if path.is_file():
                continue
            # Orientations 6/8 display the stored landscape as a portrait.
            displayed_size = stored_size[::-1] if orientation in (6, 8) else stored_size
            displayed = _grain(_cover(source, displayed_size), rng)
            stored = _stored_for(displayed, orientation)
            exif = Image.Exif()
            exif[ORIENTATION_TAG] = orientation
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".part")
            Image.fromarray(stored).save(partial, "JPEG", quality=92, exif=exif.tobytes())
            partial.rename(path)
    return sorted(written)


def count_images(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg") and p.is_file())


#: 24 MP, for the 16-bit TIFF and the JPEG → JPEG (``product``) paths of the stage measurement.
LARGE = (6000, 4000)


def build_stage_files(root: Path, seed: int = 7) -> dict[str, list[Path]]:
    """Inputs of the per-stage CPU measurement (bench/_stage_cpu.py), below ``root``.

    - ``jpeg12``: three of the 12 MP JPEGs (landscape, portrait, EXIF-rotated);
    - ``tiff24``: two 6000×4000 16-bit RGB TIFFs, uncompressed and striped, as Capture One and
      Lightroom export them by default;
    - ``jpeg24``: two 6000×4000 JPEGs (quality 92).
    """
    shoot = build_dataset(root / "shoot")
    jpeg12 = [p for p in shoot if p.stem in ("astronaut-land", "chelsea-port", "coffee-exif6")]
    rng = np.random.default_rng(seed)
    tiff24, jpeg24 = [], []
    for photo in ("rocket", "chelsea"):
        rgb = _cover(getattr(skimage.data, photo)(), LARGE)
        tiff = root / "large" / f"{photo}-24mp-16bit.tif"
        jpeg = root / "large" / f"{photo}-24mp.jpg"
        tiff24.append(tiff)
        jpeg24.append(jpeg)
        if tiff.is_file() and jpeg.is_file():
            continue
        tiff.parent.mkdir(parents=True, exist_ok=True)
        deep = rgb.astype(np.float32) * 257.0 + rng.normal(0.0, 2.5 * 257.0, rgb.shape).astype(np.float32)
        tifffile.imwrite(tiff, np.clip(deep, 0, 65535).astype(np.uint16), photometric="rgb")
        Image.fromarray(_grain(rgb, rng)).save(jpeg, "JPEG", quality=92)
    return {"jpeg12": jpeg12, "tiff24": tiff24, "jpeg24": jpeg24}
