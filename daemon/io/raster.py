"""JPEG, PNG and WebP: decoded whole, through Pillow (and OpenCV for 16-bit PNG).

These files are small next to TIFF/PSB, so :meth:`RasterReader.bands` slices a
full decode. Truncation is an error here, never grey rows: Pillow raises on a
truncated file, where ``cv2.imread`` only warns (NOTES §2).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from pathlib import Path

import cv2
import imagecodecs
import numpy as np
from PIL import Image, ImageCms, ImageFile, UnidentifiedImageError

from daemon.errors import CorruptInput, UnsupportedInput
from daemon.io._damage import damaged_bytes_are_input_errors
from daemon.io._header import RasterHeader, check_size, read_raster_header
from daemon.io._orient import normalise_orientation, oriented_copy
from daemon.io._types import ColourSpace, ImageInfo

# Our own size check (max_megapixels, and a bound per side) runs on our own parse of the
# header before Pillow opens the file, so Pillow's fixed bomb limit (which would refuse
# files the studio allowed) is switched off.
Image.MAX_IMAGE_PIXELS = None
ImageFile.LOAD_TRUNCATED_IMAGES = False

_ORIENTATION_TAG = 0x0112
#: A complete JPEG stream ends with the EOI marker (zero padding after it is tolerated).
_JPEG_EOI = b"\xff\xd9"
_SRGB = ImageCms.createProfile("sRGB")


def _open_pillow(path: Path, name: str) -> Image.Image:
    try:
        return Image.open(path)
    except UnidentifiedImageError:
        raise CorruptInput(f"{name}: not a readable image (unknown or damaged header)") from None


def _read_header(path: Path, name: str) -> RasterHeader:
    # Unbuffered: the PNG chunk walk reads 8 bytes per chunk, not a buffer's worth each time.
    with open(path, "rb", buffering=0) as fh:
        return read_raster_header(fh, name)


def _dpi(image: Image.Image) -> tuple[float, float] | None:
    dpi = image.info.get("dpi")
    if not dpi:
        return None
    return float(dpi[0]), float(dpi[1])


class RasterReader:
    """An :class:`~daemon.io._types.ImageReader` for JPEG, PNG and WebP."""

    def __init__(self, path: Path, *, max_megapixels: float, name: str | None = None) -> None:
        self.path = path
        self.name = name or path.name
        self._pixels: np.ndarray | None = None
        # The size is checked on our own parse of the header: nothing Pillow does runs before it.
        with damaged_bytes_are_input_errors(self.name, "image header"):
            header = _read_header(path, self.name)
        check_size(self.name, header.width, header.height, max_megapixels)
        self._what = header.format.upper() if header.format != "webp" else "WebP"
        with damaged_bytes_are_input_errors(self.name, self._what):
            self._image = _open_pillow(path, self.name)
            try:
                self.info = self._read_info(self._image, header)
            except BaseException:
                self._image.close()
                raise

    def _read_info(self, image: Image.Image, header: RasterHeader) -> ImageInfo:
        fmt = (image.format or "").lower()
        if fmt not in ("jpeg", "png", "webp", "mpo"):
            raise UnsupportedInput(f"{self.name}: unsupported: {image.format} in the raster reader")
        if (image.width, image.height) != (header.width, header.height):
            raise CorruptInput(
                f"{self.name}: damaged {self._what} (header says {header.width}×{header.height}, "
                f"the decoder {image.width}×{image.height}); re-export or re-copy the file"
            )
        depth = header.bit_depth if fmt == "png" else 8
        has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
        colour: ColourSpace = "rgb"
        if image.mode == "CMYK":
            colour = "cmyk"
        elif image.mode in ("L", "LA", "I;16", "I"):
            colour = "gray"
        return ImageInfo(
            format="jpeg" if fmt == "mpo" else fmt,
            width=image.width,
            height=image.height,
            channels=4 if has_alpha else 3,
            bit_depth=16 if depth == 16 else 8,
            colour=colour,
            has_alpha=has_alpha,
            icc=image.info.get("icc_profile") or None,
            orientation=self._orientation(image, header),
            dpi=_dpi(image),
        )

    @staticmethod
    def _orientation(image: Image.Image, header: RasterHeader) -> int:
        # A PNG's getexif() loads (decodes) the whole image to look for an eXIf chunk after
        # the pixels; the header walk has already found it. JPEG and WebP keep EXIF in the header.
        if header.format == "png":
            if header.exif is None:
                return 1
            exif = Image.Exif()
            try:
                exif.load(header.exif)
            except (SyntaxError, ValueError, struct.error, EOFError, OSError):
                return 1  # damaged EXIF: shown upright, as viewers do
        else:
            exif = image.getexif()
        return normalise_orientation(exif.get(_ORIENTATION_TAG, 1))

    def _decode_jpeg_turbo(self) -> np.ndarray | None:
        """The full-resolution decode of an RGB or gray JPEG, or None for Pillow to do it.

        Why not Pillow here: its decode of a 12 MP JPEG costs 0.16 CPU-s, most of it copies
        (``load`` 0.07, then ``convert`` and ``np.asarray``, which goes through ``tobytes``);
        imagecodecs runs the same libjpeg-turbo (islow DCT, fancy upsampling) straight into a
        numpy array in 0.04 s. The pixels are the same: tests/io/test_raster.py compares the two
        on 4:2:0, 4:2:2, 4:4:4, progressive, gray, odd-sized and rotated files.

        Only the plain cases take this path. libjpeg-turbo only *warns* on a truncated stream
        and fills the rest grey, where Pillow raises: so a stream that does not end with EOI,
        CMYK (ICC conversion), and anything Pillow would hand over differently go to Pillow,
        as before.
        """
        if self.info.format != "jpeg" or self._image.mode not in ("RGB", "L"):
            return None
        data = self.path.read_bytes()
        if not data.rstrip(b"\0").endswith(_JPEG_EOI):
            return None
        pixels = np.asarray(imagecodecs.jpeg8_decode(data))
        if pixels.dtype != np.uint8 or pixels.shape[:2] != (self.info.height, self.info.width):
            return None
        if pixels.ndim == 2:
            return np.asarray(cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB))
        return pixels if pixels.shape[2] == 3 else None

    def _decode_pillow(self, image: Image.Image) -> np.ndarray:
        image.load()
        if image.mode == "CMYK":
            return np.asarray(self._cmyk_to_rgb(image))
        target = "RGBA" if self.info.has_alpha else "RGB"
        # convert() to the mode an image already has is a full copy for nothing.
        return np.asarray(image if image.mode == target else image.convert(target))

    def _cmyk_to_rgb(self, image: Image.Image) -> Image.Image:
        icc = self.info.icc
        if icc is None:
            # No profile to honour: Pillow's plain conversion (documented in the README).
            return image.convert("RGB")
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode="RGB")
        except (ImageCms.PyCMSError, OSError):
            # A damaged profile: the plain conversion rather than refuse the file (as the TIFF reader does).
            return image.convert("RGB")
        assert converted is not None
        return converted

    def _decode_16bit_png(self) -> np.ndarray:
        # Check the whole stream first: libpng via OpenCV may hand back a partial image.
        with Image.open(self.path) as probe:
            probe.verify()
        pixels = cv2.imread(str(self.path), cv2.IMREAD_UNCHANGED)
        if pixels is None:
            raise CorruptInput(
                f"{self.name}: damaged PNG (OpenCV could not decode it); re-export or re-copy the file"
            )
        if pixels.ndim == 2:
            pixels = cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
        elif pixels.shape[2] == 4:
            pixels = cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGBA)
        else:
            pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
        if self.info.has_alpha and pixels.shape[2] == 3:
            pixels = np.dstack([pixels, np.full(pixels.shape[:2], 65535, np.uint16)])
        return pixels

    def read(self) -> np.ndarray:
        if self._pixels is None:
            with damaged_bytes_are_input_errors(self.name, self._what):
                stored = self._decode_16bit_png() if self.info.bit_depth == 16 else self._decode_jpeg_turbo()
                if stored is None:
                    stored = self._decode_pillow(self._image)
                self._pixels = oriented_copy(stored, self.info.orientation)
            # Pillow's own decoded copy (4 bytes a pixel) would otherwise live beside ours until
            # close(), through the whole finish: at 250 MP that is a second gigabyte per file.
            self._image.close()
        return self._pixels

    def proxy(self, max_side: int) -> np.ndarray:
        if self.info.format == "jpeg" and self._pixels is None:
            # DCT-domain reduction: decodes at 1/2…1/8 scale for a fraction of the cost.
            with (
                damaged_bytes_are_input_errors(self.name, self._what),
                _open_pillow(self.path, self.name) as image,
            ):
                image.draft("RGB", (max_side, max_side))
                small = oriented_copy(self._decode_pillow(image), self.info.orientation)
        else:
            small = self.read()
        with damaged_bytes_are_input_errors(self.name, self._what):
            return shrink_to(to_rgb8(small), max_side)

    def bands(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        pixels = self.read()
        for y0 in range(0, pixels.shape[0], rows):
            yield y0, pixels[y0 : y0 + rows]

    def close(self) -> None:
        self._image.close()
        self._pixels = None


def to_rgb8(pixels: np.ndarray) -> np.ndarray:
    """Drop alpha and scale 16-bit to 8-bit: what the model sees."""
    rgb = pixels[..., :3]
    if rgb.dtype == np.uint16:
        rgb = (rgb >> 8).astype(np.uint8)
    return np.ascontiguousarray(rgb)


def shrink_to(rgb: np.ndarray, max_side: int) -> np.ndarray:
    h, w = rgb.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return rgb
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
