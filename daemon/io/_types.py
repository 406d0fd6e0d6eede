"""What every reader hands the pipeline, whatever the file format."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

ColourSpace = Literal["rgb", "gray", "cmyk"]


@dataclass(frozen=True)
class ImageInfo:
    """Facts from the header, read without decoding pixels.

    ``width`` and ``height`` are as stored; :attr:`oriented_size` is what the
    user sees once EXIF orientation is applied.
    """

    format: str
    width: int
    height: int
    channels: int
    bit_depth: int
    colour: ColourSpace
    has_alpha: bool
    icc: bytes | None = None
    orientation: int = 1
    dpi: tuple[float, float] | None = None

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1e6

    @property
    def oriented_size(self) -> tuple[int, int]:
        """(width, height) after EXIF orientation; 5–8 swap the axes."""
        if self.orientation in (5, 6, 7, 8):
            return self.height, self.width
        return self.width, self.height

    @property
    def oriented_dpi(self) -> tuple[float, float] | None:
        """(horizontal, vertical) DPI of the image as the user sees it."""
        if self.dpi is not None and self.orientation in (5, 6, 7, 8):
            return self.dpi[1], self.dpi[0]
        return self.dpi


class ImageReader(Protocol):
    """One open input file. Every array it returns is already EXIF-oriented.

    Pixels are HxWxC ``uint8`` or ``uint16`` (following the file), RGB or RGBA;
    grayscale and CMYK are converted to RGB by the reader.
    """

    info: ImageInfo

    def proxy(self, max_side: int) -> np.ndarray:
        """A small RGB ``uint8`` copy whose longer side is at most ``max_side``."""
        ...

    def read(self) -> np.ndarray:
        """The whole image at full resolution."""
        ...

    def bands(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """Full-resolution horizontal bands ``(y0, pixels)`` of about ``rows`` rows."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class OutputSpec:
    """What every writer needs to know about the image it is given, band by band."""

    width: int
    height: int
    channels: int
    bit_depth: int
    icc: bytes | None = None
    dpi: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.channels not in (3, 4):
            raise ValueError(f"writers take RGB or RGBA, not {self.channels} channels")
        if self.bit_depth not in (8, 16):
            raise ValueError(f"bit depth {self.bit_depth} is not 8 or 16")
        if self.width < 1 or self.height < 1:
            raise ValueError(f"empty image {self.width}x{self.height}")

    @property
    def dtype(self) -> np.dtype[np.unsignedinteger]:
        return np.dtype(np.uint8 if self.bit_depth == 8 else np.uint16)
