"""HEIF/HEIC still photos (iPhones, most Android phones), decoded whole through pillow-heif.

pillow-heif binds libheif, which parses the container without decoding pixels, so the
size check runs on the header (``ispe``, grid and crop boxes): a file declaring
100 000 × 100 000 pixels is refused in well under a millisecond, nothing decoded.

Decisions, each one a place where HEIF differs from JPEG:

* **Orientation.** libheif applies the container's own ``irot``/``imir``/``clap``
  transforms when it decodes (its default), so pixels and the reported size are already
  as the phone shows them. The EXIF Orientation tag that iPhones *also* write (equal to
  the ``irot``) is informational only in HEIF (ISO/IEC 23008-12; libheif, libvips,
  ImageMagick and pillow-heif all ignore it). Applying it as well would rotate twice, so
  :attr:`ImageInfo.orientation` is always 1 here.
* **Depth.** 10 and 12-bit files are decoded to 16 bits (``convert_hdr_to_8bit=False``)
  and rescaled to the full 0–65535 range (libheif only shifts left, so 10-bit white
  would stay at 65472), giving a 16-bit output like every other deep input.
* **Colour.** An embedded ICC profile (``colr`` of type ``prof``/``rICC``; iPhones embed
  Display P3) is kept. Files that describe their colour only with ``nclx`` code points
  have no profile to pass on and are treated as sRGB, as for an untagged JPEG.
* **What is refused.** AVIF (AV1 in HEIF): pillow-heif ≥ 1.0 ships no AV1 decoder.
  Image sequences (bursts, animations, HEVC video brands): not a still photo, and
  possibly a whole video that would be read into memory.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image

from daemon.errors import CorruptInput, InputError, TooLarge, UnsupportedInput
from daemon.io._colour import ColourConverter, SampleLayout
from daemon.io._types import ColourSpace, ImageInfo
from daemon.io.raster import shrink_to, to_rgb8

STILL_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"mif1"})
SEQUENCE_BRANDS = frozenset({b"hevc", b"hevx", b"hevm", b"hevs", b"msf1", b"avis"})
AVIF_BRANDS = frozenset({b"avif"})
HEIF_BRANDS = STILL_BRANDS | SEQUENCE_BRANDS | AVIF_BRANDS
"""Major brands (bytes 8–12, after ``ftyp`` at 4) that libheif recognises; detect.py uses it."""

# No still HEIF is larger than its own pixels stored uncompressed at 16-bit RGBA: a bigger
# file is not a photo within max_megapixels, and pillow-heif reads whole files into memory.
_MAX_BYTES_PER_PIXEL = 8

_TAG_X_RESOLUTION, _TAG_Y_RESOLUTION, _TAG_RESOLUTION_UNIT = 0x011A, 0x011B, 0x0128


def open_heif(path: Path, *, max_megapixels: float, name: str | None = None) -> HeifReader:
    """Open a HEIF/HEIC still image.

    Raises :class:`~daemon.errors.TooLarge` from the header alone,
    :class:`~daemon.errors.UnsupportedInput` for AVIF, sequences and codecs libheif cannot
    decode here, :class:`~daemon.errors.CorruptInput` for damaged or truncated files.
    """
    return HeifReader(path, max_megapixels=max_megapixels, name=name)


def translate(name: str, exc: Exception) -> InputError:
    """A pillow-heif/libheif exception as the error an operator can act on."""
    detail = " ".join(str(exc).split()) or type(exc).__name__
    if "Security limit exceeded" in detail:
        return TooLarge(f"{name}: over libheif's safety limits ({detail})")
    if isinstance(exc, SyntaxError) or "not been built in" in detail or "Unsupported" in detail:
        return UnsupportedInput(f"{name}: unsupported: HEIF content this build cannot decode ({detail})")
    return CorruptInput(f"{name}: damaged or truncated HEIF file ({detail})")


# What pillow-heif raises for bad input (its documented ValueError, EOFError, SyntaxError,
# RuntimeError, OSError). It works on bytes we already read, so OSError is never the share.
_LIBRARY_ERRORS = (ValueError, EOFError, SyntaxError, RuntimeError, OSError)


class HeifReader:
    """One open HEIF/HEIC file; implements :class:`daemon.io._types.ImageReader`."""

    def __init__(self, path: Path, *, max_megapixels: float, name: str | None = None) -> None:
        """``name``: how messages call the file (``path`` may be a descriptor's ``/proc`` path)."""
        self.path = path
        self.name = name = name or path.name
        data = _read_still_heif(path, max_megapixels=max_megapixels, name=name)
        try:
            heif = pillow_heif.open_heif(data, convert_hdr_to_8bit=False)
            if len(heif) == 0:
                raise UnsupportedInput(f"{name}: unsupported: a HEIF file without a still image")
            image = heif[heif.primary_index]
            mode, (width, height) = image.mode, image.size
            facts = image.info
        except _LIBRARY_ERRORS as exc:
            raise translate(name, exc) from None
        bits, profile, exif = facts.get("bit_depth"), facts.get("icc_profile"), facts.get("exif")
        stored_bits = bits if isinstance(bits, int) else 8
        icc = profile if isinstance(profile, bytes) and profile else None
        if width * height / 1e6 > max_megapixels:
            raise TooLarge(
                f"{name}: {width}×{height} is {width * height / 1e6:.0f} MP, "
                f"over max_megapixels ({max_megapixels:g})"
            )
        if not mode.startswith(("RGB", "L", "I")):
            raise UnsupportedInput(f"{name}: unsupported: HEIF pixel mode {mode}")
        has_alpha = image.has_alpha
        colour: ColourSpace = "gray" if mode.startswith(("L", "I")) else "rgb"
        self._stored_bits = stored_bits
        self._converter = ColourConverter(
            SampleLayout(
                colour=colour,
                min_is_white=False,
                alpha_index=(1 if colour == "gray" else 3) if has_alpha else None,
                alpha_associated=image.premultiplied_alpha,
            ),
            icc,
        )
        self.info = ImageInfo(
            format="heif",
            width=width,
            height=height,
            channels=4 if has_alpha else 3,
            bit_depth=16 if stored_bits > 8 else 8,
            colour=colour,
            has_alpha=has_alpha,
            icc=self._converter.output_icc(icc),
            orientation=1,  # libheif has applied irot/imir; the EXIF tag is not to be applied again
            dpi=_exif_dpi(exif if isinstance(exif, bytes) else None),
        )
        # Held only until decoded: it keeps the file's bytes and libheif's own copy of the pixels.
        self._image: pillow_heif.HeifImage | None = image
        self._pixels: np.ndarray | None = None

    def _decode(self) -> np.ndarray:
        if self._image is None:
            raise ValueError(f"{self.name}: the reader is closed")
        try:
            stored = np.asarray(self._image)
        except _LIBRARY_ERRORS as exc:
            raise translate(self.name, exc) from None
        self._image = None
        if stored.ndim == 2:
            stored = stored[:, :, np.newaxis]
        if stored.shape[:2] != (self.info.height, self.info.width):
            raise CorruptInput(
                f"{self.name}: damaged HEIF file: decoded {stored.shape[1]}×{stored.shape[0]}, "
                f"header says {self.info.width}×{self.info.height}"
            )
        if stored.dtype == np.uint16 and self._stored_bits < 16:
            stored = _full_range(stored, self._stored_bits)
        return self._converter.to_rgb(stored)

    def read(self) -> np.ndarray:
        if self._pixels is None:
            self._pixels = np.ascontiguousarray(self._decode())
        return self._pixels

    def proxy(self, max_side: int) -> np.ndarray:
        return shrink_to(to_rgb8(self.read()), max_side)

    def bands(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        pixels = self.read()
        for y0 in range(0, pixels.shape[0], rows):
            yield y0, pixels[y0 : y0 + rows]

    def close(self) -> None:
        self._image = None
        self._pixels = None


def _read_still_heif(path: Path, *, max_megapixels: float, name: str) -> bytes:
    """The whole file (pillow-heif parses bytes), once its brand says it is a still image we decode."""
    with open(path, "rb") as fh:
        brand = fh.read(12)[8:]
        if brand in AVIF_BRANDS:
            raise UnsupportedInput(
                f"{name}: unsupported: AVIF (no AV1 decoder is installed); "
                "convert it to HEIC, JPEG, PNG or TIFF"
            )
        if brand in SEQUENCE_BRANDS:
            raise UnsupportedInput(
                f"{name}: unsupported: a HEIF image sequence or video ({brand.decode('ascii', 'replace')}), "
                "not a still photo; export the frame you want as HEIC or JPEG"
            )
        size = os.fstat(fh.fileno()).st_size
        if size > max_megapixels * 1e6 * _MAX_BYTES_PER_PIXEL:
            raise TooLarge(
                f"{name}: {size / 1e6:.0f} MB is more than any photo within max_megapixels "
                f"({max_megapixels:g}) can take"
            )
        fh.seek(0)
        return fh.read()


def _full_range(shifted: np.ndarray, bits: int) -> np.ndarray:
    """libheif's ``code << (16 - bits)`` with the top bits repeated below, so the top code is 65535.

    Bit replication is the standard widening (PNG's sBIT, libtiff): within 1 of
    ``round(code * 65535 / (2**bits - 1))`` and, unlike that division, one shift and one OR
    per sample (0.1 s and one extra copy for 12 MP, where the division took 2 s and 400 MB).
    """
    widened = shifted >> bits
    widened |= shifted
    return widened


def _exif_dpi(exif: bytes | None) -> tuple[float, float] | None:
    """DPI from the EXIF block (HEIF has no resolution box of its own); None if absent or unreadable."""
    if not exif:
        return None
    tags = Image.Exif()
    try:
        tags.load(exif)
        x, y = tags.get(_TAG_X_RESOLUTION), tags.get(_TAG_Y_RESOLUTION)
        unit = tags.get(_TAG_RESOLUTION_UNIT, 2)
        if not x or not y or unit not in (2, 3):
            return None
        per_inch = 2.54 if unit == 3 else 1.0
        return float(x) * per_inch, float(y) * per_inch
    except (SyntaxError, ValueError, TypeError, ZeroDivisionError, struct.error):
        return None  # a damaged EXIF block costs the DPI, never the photo
