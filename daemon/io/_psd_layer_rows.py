"""Rows of one layer channel, read without decoding the rest of the layer.

Each layer channel is stored on its own: a 2-byte compression, then raw rows,
PackBits rows behind a row-length table (found by arithmetic, like the merged
image in :mod:`daemon.io._psd_planes`), or one zlib stream, optionally with
per-row delta prediction (Photoshop's choice for 16 and 32-bit layers). A zlib
stream cannot be entered in the middle, so it is inflated forward as rows are
asked for, keeping only the decompressor's state; asking for earlier rows
restarts it. Bands are asked for top to bottom, so each stream is inflated once
per pass.
"""

from __future__ import annotations

import zlib
from typing import BinaryIO

import imagecodecs
import numpy as np

from daemon.errors import CorruptInput, UnsupportedInput
from daemon.io._psd_planes import STORED_DTYPES, read_exactly
from daemon.io._psd_records import Channel

RAW, RLE, ZIP, ZIP_PREDICTED = 0, 1, 2, 3
READ_CHUNK = 1 << 20


class ChannelRows:
    """Rows ``[y0, y1)`` (relative to the channel's own rectangle) of one channel,
    as ``float32`` in [0, 1] (32-bit files: linear values, clamped by the caller)."""

    def __init__(
        self, fp: BinaryIO, channel: Channel, width: int, height: int, depth: int, version: int
    ) -> None:
        self._fp = fp
        self._channel = channel
        self._width = width
        self._height = height
        self._depth = depth
        self._version = version
        self._dtype = STORED_DTYPES[depth]
        self._row_bytes = width * self._dtype.itemsize
        self._data_start = channel.offset + 2
        self._data_end = channel.offset + channel.length
        self._row_offsets: np.ndarray | None = None
        self._inflater: _Inflater | None = None
        if channel.length < 2:
            self.compression = RAW if width * height == 0 else -1
        else:
            self.compression = int.from_bytes(self._read_at(channel.offset, 2), "big")
        if self.compression not in (RAW, RLE, ZIP, ZIP_PREDICTED):
            raise UnsupportedInput(f"unsupported: layer channel compression {self.compression}")
        if self.compression == RAW and self._data_end - self._data_start < height * self._row_bytes:
            raise CorruptInput("truncated PSD: a layer channel is shorter than its rows")

    def rows(self, y0: int, y1: int) -> np.ndarray:
        raw = self._raw_rows(y0, y1)
        stored = np.frombuffer(raw, dtype=self._dtype).reshape(y1 - y0, self._width)
        if self._depth == 32:
            return stored.astype(np.float32)
        scale = np.float32(1.0 / (256**self._dtype.itemsize - 1))
        result: np.ndarray = stored.astype(np.float32) * scale
        return result

    def _raw_rows(self, y0: int, y1: int) -> bytes:
        if self.compression == RAW:
            return self._read_at(self._data_start + y0 * self._row_bytes, (y1 - y0) * self._row_bytes)
        if self.compression == RLE:
            offsets = self._rle_offsets()
            start, end = int(offsets[y0]), int(offsets[y1])
            try:
                # out=: damaged runs can claim 64x their bytes; the decoder stops at what the rows hold.
                expected = (y1 - y0) * self._row_bytes
                decoded = imagecodecs.packbits_decode(self._read_at(start, end - start), out=expected)
            except RuntimeError as error:  # imagecodecs.ImcdError, which is made lazily
                raise CorruptInput(
                    f"damaged RLE data in layer channel {self._channel.id}: {error}"
                ) from error
            if len(decoded) != (y1 - y0) * self._row_bytes:
                raise CorruptInput(f"damaged RLE data in layer channel {self._channel.id}")
            return bytes(decoded)
        return self._zip_rows(y0, y1)

    def _rle_offsets(self) -> np.ndarray:
        if self._row_offsets is None:
            entry = np.dtype(">u2") if self._version == 1 else np.dtype(">u4")
            table_bytes = self._height * entry.itemsize
            table = np.frombuffer(self._read_at(self._data_start, table_bytes), dtype=entry)
            offsets = np.empty(self._height + 1, dtype=np.int64)
            offsets[0] = self._data_start + table_bytes
            np.cumsum(table, out=offsets[1:])
            offsets[1:] += offsets[0]
            if offsets[-1] > self._data_end:
                raise CorruptInput(f"damaged RLE data in layer channel {self._channel.id}: rows run past it")
            self._row_offsets = offsets
        return self._row_offsets

    def _zip_rows(self, y0: int, y1: int) -> bytes:
        stored_row = self._width * (4 if self._depth == 32 else self._dtype.itemsize)
        if self._inflater is None or self._inflater.next_row > y0:
            self._inflater = _Inflater(self._fp, self._data_start, self._data_end, stored_row)
        self._inflater.skip(y0)
        data = self._inflater.take(y1 - y0)
        if self.compression == ZIP:
            return data
        return _undo_prediction(data, self._width, y1 - y0, self._depth)

    def _read_at(self, offset: int, size: int) -> bytes:
        return read_exactly(self._fp, offset, size)


class _Inflater:
    """A zlib stream inflated forward, a whole number of rows at a time."""

    def __init__(self, fp: BinaryIO, start: int, end: int, row_bytes: int) -> None:
        self._fp = fp
        self._position = start
        self._end = end
        self._row_bytes = row_bytes
        self._zlib = zlib.decompressobj()
        self._pending = b""
        self.next_row = 0

    def skip(self, row: int) -> None:
        while self.next_row < row:
            self.take(min(row - self.next_row, 256))

    def take(self, rows: int) -> bytes:
        wanted = rows * self._row_bytes
        parts = [self._pending[:wanted]]
        have = len(parts[0])
        self._pending = self._pending[wanted:]
        try:
            while have < wanted:
                if self._zlib.unconsumed_tail:
                    chunk = self._zlib.unconsumed_tail
                else:
                    if self._position >= self._end:
                        raise CorruptInput("damaged ZIP data in a layer channel: it ends early")
                    self._fp.seek(self._position)
                    chunk = self._fp.read(min(READ_CHUNK, self._end - self._position))
                    if not chunk:
                        raise CorruptInput("truncated PSD: a layer channel ends early")
                    self._position += len(chunk)
                out = self._zlib.decompress(chunk, wanted - have)
                parts.append(out)
                have += len(out)
        except zlib.error as error:
            raise CorruptInput(f"damaged ZIP data in a layer channel: {error}") from error
        self.next_row += rows
        return b"".join(parts)


def _undo_prediction(data: bytes, width: int, rows: int, depth: int) -> bytes:
    """Photoshop's per-row delta: on samples for 8/16-bit, on byte planes for 32-bit."""
    if depth == 8:
        return np.cumsum(np.frombuffer(data, np.uint8).reshape(rows, width), axis=1, dtype=np.uint8).tobytes()
    if depth == 16:
        deltas = np.frombuffer(data, ">u2").reshape(rows, width).astype(np.uint16)
        return np.cumsum(deltas, axis=1, dtype=np.uint16).astype(">u2").tobytes()
    planes = np.frombuffer(data, np.uint8).reshape(rows, 4 * width)
    summed = np.cumsum(planes, axis=1, dtype=np.uint8)
    return summed.reshape(rows, 4, width).transpose(0, 2, 1).tobytes()
