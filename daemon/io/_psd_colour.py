"""Stored PSD channels to RGB(A): depth, colour mode, ICC and the white matte.

Tone and colour decisions, all made here:

* 32-bit documents hold linear floats, 1.0 = white. They become 16-bit by a
  plain linear clamp to [0, 1] (no tone mapping: values above white clip, as
  Photoshop's own "Merge to 16-bit" with exposure 0 and gamma 1 does). The
  embedded profile is kept, so the values keep their meaning.
* CMYK is converted to sRGB through the embedded ICC profile with littlecms,
  relative colorimetric intent with black point compensation (Photoshop's
  default for "Convert to Profile"), at 8 or 16 bits following the file.
  Without an embedded profile there is no licensed default CMYK profile we can
  ship, so the naive ``(1 - C)(1 - K)`` formula is used; it is documented as
  approximate.
* Grayscale with a profile goes through the same route to sRGB (a gray profile
  cannot be embedded in an RGB output); without one it is replicated to RGB.
* Photoshop stores the merged colour of a transparent document matted against
  white; for RGBA output with unassociated alpha that matte is taken out again.

We use imagecodecs' littlecms binding rather than Pillow's ImageCms because
Pillow's transforms are 8-bit only, and a 16-bit file must stay 16-bit.
"""

from __future__ import annotations

import imagecodecs
import numpy as np

from daemon.errors import CorruptInput
from daemon.io._psd_layout import PsdLayout

MODE_GRAY = 1
MODE_RGB = 3
INTENT_RELATIVE_COLORIMETRIC = 1
LCMS_BLACK_POINT_COMPENSATION = 0x2000
SRGB_PROFILE: bytes = imagecodecs.cms_profile("srgb")


def output_dtype(depth: int) -> np.dtype[np.unsignedinteger]:
    return np.dtype(np.uint8) if depth == 8 else np.dtype(np.uint16)


def output_icc(layout: PsdLayout) -> bytes | None:
    """The profile of the RGB pixels we hand out (not always the file's own)."""
    if layout.mode == MODE_RGB:
        return layout.icc
    if layout.mode == MODE_GRAY and layout.icc is None:
        return None
    return SRGB_PROFILE


def to_native(plane: np.ndarray) -> np.ndarray:
    """One stored plane (big-endian, any depth) as native uint8 or uint16."""
    if plane.dtype.kind == "f":
        clamped = np.clip(plane.astype(np.float32), 0.0, 1.0)
        scaled: np.ndarray = np.rint(clamped * 65535.0).astype(np.uint16)
        return scaled
    native: np.ndarray = plane.astype(plane.dtype.newbyteorder("="))
    return native


def colour_to_rgb(colour: np.ndarray, layout: PsdLayout) -> np.ndarray:
    """``HxWxK`` native colour channels of the file's mode to ``HxWx3`` RGB, same dtype."""
    if layout.mode == MODE_RGB:
        return np.ascontiguousarray(colour)
    if layout.mode == MODE_GRAY:
        gray = np.ascontiguousarray(colour[..., 0])
        if layout.icc is None:
            return np.repeat(gray[..., None], 3, axis=2)
        return _transform(gray, layout.icc, "gray")
    return _cmyk_to_rgb(colour, layout.icc)


def unmatte_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Undo Photoshop's white matte: ``stored = a*c + (1-a)*white``, solved for ``c``.

    Where alpha is 0 the stored colour is kept (it is invisible anyway).
    """
    top = float(np.iinfo(rgb.dtype).max)
    a = alpha.astype(np.float32)[..., None]
    stored = rgb.astype(np.float32)
    solved = (stored + a - top) * top / np.maximum(a, 1.0)
    result = np.where(a > 0, solved, stored)
    return np.clip(np.rint(result), 0.0, top).astype(rgb.dtype)


def _cmyk_to_rgb(colour: np.ndarray, icc: bytes | None) -> np.ndarray:
    top = np.iinfo(colour.dtype).max
    # Photoshop stores CMYK inverted: the maximum means no ink.
    ink = top - np.ascontiguousarray(colour[..., :4])
    if icc is not None:
        return _transform(ink, icc, "cmyk")
    fraction = ink.astype(np.float32) / top
    white = (1.0 - fraction[..., :3]) * (1.0 - fraction[..., 3:4])
    return np.rint(white * top).astype(colour.dtype)


def _transform(pixels: np.ndarray, icc: bytes, colorspace: str) -> np.ndarray:
    try:
        result: np.ndarray = imagecodecs.cms_transform(
            pixels,
            icc,
            SRGB_PROFILE,
            colorspace=colorspace,
            outcolorspace="rgb",
            outdtype=pixels.dtype,
            intent=INTENT_RELATIVE_COLORIMETRIC,
            flags=LCMS_BLACK_POINT_COMPENSATION,
        )
    except imagecodecs.CmsError as error:
        raise CorruptInput(f"the embedded {colorspace} ICC profile cannot be used: {error}") from error
    return result
