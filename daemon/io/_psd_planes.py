"""Random access to rows of the merged image data of a PSD/PSB file.

The merged image is planar: every row of channel 0, then every row of channel
1, and so on. Raw data is found by arithmetic; PackBits (RLE) data by the
row-length table that precedes it, which we keep (a few bytes a row) so that any
run of rows of any channel is one read. Nothing larger than the rows asked for
is ever read or decoded.
"""

from __future__ import annotations

import os
from typing import BinaryIO

import imagecodecs
import numpy as np

from daemon.errors import CorruptInput, UnsupportedInput
from daemon.io._psd_layout import PsdLayout

COMPRESSION_RAW = 0
COMPRESSION_RLE = 1
COMPRESSION_NAMES = {2: "ZIP", 3: "ZIP with prediction"}
STORED_DTYPES: dict[int, np.dtype[np.generic]] = {
    8: np.dtype(">u1"),
    16: np.dtype(">u2"),
    32: np.dtype(">f4"),
}


class PlaneRows:
    """Reads rows ``[y0, y1)`` of one stored channel as a 2-D array."""

    def __init__(self, fp: BinaryIO, layout: PsdLayout) -> None:
        self._fp = fp
        self._layout = layout
        self._dtype = STORED_DTYPES[layout.depth]
        self._row_bytes = layout.width * self._dtype.itemsize
        fp.seek(layout.image_data_offset)
        self.compression = int.from_bytes(fp.read(2), "big")
        data_start = layout.image_data_offset + 2
        if self.compression == COMPRESSION_RAW:
            self._row_offsets = None
            self._data_start = data_start
            end = data_start + layout.channels * layout.height * self._row_bytes
            _require_within(end, layout.file_size, "raw merged image data")
        elif self.compression == COMPRESSION_RLE:
            self._row_offsets = self._read_row_table(data_start)
            self._data_start = data_start
        else:
            name = COMPRESSION_NAMES.get(self.compression, f"compression {self.compression}")
            raise UnsupportedInput(f"unsupported: {name} merged image data")

    def rows(self, channel: int, y0: int, y1: int) -> np.ndarray:
        """Rows of one channel, as ``(y1 - y0, width)`` in the file's big-endian dtype."""
        layout = self._layout
        first = channel * layout.height + y0
        last = channel * layout.height + y1
        if self._row_offsets is None:
            start = self._data_start + first * self._row_bytes
            raw: bytes | bytearray = self._read_at(start, (last - first) * self._row_bytes)
        else:
            start = int(self._row_offsets[first])
            packed = self._read_at(start, int(self._row_offsets[last]) - start)
            try:
                # out=: damaged runs can claim 64x their bytes; the decoder stops at what the rows hold.
                raw = imagecodecs.packbits_decode(packed, out=(last - first) * self._row_bytes)
            except imagecodecs.PackbitsError as error:
                raise CorruptInput(
                    f"damaged RLE data in channel {channel}, rows {y0}-{y1} ({error})"
                ) from error
            if len(raw) != (last - first) * self._row_bytes:
                raise CorruptInput(
                    f"damaged RLE data in channel {channel}, rows {y0}-{y1}: "
                    f"{len(raw)} bytes decoded, {(last - first) * self._row_bytes} expected"
                )
        rows: np.ndarray = np.frombuffer(raw, dtype=self._dtype).reshape(y1 - y0, layout.width)
        return rows

    def _read_row_table(self, table_start: int) -> np.ndarray:
        """File offset of every stored row, plus the end of the last one."""
        layout = self._layout
        count = layout.channels * layout.height
        # PSB widens the per-row byte counts from 2 to 4 bytes.
        entry = np.dtype(">u2") if layout.version == 1 else np.dtype(">u4")
        table = np.frombuffer(self._read_at(table_start, count * entry.itemsize), dtype=entry)
        offsets = np.empty(count + 1, dtype=np.int64)
        offsets[0] = table_start + count * entry.itemsize
        np.cumsum(table, out=offsets[1:])
        offsets[1:] += offsets[0]
        _require_within(int(offsets[-1]), layout.file_size, "RLE merged image data")
        return offsets

    def _read_at(self, offset: int, size: int) -> bytes:
        return read_exactly(self._fp, offset, size)


def read_exactly(fp: BinaryIO, offset: int, size: int) -> bytes:
    """``size`` bytes of the PSD at ``offset``; fewer (a cut-short file) is :class:`CorruptInput`."""
    fp.seek(offset, os.SEEK_SET)
    data = fp.read(size)
    if len(data) != size:
        raise CorruptInput(f"truncated PSD: {size} bytes expected at offset {offset}, got {len(data)}")
    return data


def _require_within(end: int, file_size: int, what: str) -> None:
    if end > file_size:
        raise CorruptInput(
            f"truncated PSD: the {what} needs {end} bytes, the file has {file_size} "
            f"({end - file_size} missing)"
        )
