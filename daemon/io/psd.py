"""Streaming reader of the merged (composite) image of PSD and PSB files.

Only the merged image that Photoshop stores beside the layers is read; layers
are never composited. psd-tools would do that job but loads the whole file on
open (4–7 GB for a 108 MP PSB), so the format is parsed here by hand
(:mod:`daemon.io._psd_layout`, :mod:`daemon.io._psd_planes`) and every call
except :meth:`PsdReader.read` holds one band of rows at a time.

Pixels come out as described in :mod:`daemon.io._types`: RGB or RGBA, uint8 for
8-bit files and uint16 for 16 and 32-bit ones; see :mod:`daemon.io._psd_colour`
for the tone and colour decisions. ``ImageInfo`` for a PSD:

* ``colour`` is the file's mode (``rgb``, ``gray`` or ``cmyk``);
* ``channels`` is that of the returned pixels: 3, or 4 with transparency (spot
  colours and saved selections are ignored);
* ``icc`` is the profile of the *returned* pixels: the file's own for RGB, sRGB
  for CMYK and profiled grayscale (they are converted to it);
* ``bit_depth`` is that of the returned pixels (16 for 32-bit files).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import numpy as np

from daemon.errors import UnsupportedInput
from daemon.io._damage import damaged_bytes_are_input_errors
from daemon.io._psd_colour import (
    colour_to_rgb,
    output_dtype,
    output_icc,
    to_native,
    unmatte_white,
)
from daemon.io._psd_layers import DEFAULT_BUDGET_MEGAPIXELS, LayeredPsdReader, open_layered_psd
from daemon.io._psd_layout import PsdLayout, read_layout
from daemon.io._psd_planes import PlaneRows
from daemon.io._resample import PROXY_BAND_ROWS, banded_proxy, join_bands
from daemon.io._types import ColourSpace, ImageInfo

COLOUR_SPACES: dict[int, ColourSpace] = {1: "gray", 3: "rgb", 4: "cmyk"}


def open_psd(
    path: Path,
    *,
    max_megapixels: float,
    layer_budget_megapixels: float = DEFAULT_BUDGET_MEGAPIXELS,
    name: str | None = None,
) -> PsdReader | LayeredPsdReader:
    """Open a PSD or PSB file for reading its merged image, or its composited
    layers when it was saved without one (:mod:`daemon.io._psd_layers`).

    Raises :class:`~daemon.errors.TooLarge` from the 26-byte header alone,
    :class:`~daemon.errors.UnsupportedInput` for modes, depths and compressions
    we do not convert, :class:`~daemon.errors.CorruptInput` for damaged or
    truncated files.
    """
    with damaged_bytes_are_input_errors(name or path.name, "PSD"):
        layered = open_layered_psd(
            path, max_megapixels=max_megapixels, budget_megapixels=layer_budget_megapixels, name=name
        )
    if layered is not None:
        return layered
    return PsdReader(path, max_megapixels=max_megapixels, name=name)


class PsdReader:
    """One open PSD/PSB file; implements :class:`daemon.io._types.ImageReader`."""

    def __init__(self, path: Path, *, max_megapixels: float, name: str | None = None) -> None:
        self.name = name or path.name
        self._fp = open(path, "rb")  # noqa: SIM115 - held open until close()
        try:
            with damaged_bytes_are_input_errors(self.name, "PSD"):
                self._open(max_megapixels)
        except BaseException:
            self._fp.close()
            raise
        self._alpha_index = self._layout.transparency_index
        self.info = _image_info(self._layout, self._alpha_index is not None)

    def _open(self, max_megapixels: float) -> None:
        self._layout = read_layout(self._fp, max_megapixels=max_megapixels)
        if not self._layout.has_real_merged_data:
            raise UnsupportedInput(
                "unsupported: PSD saved without 'Maximize Compatibility' (it has no merged image); "
                "re-save it with that option on"
            )
        if self._layout.has_spot_channels:
            # Spot inks are separate plates that the merged CMYK/RGB leaves out:
            # cutting out the merged image alone would silently drop them.
            raise UnsupportedInput(
                "unsupported: spot colour channels (the merged image leaves the spot inks out)"
            )
        self._planes = PlaneRows(self._fp, self._layout)

    # -- ImageReader -----------------------------------------------------------------

    def read(self) -> np.ndarray:
        with damaged_bytes_are_input_errors(self.name, "PSD"):
            return self._read()

    def _read(self) -> np.ndarray:
        layout = self._layout
        shape = (layout.height, layout.width, self.info.channels)
        return join_bands(self.bands(PROXY_BAND_ROWS), shape, self._dtype)

    def bands(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        if rows < 1:
            raise ValueError(f"band height must be positive, got {rows}")
        with damaged_bytes_are_input_errors(self.name, "PSD"):
            for y0 in range(0, self._layout.height, rows):
                y1 = min(y0 + rows, self._layout.height)
                yield y0, self._band(y0, y1)

    def proxy(self, max_side: int) -> np.ndarray:
        """Band by band: convert, shrink each band by an integer factor with area
        averaging, then resize once to fit."""
        if max_side < 1:  # a caller's mistake, not a damaged file: checked outside the boundary
            raise ValueError(f"max_side must be positive, got {max_side}")
        with damaged_bytes_are_input_errors(self.name, "PSD"):
            return self._proxy(max_side)

    def _proxy(self, max_side: int) -> np.ndarray:
        layout = self._layout
        # The stored colour of a transparent document is matted on white, which is what the
        # model should see: no alpha and no unmatting here. Colour is converted before
        # shrinking: CMYK to RGB is not linear.
        return banded_proxy(
            layout.width,
            layout.height,
            max_side,
            lambda y0, y1: colour_to_rgb(self._colour_channels(y0, y1), layout),
        )

    def close(self) -> None:
        self._fp.close()

    def __enter__(self) -> PsdReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------

    @property
    def _dtype(self) -> np.dtype[np.unsignedinteger]:
        return output_dtype(self._layout.depth)

    def _native(self, channel: int, y0: int, y1: int) -> np.ndarray:
        return to_native(self._planes.rows(channel, y0, y1))

    def _colour_channels(self, y0: int, y1: int) -> np.ndarray:
        planes = [self._native(c, y0, y1) for c in range(self._layout.colour_channels)]
        return np.stack(planes, axis=2)

    def _band(self, y0: int, y1: int) -> np.ndarray:
        rgb = colour_to_rgb(self._colour_channels(y0, y1), self._layout)
        if self._alpha_index is None:
            return rgb
        alpha = self._native(self._alpha_index, y0, y1)
        return np.concatenate([unmatte_white(rgb, alpha), alpha[..., None]], axis=2)


def _image_info(layout: PsdLayout, has_alpha: bool) -> ImageInfo:
    if layout.mode not in COLOUR_SPACES:  # read_layout refuses these; belt and braces
        raise UnsupportedInput(f"unsupported: {layout.mode_name}")
    return ImageInfo(
        format="psb" if layout.version == 2 else "psd",
        width=layout.width,
        height=layout.height,
        channels=3 + int(has_alpha),
        bit_depth=8 if layout.depth == 8 else 16,
        colour=COLOUR_SPACES[layout.mode],
        has_alpha=has_alpha,
        icc=output_icc(layout),
        orientation=1,
        dpi=layout.dpi,
    )
