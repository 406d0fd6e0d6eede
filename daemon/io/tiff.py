"""TIFF reader (tifffile + imagecodecs) with proxies and full-resolution bands in bounded memory.

Handles tiled, striped and BigTIFF files; every compression tifffile/imagecodecs decodes
(LZW, Deflate, ZSTD, JPEG, PackBits...); 8 and 16-bit unsigned samples; RGB, gray
(MinIsBlack and MinIsWhite) and CMYK, each with an optional alpha (ExtraSamples 1 =
associated, un-premultiplied here, or 2 = unassociated). Unspecified extra samples (0,
e.g. saved selections) are dropped. Only the first page (the main image) is read; its
SubIFD/series pyramid levels serve as proxies when present.

Contract details the pipeline relies on:

- ``info.width``/``height``/``dpi`` are as stored (as the raster and PSD readers do);
  ``info.channels`` counts the returned channels (3, or 4 with alpha); every returned
  array is EXIF-oriented, RGB or RGBA.
- ``info.icc`` is the profile of the *returned* pixels: the embedded RGB profile, sRGB
  for converted CMYK, None for gray (a gray profile cannot tag RGB). The embedded
  profile as found is :attr:`TiffReader.source_icc`.
- Orientations 5–8 turn stored columns into rows; :meth:`TiffReader.bands` then reads
  windows of stored columns of at most ``window_bytes`` each. Tiled files decode every
  tile once; striped files decode the whole file once per window (a 648 MB image with
  the default 128 MB window: 6 passes, about 4x the time of orientation 1).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import numpy as np
import tifffile

from daemon.errors import CorruptInput, UnsupportedInput
from daemon.io._colour import ColourConverter, SampleLayout, to_uint8
from daemon.io._damage import REMEDY, damaged_bytes_are_input_errors
from daemon.io._header import check_size
from daemon.io._orient import (
    TRANSPOSING,
    normalise_orientation,
    orient,
    oriented_copy,
    oriented_shape,
    stored_window,
)
from daemon.io._resample import area_resize
from daemon.io._tiff_regions import JPEG_COMPRESSIONS, RegionReader
from daemon.io._types import ColourSpace, ImageInfo

# One compressed strip or tile is decoded whole; larger ones are refused to keep memory bounded.
DEFAULT_MAX_SEGMENT_BYTES = 256 << 20
DEFAULT_WINDOW_BYTES = 128 << 20
PROXY_BAND_ROWS = 512
PHOTOMETRIC_COLOUR: dict[int, ColourSpace] = {0: "gray", 1: "gray", 2: "rgb", 5: "cmyk"}
EXTRASAMPLE_ASSOCIATED, EXTRASAMPLE_UNASSOCIATED = 1, 2
# What tifffile (and the struct/zlib code under it) raises on a damaged header: TypeError and
# ArithmeticError when a tag that should hold one number holds several, or a zero.
HEADER_ERRORS = (
    tifffile.TiffFileError,
    ValueError,
    TypeError,
    LookupError,
    ArithmeticError,
    struct.error,
    EOFError,
)


def open_tiff(
    path: Path,
    *,
    max_megapixels: float,
    max_segment_bytes: int = DEFAULT_MAX_SEGMENT_BYTES,
    window_bytes: int = DEFAULT_WINDOW_BYTES,
    name: str | None = None,
) -> TiffReader:
    """Open ``path`` and read its header; no pixel is decoded yet.

    Raises TooLarge (over ``max_megapixels``, or compressed segments too big to stream),
    UnsupportedInput (mode or sample type we do not handle) or CorruptInput. tifffile reads
    only the header and the first IFD here, so the size is checked before any decode.
    """
    name = name or path.name
    with damaged_bytes_are_input_errors(name, "TIFF"):
        try:
            tif = tifffile.TiffFile(path)
        except HEADER_ERRORS as exc:
            raise CorruptInput(f"{name}: not a readable TIFF ({exc}); {REMEDY}") from exc
        try:
            return TiffReader(tif, max_megapixels, max_segment_bytes, window_bytes, name=name)
        except HEADER_ERRORS as exc:
            tif.close()
            raise CorruptInput(f"{name}: damaged TIFF header ({exc}); {REMEDY}") from exc
        except BaseException:
            tif.close()
            raise


class TiffReader:
    """One open TIFF. Implements :class:`daemon.io._types.ImageReader`."""

    def __init__(
        self,
        tif: tifffile.TiffFile,
        max_megapixels: float,
        max_segment_bytes: int,
        window_bytes: int,
        *,
        name: str = "TIFF",
    ):
        self._tif = tif
        self.name = name
        page = tif.pages.first
        width, height = int(page.imagewidth), int(page.imagelength)
        check_size(name, width, height, max_megapixels)
        bit_depth = _bit_depth(page)
        layout = _sample_layout(page)
        self.source_icc: bytes | None = page.iccprofile
        self._converter = ColourConverter(layout, self.source_icc)
        self.naive_cmyk = self._converter.naive_cmyk
        self.alpha_associated = layout.alpha_associated
        self._orientation = normalise_orientation(page.tags.valueof(274, 1))
        self.info = ImageInfo(
            format="tiff",
            width=width,
            height=height,
            channels=4 if layout.alpha_index is not None else 3,  # of the returned pixels, as other readers
            bit_depth=bit_depth,
            colour=layout.colour,
            has_alpha=layout.alpha_index is not None,
            icc=self._converter.output_icc(self.source_icc),
            orientation=self._orientation,
            dpi=_dpi(page),
        )
        self._file_size = int(tif.filehandle.size)
        self._max_segment_bytes = max_segment_bytes
        self._window_bytes = window_bytes
        self._regions = RegionReader(page, max_segment_bytes=max_segment_bytes, file_size=self._file_size)
        self._levels = _pyramid_levels(tif, page)

    def __enter__(self) -> TiffReader:
        return self

    def __exit__(
        self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
    ) -> None:
        self.close()

    def close(self) -> None:
        self._regions.close()
        self._tif.close()

    def proxy(self, max_side: int) -> np.ndarray:
        """RGB uint8, longer side ``max_side`` (or the image's own if smaller)."""
        with damaged_bytes_are_input_errors(self.name, "TIFF"):
            return self._proxy(max_side)

    def _proxy(self, max_side: int) -> np.ndarray:
        source = self._proxy_source(max_side)
        try:
            small = _area_shrink(source, max_side, self._converter.layout.colour_channels)
        finally:
            if source is not self._regions:
                source.close()
        rgb = to_uint8(self._converter.to_rgb(small, with_alpha=False))
        return oriented_copy(rgb, self._orientation)

    def read(self) -> np.ndarray:
        with damaged_bytes_are_input_errors(self.name, "TIFF"):
            stored = self._regions.read(0, self.info.height, 0, self.info.width)
            return oriented_copy(self._converter.to_rgb(stored), self._orientation)

    def bands(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """Bands of exactly ``rows`` oriented rows (the last one shorter), top to bottom."""
        if rows < 1:
            raise ValueError("rows must be >= 1")
        with damaged_bytes_are_input_errors(self.name, "TIFF"):
            yield from self._bands(rows)

    def _bands(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        if self._orientation in TRANSPOSING:
            yield from self._bands_from_column_windows(rows)
            return
        height, width = self.info.height, self.info.width
        for y0 in range(0, height, rows):
            y1 = min(height, y0 + rows)
            r0, r1, c0, c1 = stored_window(y0, y1, height, width, self._orientation)
            band = self._converter.to_rgb(self._regions.read(r0, r1, c0, c1))
            yield y0, oriented_copy(band, self._orientation)

    def _bands_from_column_windows(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        height, width = self.info.height, self.info.width
        out_height, _ = oriented_shape(height, width, self._orientation)
        column_bytes = height * self._regions.samples * self._regions.dtype.itemsize
        window = max(rows, self._window_bytes // column_bytes // rows * rows)
        for w0 in range(0, out_height, window):
            w1 = min(out_height, w0 + window)
            r0, r1, c0, c1 = stored_window(w0, w1, height, width, self._orientation)
            oriented = orient(self._converter.to_rgb(self._regions.read(r0, r1, c0, c1)), self._orientation)
            for y0 in range(w0, w1, rows):
                yield y0, np.ascontiguousarray(oriented[y0 - w0 : min(w1, y0 + rows) - w0])
            del oriented

    def _proxy_source(self, max_side: int) -> RegionReader:
        """The smallest pyramid level still at least ``max_side`` on its longer side, else the image."""
        usable = [p for p in self._levels if max(p.imagewidth, p.imagelength) >= max_side]
        if not usable:
            return self._regions
        level = min(usable, key=lambda p: int(p.imagewidth) * int(p.imagelength))
        return RegionReader(level, max_segment_bytes=self._max_segment_bytes, file_size=self._file_size)


def _bit_depth(page: tifffile.TiffPage) -> int:
    if isinstance(page.bitspersample, tuple) or isinstance(page.sampleformat, tuple):
        # tifffile hands back a tuple when the samples of one pixel differ (or the tag is damaged).
        kinds = f"bits {page.bitspersample}, formats {page.sampleformat}"
        raise UnsupportedInput(f"unsupported: TIFF samples of different sizes or types ({kinds})")
    bits, sample_format = int(page.bitspersample), int(page.sampleformat)
    if bits not in (8, 16) or sample_format != 1:
        kind = {1: "unsigned", 2: "signed", 3: "float"}.get(sample_format, f"format {sample_format}")
        raise UnsupportedInput(f"unsupported: {bits}-bit {kind} TIFF samples (8 and 16-bit unsigned only)")
    return bits


def _sample_layout(page: tifffile.TiffPage) -> SampleLayout:
    photometric = int(page.photometric)
    samples = int(page.samplesperpixel)
    if photometric == 6 and page.compression in JPEG_COMPRESSIONS:
        colour: ColourSpace = "rgb"  # JPEG-in-TIFF YCbCr: the decoder hands back RGB
    elif photometric in PHOTOMETRIC_COLOUR:
        colour = PHOTOMETRIC_COLOUR[photometric]
    else:
        raise UnsupportedInput(f"unsupported: TIFF photometric {_photometric_name(photometric)}")
    if colour == "cmyk" and int(page.tags.valueof(332, 1)) != 1:
        raise UnsupportedInput("unsupported: separated TIFF with a non-CMYK ink set")
    layout = SampleLayout(
        colour=colour, min_is_white=photometric == 0, alpha_index=None, alpha_associated=False
    )
    if samples < layout.colour_channels:
        raise CorruptInput(f"{colour} TIFF with only {samples} samples per pixel")
    extras = tuple(int(v) for v in page.extrasamples)
    if (
        samples > layout.colour_channels
        and extras
        and extras[0] in (EXTRASAMPLE_ASSOCIATED, EXTRASAMPLE_UNASSOCIATED)
    ):
        return SampleLayout(
            colour=colour,
            min_is_white=photometric == 0,
            alpha_index=layout.colour_channels,
            alpha_associated=extras[0] == EXTRASAMPLE_ASSOCIATED,
        )
    return layout


def _photometric_name(value: int) -> str:
    try:
        return str(tifffile.PHOTOMETRIC(value).name)
    except ValueError:
        return str(value)


def _dpi(page: tifffile.TiffPage) -> tuple[float, float] | None:
    x, y = page.tags.valueof(282), page.tags.valueof(283)
    unit = int(page.tags.valueof(296, 2))
    if x is None or y is None or unit not in (2, 3):
        return None
    try:
        xres, yres = _rational(x), _rational(y)
    except ZeroDivisionError:
        return None
    per_inch = 2.54 if unit == 3 else 1.0
    if xres <= 0 or yres <= 0:
        return None
    return xres * per_inch, yres * per_inch


def _rational(value: object) -> float:
    if isinstance(value, tuple):
        return float(value[0]) / float(value[1])
    return float(value)  # type: ignore[arg-type]


def _pyramid_levels(tif: tifffile.TiffFile, base: tifffile.TiffPage) -> list[tifffile.TiffPage]:
    """Reduced copies of the main image (SubIFDs or series levels) with the same sample layout."""
    try:
        series = tif.series[0]
        levels = [level.keyframe for level in series.levels[1:]]
    except HEADER_ERRORS:
        return []  # a damaged pyramid only costs the shortcut; the main image still reads
    same_layout = [
        p
        for p in levels
        if isinstance(p, tifffile.TiffPage)
        and (p.samplesperpixel, p.bitspersample, p.photometric, p.planarconfig)
        == (base.samplesperpixel, base.bitspersample, base.photometric, base.planarconfig)
        and p.imagedepth == 1
    ]
    return same_layout


def _area_shrink(source: RegionReader, max_side: int, colour_channels: int) -> np.ndarray:
    """Area-average ``source`` so its longer side is ``max_side``, reading ~512-row bands.

    Each band is first reduced by the integer factor (exact box average, cheap), the
    stacked result then gets one final INTER_AREA resize to the exact size.
    """
    height, width = source.height, source.width
    longest = max(height, width)
    scale = min(1.0, max_side / longest)
    target = (max(1, round(width * scale)), max(1, round(height * scale)))
    factor = max(1, int(longest // max_side))
    # Read whole segment rows (nothing decoded twice); rows left over after the last full
    # multiple of ``factor`` are carried into the next band.
    segment = source.segment_rows
    read_rows = (
        segment * max(1, PROXY_BAND_ROWS // segment) if segment <= PROXY_BAND_ROWS else PROXY_BAND_ROWS
    )
    pieces = []
    carry: np.ndarray | None = None
    for y0 in range(0, height, read_rows):
        y1 = min(height, y0 + read_rows)
        band = source.read(y0, y1, 0, width)[:, :, :colour_channels]
        if carry is not None:
            band = np.concatenate([carry, band], axis=0)
        usable = band.shape[0] if y1 == height else band.shape[0] // factor * factor
        carry = band[usable:].copy() if usable < band.shape[0] else None
        if usable:
            size = (max(1, round(width / factor)), max(1, round(usable / factor)))
            pieces.append(area_resize(band[:usable], *size))
    return area_resize(np.concatenate(pieces, axis=0), *target)
