"""Rectangular regions of one TIFF page, decoding only the strips or tiles they touch.

tifffile decodes whole pages (``asarray``) or iterates every segment (``segments``); it
has no "rows y0..y1" or "columns x0..x1" read without zarr. This module reads the raw
bytes of just the needed segments and decodes them with tifffile's own per-page decoder
(so every compression, predictor and byte order tifffile knows works), a few at a time,
so memory stays at one region plus a small batch of decoded segments.

Uncompressed strips are read row by row straight from the file, so even a file written
as one giant uncompressed strip streams. A *compressed* segment must be decoded whole;
one larger than ``max_segment_bytes`` is refused when the reader is built, before any
pixel is read.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import tifffile

from daemon.errors import CorruptInput, TooLarge, UnsupportedInput

JPEG_COMPRESSIONS = frozenset({6, 7, 34892, 33007})
# Decoded bytes handed to the thread pool at once: enough to keep 2 cores busy on small
# strips, small next to the 400 MB budget of a large-image run.
BATCH_BYTES = 24 << 20


class RegionReader:
    """Reads ``[y0:y1, x0:x1, :]`` of a page as a native-endian ``HxWxS`` array."""

    def __init__(self, page: tifffile.TiffPage, *, max_segment_bytes: int, file_size: int) -> None:
        self._page = page
        self._fh = page.parent.filehandle
        separate, depth, height, width, contig = page.shaped
        if depth != 1:
            raise UnsupportedInput(f"unsupported: volumetric TIFF (depth {depth})")
        self.height, self.width = int(height), int(width)
        self.samples = int(page.samplesperpixel)
        self._planes = int(separate)  # > 1 only for planar (separate) storage
        self._contig = int(contig)
        self.dtype = np.dtype(page.dtype).newbyteorder("=")
        self._stored_dtype = np.dtype(page.dtype)
        self._tiled = bool(page.is_tiled)
        self._seg_h = int(page.tilelength) if self._tiled else min(int(page.rowsperstrip), self.height)
        self._seg_w = int(page.tilewidth) if self._tiled else self.width
        self._across = math.ceil(self.width / self._seg_w)
        self._down = math.ceil(self.height / self._seg_h)
        self._offsets = tuple(int(v) for v in page.dataoffsets)
        self._counts = tuple(int(v) for v in page.databytecounts)
        needed = self._planes * self._across * self._down
        if min(len(self._offsets), len(self._counts)) < needed:
            raise CorruptInput(
                f"TIFF lists {len(self._offsets)} segment offsets and {len(self._counts)} byte counts, "
                f"its size needs {needed}"
            )
        self._raw_rows = (
            page.compression == 1 and not self._tiled and page.predictor == 1 and page.fillorder == 1
        )
        self._check_not_truncated(file_size)
        self._check_segment_size(max_segment_bytes)
        self._decode: Callable[..., Any] = page.decode
        self._decode_args: dict[str, Any] = {}
        if page.compression in JPEG_COMPRESSIONS:
            self._decode_args = {"jpegtables": page.jpegtables, "jpegheader": page.jpegheader}
        self._cache: dict[int, np.ndarray | None] = {}
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(2, os.cpu_count() or 1)))

    @property
    def segment_rows(self) -> int:
        return self._seg_h

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._cache.clear()

    def _check_not_truncated(self, file_size: int) -> None:
        ends = [o + c for o, c in zip(self._offsets, self._counts, strict=False) if c]
        if ends and max(ends) > file_size:
            raise CorruptInput(
                f"TIFF is truncated: its pixel data runs to byte {max(ends)} but the file has {file_size}"
            )

    def _check_segment_size(self, max_segment_bytes: int) -> None:
        decoded = self._seg_h * self._seg_w * self._contig * self.dtype.itemsize
        if not self._raw_rows and decoded > max_segment_bytes:
            kind = "tile" if self._tiled else "strip"
            raise TooLarge(
                f"TIFF stores its pixels in compressed {kind}s of {decoded / 1e6:.0f} MB decoded each "
                f"(limit {max_segment_bytes / 1e6:.0f} MB); it cannot be read in bounded memory. "
                "Re-save it tiled or with smaller strips."
            )

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The region, decoded. Segments of the last segment row touched are kept for the next call."""
        if not (0 <= y0 < y1 <= self.height and 0 <= x0 < x1 <= self.width):
            raise ValueError(f"region {(y0, y1, x0, x1)} outside {self.height}x{self.width}")
        out = np.empty((y1 - y0, x1 - x0, self.samples), self.dtype)
        for plane in range(self._planes):
            channels = slice(plane, plane + 1) if self._planes > 1 else slice(None)
            target = out[:, :, channels]
            if self._raw_rows:
                self._read_raw_rows(plane, y0, y1, x0, x1, target)
            else:
                self._read_segments(plane, y0, y1, x0, x1, target)
        return out

    def _segment_index(self, plane: int, seg_row: int, seg_col: int) -> int:
        return (plane * self._down + seg_row) * self._across + seg_col

    def _read_segments(self, plane: int, y0: int, y1: int, x0: int, x1: int, out: np.ndarray) -> None:
        rows = range(y0 // self._seg_h, (y1 - 1) // self._seg_h + 1)
        cols = range(x0 // self._seg_w, (x1 - 1) // self._seg_w + 1)
        wanted = [(r, c, self._segment_index(plane, r, c)) for r in rows for c in cols]
        # The next band starts at y1: keep the last segment row only if y1 falls inside it.
        ends_inside = y1 % self._seg_h != 0 and y1 < self.height
        keep = {self._segment_index(plane, rows[-1], c) for c in cols} if ends_inside else set()
        segment_bytes = self._seg_h * self._seg_w * self._contig * self.dtype.itemsize
        per_batch = max(1, BATCH_BYTES // max(1, segment_bytes))
        for start in range(0, len(wanted), per_batch):
            batch = wanted[start : start + per_batch]
            decoded = self._decoded([index for _r, _c, index in batch])
            for (r, c, index), pixels in zip(batch, decoded, strict=True):
                self._paste(r, c, pixels, y0, y1, x0, x1, out)
                if index in keep:
                    self._cache[index] = pixels
        for index in [i for i in self._cache if i not in keep]:
            del self._cache[index]

    def _decoded(self, indices: list[int]) -> Iterable[np.ndarray | None]:
        missing = [i for i in indices if i not in self._cache]
        raw = {i: self._raw_bytes(i) for i in missing}
        fresh = dict(
            zip(missing, self._pool.map(self._decode_one, missing, [raw[i] for i in missing]), strict=True)
        )
        return [self._cache[i] if i in self._cache else fresh[i] for i in indices]

    def _raw_bytes(self, index: int) -> bytes | None:
        offset, count = self._offsets[index], self._counts[index]
        if count == 0 or offset == 0:
            return None
        with self._fh.lock:
            self._fh.seek(offset)
            data = self._fh.read(count)
        if len(data) != count:
            raise CorruptInput(f"TIFF is truncated inside segment {index}")
        return bytes(data)

    def _decode_one(self, index: int, data: bytes | None) -> np.ndarray | None:
        try:
            pixels, _position, _shape = self._decode(data, index, **self._decode_args)
        except NotImplementedError as exc:
            raise UnsupportedInput(f"unsupported TIFF encoding: {exc}") from exc
        except (ValueError, RuntimeError, tifffile.TiffFileError) as exc:
            # imagecodecs raises RuntimeError subclasses (LzwError, ZlibError, JpegError...).
            raise CorruptInput(f"TIFF segment {index} cannot be decoded: {exc}") from exc
        return None if pixels is None else pixels[0]

    def _paste(
        self,
        seg_row: int,
        seg_col: int,
        pixels: np.ndarray | None,
        y0: int,
        y1: int,
        x0: int,
        x1: int,
        out: np.ndarray,
    ) -> None:
        top, left = seg_row * self._seg_h, seg_col * self._seg_w
        r0, r1 = max(y0, top), min(y1, top + self._seg_h, self.height)
        c0, c1 = max(x0, left), min(x1, left + self._seg_w, self.width)
        dest = out[r0 - y0 : r1 - y0, c0 - x0 : c1 - x0]
        if pixels is None:
            dest[...] = 0
            return
        if pixels.shape[0] < r1 - top or pixels.shape[1] < c1 - left:
            raise CorruptInput(f"TIFF segment at row {top}, column {left} holds fewer pixels than declared")
        dest[...] = pixels[r0 - top : r1 - top, c0 - left : c1 - left]

    def _read_raw_rows(self, plane: int, y0: int, y1: int, x0: int, x1: int, out: np.ndarray) -> None:
        row_bytes = self.width * self._contig * self._stored_dtype.itemsize
        y = y0
        while y < y1:
            strip = y // self._seg_h
            stop = min(y1, (strip + 1) * self._seg_h)
            index = self._segment_index(plane, strip, 0)
            offset = self._offsets[index] + (y - strip * self._seg_h) * row_bytes
            count = (stop - y) * row_bytes
            with self._fh.lock:
                self._fh.seek(offset)
                data = self._fh.read(count)
            if len(data) != count:
                raise CorruptInput(f"TIFF is truncated in rows {y}-{stop}")
            rows = np.frombuffer(data, self._stored_dtype).reshape(stop - y, self.width, self._contig)
            out[y - y0 : stop - y0] = rows[:, x0:x1]
            y = stop
