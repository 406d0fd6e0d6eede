"""From the model's low-resolution alpha to the finished file, one band at a time.

The full-resolution image, alpha and output are never held together: each band
of the original is read, gets its slice of upsampled alpha, and goes straight
to a streaming writer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from daemon.io._types import ImageReader
from daemon.io.writers import OutputFormat, open_writer
from daemon.outputs import write_atomically

BAND_ROWS = 512
FORMAT_BY_SUFFIX: dict[str, OutputFormat] = {
    ".png": "png",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
}


@dataclass(frozen=True)
class _Axis:
    """Bilinear sampling positions along one axis, half-pixel centres (as ``cv2.resize``)."""

    low: np.ndarray
    high: np.ndarray
    weight: np.ndarray

    @classmethod
    def mapping(cls, source: int, target: int, start: int = 0, stop: int | None = None) -> _Axis:
        stop = target if stop is None else stop
        centres = (np.arange(start, stop, dtype=np.float64) + 0.5) * (source / target) - 0.5
        centres = np.clip(centres, 0.0, source - 1)
        low = np.floor(centres).astype(np.intp)
        high = np.minimum(low + 1, source - 1)
        return cls(low, high, (centres - low).astype(np.float32))


def upsample_alpha_band(alpha: np.ndarray, width: int, height: int, y0: int, y1: int) -> np.ndarray:
    """Rows ``[y0, y1)`` of ``alpha`` bilinearly resized to ``width``×``height``.

    Each output row depends only on its own coordinate, so bands stitch with no
    seam and equal a one-piece resize.
    """
    rows = _Axis.mapping(alpha.shape[0], height, y0, y1)
    cols = _Axis.mapping(alpha.shape[1], width)
    wy = rows.weight[:, None]
    vertical = alpha[rows.low] * (1.0 - wy) + alpha[rows.high] * wy
    wx = cols.weight[None, :]
    return vertical[:, cols.low] * (1.0 - wx) + vertical[:, cols.high] * wx


def _scale_alpha(alpha: np.ndarray, dtype: np.dtype[np.generic]) -> np.ndarray:
    peak = np.iinfo(dtype).max  # type: ignore[type-var]
    return np.rint(alpha * peak).astype(dtype)


def compose_raw_band(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Original colours with the model's alpha (an existing alpha channel is replaced)."""
    return np.dstack([rgb[..., :3], _scale_alpha(alpha, rgb.dtype)])


def output_bit_depth(input_bit_depth: int) -> int:
    # Readers hand 32-bit float data over as 16-bit; nothing is ever reduced to 8-bit.
    return 8 if input_bit_depth <= 8 else 16


def write_cutout(reader: ImageReader, alpha: np.ndarray, destination: Path) -> Path:
    """Write ``reader``'s image with ``alpha`` as an RGBA file at ``destination``, atomically."""
    info = reader.info
    width, height = info.oriented_size
    fmt = FORMAT_BY_SUFFIX[destination.suffix.lower()]

    def write(tmp: Path) -> None:
        writer = open_writer(
            fmt,
            tmp,
            width=width,
            height=height,
            channels=4,
            bit_depth=output_bit_depth(info.bit_depth),
            icc=info.icc,
            dpi=info.dpi,
        )
        try:
            for y0, band in reader.bands(BAND_ROWS):
                y1 = y0 + band.shape[0]
                writer.write_band(compose_raw_band(band, upsample_alpha_band(alpha, width, height, y0, y1)))
        except BaseException:
            writer.abort()
            raise
        writer.close()

    return write_atomically(destination, write)
