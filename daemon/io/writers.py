"""Output writers fed band by band, top to bottom, so the full image is never held.

``open_writer`` returns a :class:`BandWriter` writing to a path (the temporary path that
:func:`daemon.finish.outputs.write_atomically` hands out). Every writer checks each band's
width, channels and dtype and, at :meth:`BandWriter.close`, that exactly ``height`` rows
came; otherwise it raises ``ValueError`` and the caller discards the temporary.

- TIFF: RGB(A), 8/16-bit, 512x512 tiles, Deflate (the default; Photoshop's "ZIP") or LZW
  with the horizontal predictor, or uncompressed (``none``: the least CPU, a third more bytes),
  unassociated alpha (ExtraSamples = 2), ICC profile and DPI, standard tags only (no
  tifffile JSON description), BigTIFF above 3.5 GB uncompressed. Photoshop opens these.
- PNG: streaming encoder (:mod:`daemon.io._png`), 8/16-bit RGB(A), iCCP and pHYs.
- JPEG: 8-bit RGB through Pillow. libjpeg via Pillow has no row-push API, so this one
  *does* hold the whole 8-bit RGB image (3 bytes a pixel: 324 MB for 108 MP).
- WebP: 8-bit RGB(A) through Pillow, lossy at the profile's ``jpeg_quality`` with lossless
  alpha. Pillow's WebP encoder takes only a whole image, so this one also holds it: 3 or 4
  bytes a pixel as it is fed (48 MB for a 12 MP RGBA), plus about as much again inside
  libwebp while encoding; the largest WebP (16383 px a side, RGBA) holds 1.07 GB. 16-bit
  bands are rounded to 8 bits as they come: WebP has no 16-bit samples, and users choose it
  knowing that. WebP stops at 16383 px a side; :func:`check_output_size` refuses bigger
  images before any row is held, and callers can ask it before any pixel is decoded.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol

import numpy as np
import tifffile
from isal import igzip_lib
from PIL import Image

from daemon.errors import UnsupportedInput
from daemon.io._colour import to_uint8
from daemon.io._png import FILTERS, PngStream
from daemon.io._ring import BufferRing
from daemon.io._types import OutputSpec

OutputFormat = Literal["png", "tiff", "jpeg", "webp"]
TILE = 512
BIGTIFF_ABOVE = 3_500_000_000
TIFF_COMPRESSIONS: dict[str, str | None] = {"lzw": "lzw", "deflate": "adobe_deflate", "none": None}
#: Deflate tiles are encoded here, not by tifffile: the horizontal predictor in numpy and ISA-L's
#: level 1 (daemon/io/_png.py says why ISA-L). On a 24 MP RGBA16 cut-out that is 0.7 CPU s for
#: 141 MB where tifffile's LZW took 2.7 s for 181 MB and its Deflate (zlib level 1) 1.9 s.
TIFF_DEFLATE_LEVEL = 1
#: Deflate windows (log2 bytes): zlib's full 32 KB, and the short one for noisy 16-bit tiles.
FULL_HISTORY_BITS = 15
NOISY_HISTORY_BITS = 2
#: Tiles compressed at once (ISA-L releases the GIL), as tifffile's own maxworkers did.
TIFF_WORKERS = 2
#: Strip buffers a TIFF writer fills in turn (see TiffBandWriter.__init__).
STRIP_RING = 3
EXTRASAMPLE_UNASSOCIATED = 2
JPEG_MAX_SIDE = 65_535
WEBP_MAX_SIDE = 16_383  # libwebp's WEBP_MAX_DIMENSION: the bitstream stores each side in 14 bits
#: libwebp's effort, 0 (fast) to 6. On a 12 MP cut-out (quality 92) 2 wrote within 5 % of 4's size
#: in half the time; 6 took 10x as long for 10-15 % less; 0 was 40-55 % bigger.
WEBP_METHOD = 2
#: Formats with a side limit below what the readers accept, and what to choose instead.
MAX_SIDE: dict[str, tuple[int, str]] = {
    "jpeg": (JPEG_MAX_SIDE, "png or tiff"),
    "webp": (WEBP_MAX_SIDE, "png or tiff"),
}
#: EXIF tags for the resolution: WebP has no field of its own for it.
EXIF_X_RESOLUTION, EXIF_Y_RESOLUTION, EXIF_RESOLUTION_UNIT, EXIF_INCH = 0x011A, 0x011B, 0x0128, 2


class BandWriter(Protocol):
    def write_band(self, pixels: np.ndarray) -> None:
        """The next rows of the image, HxWxC in the writer's dtype.

        Every writer copies (or encodes) the rows before it returns: the caller may fill the
        same array with the next band.
        """
        ...

    def close(self) -> None:
        """Finish the file. Raises ValueError when fewer than ``height`` rows came."""
        ...

    def abort(self) -> None:
        """Stop without finishing; the file at the path is garbage to be discarded."""
        ...


def open_writer(
    fmt: OutputFormat,
    path: Path,
    *,
    width: int,
    height: int,
    channels: int,
    bit_depth: int,
    icc: bytes | None = None,
    dpi: tuple[float, float] | None = None,
    tiff_compression: str = "deflate",
    png_level: int = 1,
    png_filter: str = "up",
    jpeg_quality: int = 92,
) -> BandWriter:
    spec = OutputSpec(width, height, channels, bit_depth, icc, dpi)
    if fmt == "tiff":
        return TiffBandWriter(path, spec, tiff_compression)
    if fmt == "png":
        return PngBandWriter(path, spec, png_level, png_filter)
    if fmt == "jpeg":
        return JpegBandWriter(path, spec, jpeg_quality)
    if fmt == "webp":
        return WebpBandWriter(path, spec, jpeg_quality)
    raise ValueError(f"unknown output format {fmt!r}")


def check_output_size(fmt: str, width: int, height: int) -> None:
    """Raise :class:`~daemon.errors.UnsupportedInput` when ``fmt`` cannot hold ``width``x``height``.

    Cheap: callers that know the output size from the header alone can ask before decoding.
    """
    if fmt not in MAX_SIDE:
        return
    limit, instead = MAX_SIDE[fmt]
    if max(width, height) > limit:
        raise UnsupportedInput(
            f"{fmt.upper()} cannot hold {width}x{height}: at most {limit} px a side; "
            f"choose output_format {instead}"
        )


class _BandChecks:
    """Shape bookkeeping shared by every writer."""

    def __init__(self, spec: OutputSpec) -> None:
        self.spec = spec
        self.width, self.height, self.channels = spec.width, spec.height, spec.channels
        self.dtype = spec.dtype
        self.rows_written = 0

    def _accept(self, pixels: np.ndarray) -> None:
        expected = (self.width, self.channels, self.dtype)
        if pixels.ndim != 3 or (pixels.shape[1], pixels.shape[2], pixels.dtype) != expected:
            raise ValueError(f"band {pixels.shape} {pixels.dtype} does not fit {expected}")
        if self.rows_written + pixels.shape[0] > self.height:
            raise ValueError(f"more than {self.height} rows written")
        self.rows_written += pixels.shape[0]

    def _require_complete(self) -> None:
        if self.rows_written != self.height:
            raise ValueError(f"only {self.rows_written} of {self.height} rows were written")

    def __enter__(self) -> _BandChecks:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def close(self) -> None:
        raise NotImplementedError

    def abort(self) -> None:
        raise NotImplementedError


class TiffBandWriter(_BandChecks):
    """Tiled TIFF. tifffile pulls tiles from a generator, so it runs on a thread fed by a
    queue of 512-row strips (one queued, one being tiled: ~100 MB for a 12000-px-wide RGBA16)."""

    def __init__(
        self,
        path: Path,
        spec: OutputSpec,
        compression: str,
    ) -> None:
        super().__init__(spec)
        if compression not in TIFF_COMPRESSIONS:
            raise ValueError(f"TIFF compression {compression!r} is not one of {sorted(TIFF_COMPRESSIONS)}")
        width, height, channels = spec.width, spec.height, spec.channels
        # A ring of strips, refilled in turn rather than allocated per strip: a fresh 24 MB strip
        # is 6,000 newly zeroed pages (60 ms of a 24 MP RGBA16 file's CPU). Three are enough: the
        # queue holds one, the encoder tiles one, and a strip is refilled only after the put of
        # the one after it returned, by when the encoder has deflated all of its tiles.
        self._encode_here = compression == "deflate"
        self._strip_shape = (TILE, width, channels)
        self._ring = BufferRing(STRIP_RING, self.dtype)
        self._buffer = self._next_strip()
        self._buffered = 0
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._end_seen = False
        self._options = dict(
            shape=(height, width, channels),
            dtype=self.dtype,
            tile=(TILE, TILE),
            photometric="rgb",
            planarconfig="contig",
            extrasamples=[EXTRASAMPLE_UNASSOCIATED] if channels == 4 else None,
            compression=TIFF_COMPRESSIONS[compression],
            predictor=compression != "none",
            iccprofile=spec.icc,
            resolution=spec.dpi,
            resolutionunit=2 if spec.dpi else None,  # inch
            bigtiff=height * width * channels * self.dtype.itemsize > BIGTIFF_ABOVE,
            metadata=None,  # no tifffile JSON ImageDescription: standard tags only
            software=False,
            buffersize=8 << 20,
            maxworkers=2,
        )
        # Deflate: tifffile writes the tiles we encode (an iterator of bytes) as they are.
        self._thread = threading.Thread(target=self._encode, args=(path,), name="tiff-writer", daemon=True)
        self._thread.start()

    def _encode(self, path: Path) -> None:
        try:
            tiles = self._deflated_tiles() if self._encode_here else self._tiles()
            tifffile.imwrite(path, data=tiles, **self._options)  # type: ignore[arg-type]
        except BaseException as exc:
            self._error = exc
            while not self._end_seen:  # unblock the feeder until it sends the end marker
                self._end_seen = self._queue.get() is None

    def _tiles(self) -> Iterator[np.ndarray]:
        while (strip := self._queue.get()) is not None:
            for x0 in range(0, self.width, TILE):
                yield strip[:, x0 : x0 + TILE]
        self._end_seen = True

    def _deflated_tiles(self) -> Iterator[bytes]:
        with ThreadPoolExecutor(max_workers=TIFF_WORKERS, thread_name_prefix="tiff-deflate") as pool:
            while (strip := self._queue.get()) is not None:
                yield from pool.map(
                    _deflate_tile, (strip[:, x0 : x0 + TILE] for x0 in range(0, self.width, TILE))
                )
        self._end_seen = True

    def write_band(self, pixels: np.ndarray) -> None:
        self._accept(pixels)
        start = 0
        while start < pixels.shape[0]:
            take = min(TILE - self._buffered, pixels.shape[0] - start)
            self._buffer[self._buffered : self._buffered + take] = pixels[start : start + take]
            self._buffered += take
            start += take
            if self._buffered == TILE or (self.rows_written == self.height and start == pixels.shape[0]):
                # Hand the filled strip over and fill the next of the ring: no copy, and the
                # encoder thread owns what it was given until it has tiled it.
                self._send(self._buffer[: self._buffered])
                self._buffer = self._next_strip()
                self._buffered = 0

    def _next_strip(self) -> np.ndarray:
        if not self._encode_here:
            # tifffile's own LZW batches tiles across strips and may still hold an earlier
            # strip's tiles when it asks for the next: those strips are never reused.
            return np.empty(self._strip_shape, self.dtype)
        return self._ring.next(self._strip_shape)

    def _send(self, strip: np.ndarray | None) -> None:
        while True:
            if self._error is not None:
                raise self._error
            try:
                self._queue.put(strip, timeout=0.2)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        self._stop_encoder()
        self._require_complete()
        if self._error is not None:
            raise self._error

    def abort(self) -> None:
        self._stop_encoder()

    def _stop_encoder(self) -> None:
        # The end marker makes the tile generator return (or the error drain stop); tifffile
        # may also have finished without asking for it, when the thread is already gone.
        while self._thread.is_alive():
            try:
                self._queue.put(None, timeout=0.2)
                break
            except queue.Full:
                continue
        self._thread.join()


_scratch = threading.local()


def _tile_scratch(key: str, shape: tuple[int, int, int], dtype: np.dtype[np.generic]) -> np.ndarray:
    """A buffer of ``shape`` kept per encoder thread: a fresh 2 MB one per tile was 2 ms of page
    faults, 4x the predictor's arithmetic (0.12 CPU s of a 24 MP RGBA16 file)."""
    buffers: dict[str, np.ndarray] = _scratch.__dict__.setdefault("buffers", {})
    buffer = buffers.get(key)
    if buffer is None or buffer.shape != shape or buffer.dtype != dtype:
        buffer = buffers[key] = np.empty(shape, dtype)
    return buffer


def _deflate_tile(pixels: np.ndarray) -> bytes:
    """One TIFF tile: padded to TILE², horizontal predictor (Predictor = 2), zlib stream."""
    shape = (TILE, TILE, pixels.shape[2])
    history = _history_bits(pixels)  # from the image's own samples, not the padding
    if pixels.shape[:2] != (TILE, TILE):  # right and bottom edges: tiles are always whole
        tile = _tile_scratch("edge", shape, pixels.dtype)
        tile.fill(0)
        tile[: pixels.shape[0], : pixels.shape[1]] = pixels
        pixels = tile
    # Each sample minus the same sample of the pixel to its left, wrapping as unsigned integers.
    # The compressed stream is a new bytes object, so the scratch is free again once it returns.
    predicted = _tile_scratch("predicted", shape, pixels.dtype)
    predicted[:, 0] = pixels[:, 0]
    np.subtract(pixels[:, 1:], pixels[:, :-1], out=predicted[:, 1:])
    stream = igzip_lib.compress(
        predicted.data, level=TIFF_DEFLATE_LEVEL, flag=igzip_lib.COMP_ZLIB, hist_bits=history
    )
    return bytes(stream)


def _history_bits(pixels: np.ndarray) -> int:
    """The deflate window (log2 bytes) for a tile: short for 16-bit samples with noise in the low byte.

    A camera's 16-bit samples leave the predictor residuals whose low bytes are noise: LZ77
    finds nothing far back, and ISA-L's level 1 spends less CPU the shorter its window, for
    the same file. On 2048×3072 RGBA16 tiles (a photo plus noise of σ 8 to 640 levels) a 4-byte
    window took 1.8–2.3 ns per byte against 3.0–3.2 with 256 bytes and 3.7–4.2 with 32 KB; the
    files came out within 0.3 % of 256 bytes' size and 2–4 % smaller than with 32 KB. Runs
    of equal samples (a flat α) still match at distance 1. The zlib header cannot say less than
    256 bytes, so decoders see the smallest standard window. 8-bit values stored as 16-bit
    (v·257, both bytes equal) do repeat far back, and there the short window cost 18 % more CPU
    and 5 % more bytes: such tiles, and 8-bit ones, keep the full window.
    """
    if pixels.dtype != np.uint16:
        return FULL_HISTORY_BITS
    sample = pixels[::37, ::5, :3]  # ~4,000 colour samples of the tile; α is mostly 0 or 65535
    doubled = np.count_nonzero((sample & 0xFF) == (sample >> 8))
    return FULL_HISTORY_BITS if doubled * 2 > sample.size else NOISY_HISTORY_BITS


class PngBandWriter(_BandChecks):
    def __init__(
        self,
        path: Path,
        spec: OutputSpec,
        level: int,
        filter_name: str,
    ) -> None:
        super().__init__(spec)
        if not 0 <= level <= 9 or filter_name not in FILTERS:
            raise ValueError(f"PNG level {level} / filter {filter_name!r} invalid")
        self._fh = open(path, "wb")  # noqa: SIM115 - closed in close()/abort()
        self._stream = PngStream(self._fh, spec, level=level, filter_name=filter_name)

    def write_band(self, pixels: np.ndarray) -> None:
        self._accept(pixels)
        self._stream.write_rows(pixels)

    def close(self) -> None:
        try:
            self._require_complete()
            self._stream.finish()
        except BaseException:
            self.abort()
            raise
        self._fh.close()

    def abort(self) -> None:
        self._stream.abandon()
        self._fh.close()


class _WholeImageWriter(_BandChecks):
    """Collects every row as 8-bit, then one Pillow encode: for codecs with no row-push API."""

    format = ""

    def __init__(self, path: Path, spec: OutputSpec, quality: int) -> None:
        super().__init__(spec)
        check_output_size(self.format.lower(), spec.width, spec.height)
        self._path, self._quality = path, quality
        self._image: np.ndarray | None = np.empty((spec.height, spec.width, spec.channels), np.uint8)

    def write_band(self, pixels: np.ndarray) -> None:
        start = self.rows_written
        self._accept(pixels)
        assert self._image is not None
        self._image[start : self.rows_written] = to_uint8(pixels)

    def close(self) -> None:
        self._require_complete()
        assert self._image is not None
        Image.fromarray(self._image).save(self._path, self.format, **self._options())
        self._image = None

    def abort(self) -> None:
        self._image = None

    def _options(self) -> dict[str, object]:
        raise NotImplementedError


class JpegBandWriter(_WholeImageWriter):
    format = "JPEG"

    def __init__(self, path: Path, spec: OutputSpec, quality: int) -> None:
        if spec.channels != 3 or spec.bit_depth != 8:
            raise ValueError("JPEG output takes 8-bit RGB only")
        super().__init__(path, spec, quality)

    def _options(self) -> dict[str, object]:
        # At delivery qualities keep full chroma (4:4:4): 4:2:0 smears colour along cut-out edges.
        subsampling = 0 if self._quality >= 90 else 2
        options: dict[str, object] = {"quality": self._quality, "subsampling": subsampling}
        if self.spec.icc:
            options["icc_profile"] = self.spec.icc
        if self.spec.dpi:
            options["dpi"] = self.spec.dpi
        return options


class WebpBandWriter(_WholeImageWriter):
    """8-bit RGB(A); 16-bit bands are rounded to 8-bit (WebP has no deeper samples)."""

    format = "WEBP"

    def _options(self) -> dict[str, object]:
        options: dict[str, object] = {
            "quality": self._quality,
            "method": WEBP_METHOD,
            # Alpha is compressed losslessly, and the colours under α = 0 are kept as given
            # instead of being replaced for a smaller file: the mask can be pulled back later.
            "alpha_quality": 100,
            "exact": True,
        }
        if self.spec.icc:
            options["icc_profile"] = self.spec.icc
        if self.spec.dpi:
            options["exif"] = _resolution_exif(self.spec.dpi)
        return options


def _resolution_exif(dpi: tuple[float, float]) -> Image.Exif:
    exif = Image.Exif()
    exif[EXIF_X_RESOLUTION], exif[EXIF_Y_RESOLUTION] = dpi
    exif[EXIF_RESOLUTION_UNIT] = EXIF_INCH
    return exif
