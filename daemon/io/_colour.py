"""Turning stored samples (gray, RGB, CMYK, with or without alpha) into RGB or RGBA.

Works band by band so readers can stream. CMYK goes through littlecms (Pillow ImageCms)
with the file's own profile. No CMYK profile ships with Pillow, littlecms's Python
bindings or any package we depend on, and ImageCms can only *build* sRGB, Lab and XYZ
profiles, so a CMYK file *without* a usable embedded profile falls back to the naive
formula ``R = (1 - C)(1 - K)`` (same for G/M, B/Y). That is what most viewers do; colours
of such files are approximate and the result is tagged sRGB.

Pillow has no 16-bit CMYK or RGB modes, so 16-bit CMYK is converted at 8-bit precision and
scaled back to 16 bits (the output stays 16-bit; the colour steps are 8-bit ones).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image, ImageCms

from daemon.io._types import ColourSpace


@lru_cache(maxsize=1)
def srgb_profile_bytes() -> bytes:
    """littlecms's built-in sRGB profile, embedded in outputs of converted CMYK."""
    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


def icc_colour_space(icc: bytes | None) -> str | None:
    """The data colour space an ICC profile declares ('RGB', 'GRAY', 'CMYK'...), None if unreadable."""
    if icc is None or len(icc) < 20:
        return None
    return icc[16:20].decode("ascii", "replace").strip()


@dataclass(frozen=True)
class SampleLayout:
    """How the stored samples are arranged: the colour channels, then extra samples."""

    colour: ColourSpace
    min_is_white: bool
    alpha_index: int | None  # index of the alpha sample, None when the file has no transparency
    alpha_associated: bool  # premultiplied alpha (TIFF ExtraSamples = 1)

    @property
    def colour_channels(self) -> int:
        return {"gray": 1, "rgb": 3, "cmyk": 4}[self.colour]


class ColourConverter:
    """Converts bands of one image's stored samples to RGB(A) of the same dtype."""

    def __init__(self, layout: SampleLayout, icc: bytes | None) -> None:
        self.layout = layout
        self._cmyk_transform: ImageCms.ImageCmsTransform | None = None
        self.naive_cmyk = False
        if layout.colour == "cmyk":
            self._cmyk_transform = _cmyk_transform(icc) if icc_colour_space(icc) == "CMYK" else None
            self.naive_cmyk = self._cmyk_transform is None

    def output_icc(self, source_icc: bytes | None) -> bytes | None:
        """The profile describing the converted pixels."""
        if self.layout.colour == "cmyk":
            return srgb_profile_bytes()
        # A gray profile cannot tag RGB pixels; replicated gray is left untagged.
        return source_icc if icc_colour_space(source_icc) == "RGB" else None

    def to_rgb(self, stored: np.ndarray, *, with_alpha: bool = True) -> np.ndarray:
        layout = self.layout
        colour = stored[:, :, : layout.colour_channels]
        if layout.min_is_white:
            colour = np.iinfo(stored.dtype).max - colour
        if layout.colour == "gray":
            rgb = np.repeat(colour, 3, axis=2)
        elif layout.colour == "cmyk":
            rgb = self._cmyk_to_rgb(colour)
        else:
            rgb = colour
        if not (with_alpha and layout.alpha_index is not None):
            return np.ascontiguousarray(rgb)
        alpha = stored[:, :, layout.alpha_index : layout.alpha_index + 1]
        if layout.alpha_associated:
            rgb = _unpremultiply(rgb, alpha)
        return np.concatenate([rgb, alpha], axis=2)

    def _cmyk_to_rgb(self, cmyk: np.ndarray) -> np.ndarray:
        sixteen = cmyk.dtype == np.uint16
        cmyk8 = _to_uint8(cmyk) if sixteen else np.ascontiguousarray(cmyk)
        if self._cmyk_transform is None:
            rgb8 = _naive_cmyk_to_rgb(cmyk8)
        else:
            height, width = cmyk8.shape[:2]
            image = Image.frombuffer("CMYK", (width, height), cmyk8.tobytes(), "raw", "CMYK", 0, 1)
            converted = ImageCms.applyTransform(image, self._cmyk_transform)
            assert converted is not None  # applyTransform returns None only with inPlace=True
            rgb8 = np.asarray(converted)
        return rgb8.astype(np.uint16) * 257 if sixteen else rgb8


def _cmyk_transform(icc: bytes | None) -> ImageCms.ImageCmsTransform | None:
    assert icc is not None
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.buildTransform(
            source,
            ImageCms.createProfile("sRGB"),
            "CMYK",
            "RGB",
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
            flags=ImageCms.Flags.BLACKPOINTCOMPENSATION,
        )
    except (ImageCms.PyCMSError, OSError):
        return None  # a damaged profile: fall back to the naive formula rather than refuse the file


def _naive_cmyk_to_rgb(cmyk8: np.ndarray) -> np.ndarray:
    ink = cmyk8.astype(np.uint32)
    white = 255 - ink[:, :, 3:4]
    rgb = (255 - ink[:, :, :3]) * white
    return ((rgb + 127) // 255).astype(np.uint8)


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    return ((pixels.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _unpremultiply(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    top = np.iinfo(rgb.dtype).max
    a = alpha.astype(np.float32)
    straight = rgb.astype(np.float32) * top / np.maximum(a, 1.0)
    straight = np.where(a > 0, straight, 0.0)
    return np.clip(np.rint(straight), 0, top).astype(rgb.dtype)


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """8-bit copy of 8- or 16-bit pixels, rounding."""
    return pixels if pixels.dtype == np.uint8 else _to_uint8(pixels)
