"""Reading a layered PSD/PSB that has no merged image (saved without "Maximize
Compatibility"): the layers are composited instead.

Which files: :mod:`daemon.io._psd_records` decides, once for both ways below,
and refuses with the layer's name whatever it cannot composite faithfully
(adjustment layers, gradient and pattern fills, shapes drawn from vectors only,
blend modes other than normal, layer effects, vector masks, clipping masks,
knockout, Blend If, artboards). Spot colour channels are
refused as for the merged image (cutting out the layers alone would drop the
spot inks).

How: below ``budget_megapixels`` (the canvas and every layer) psd-tools, a
well-kept library, composites the whole canvas at once; it holds the whole
file and several float canvases (measured: see the README), so above the
budget our own :class:`~daemon.io._psd_composite.BandCompositor` composites
one band of rows at a time in bounded memory. Both give unassociated colour in
the file's stored channel space, which is then converted exactly like the
merged image (:mod:`daemon.io._psd_colour`): same depth, same ICC route.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import numpy as np

from daemon.errors import CorruptInput, InputError, UnsupportedInput
from daemon.io._damage import damaged_bytes_are_input_errors, is_filesystem_error
from daemon.io._psd_colour import colour_to_rgb, output_dtype, output_icc
from daemon.io._psd_composite import BandCompositor
from daemon.io._psd_layout import PsdLayout, read_layout
from daemon.io._psd_records import CHANNEL_TRANSPARENCY, Group, Layer, read_layer_tree
from daemon.io._resample import PROXY_BAND_ROWS, banded_proxy, join_bands
from daemon.io._types import ColourSpace, ImageInfo

COLOUR_SPACES: dict[int, ColourSpace] = {1: "gray", 3: "rgb", 4: "cmyk"}
#: Pixels composited at once by the band compositor (a band of rows of the canvas).
BAND_PIXELS = 2_000_000
DEFAULT_BUDGET_MEGAPIXELS = 4.0


def open_layered_psd(
    path: Path, *, max_megapixels: float, budget_megapixels: float, name: str | None = None
) -> LayeredPsdReader | None:
    """A reader compositing the layers when the file has no merged image, else ``None``."""
    fp = open(path, "rb")  # noqa: SIM115 - held open by the reader until close()
    try:
        layout = read_layout(fp, max_megapixels=max_megapixels)
        if layout.has_real_merged_data:
            fp.close()
            return None
        return LayeredPsdReader(fp, layout, budget_megapixels=budget_megapixels, name=name or path.name)
    except BaseException:
        fp.close()
        raise


class LayeredPsdReader:
    """Implements :class:`daemon.io._types.ImageReader` for a file without a merged image."""

    def __init__(
        self, fp: BinaryIO, layout: PsdLayout, *, budget_megapixels: float, name: str = "PSD file"
    ) -> None:
        #: For messages: the file's name (its descriptor path says nothing to an operator).
        self.name = name
        if layout.has_spot_channels:
            raise UnsupportedInput(
                "unsupported: spot colour channels (compositing the layers leaves the spot inks out)"
            )
        self._fp = fp
        self._layout = layout
        tree = read_layer_tree(fp, layout)
        if not tree:
            raise UnsupportedInput(
                "unsupported: PSD saved without 'Maximize Compatibility' and without visible layers; "
                "re-save it with that option on"
            )
        self._opaque = _is_opaque(tree, layout)
        self._dtype = output_dtype(layout.depth)
        self._whole: tuple[np.ndarray, np.ndarray] | None = None
        self._bands: BandCompositor | None = None
        largest = max([layout.width * layout.height, *(_areas(tree))]) / 1e6
        # psd-tools also holds the whole file: its size counts (8 bytes a pixel is
        # what a 16-bit RGBA canvas of the budget would take).
        within = largest <= budget_megapixels and layout.file_size <= budget_megapixels * 8e6
        #: Which compositor this file gets: ``psd-tools`` (within the budget) or ``bands``.
        self.composited_by = "psd-tools" if within else "bands"
        # A band holds about BAND_PIXELS of the canvas and of the widest layer's rows.
        self._band_rows = max(1, BAND_PIXELS // max([layout.width, *_widths(tree)]))
        self._bands = BandCompositor(fp, layout, tree)
        if self.composited_by == "psd-tools":
            # psd-tools decodes damaged PackBits rows without a word (wrong pixels, no
            # error): every channel goes through our strict decoder first.
            self._bands.check_decodable()
            self._bands = None
        self.info = ImageInfo(
            format="psb" if layout.version == 2 else "psd",
            width=layout.width,
            height=layout.height,
            channels=3 if self._opaque else 4,
            bit_depth=8 if layout.depth == 8 else 16,
            colour=COLOUR_SPACES[layout.mode],
            has_alpha=not self._opaque,
            icc=output_icc(layout),
            orientation=1,
            dpi=layout.dpi,
        )

    # -- ImageReader -----------------------------------------------------------------

    def read(self) -> np.ndarray:
        shape = (self.info.height, self.info.width, self.info.channels)
        return join_bands(self.bands(PROXY_BAND_ROWS), shape, self._dtype)

    def bands(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        if rows < 1:
            raise ValueError(f"band height must be positive, got {rows}")
        # The same boundary as every reader: damaged bytes become CorruptInput, the share's own
        # read errors stay OSErrors (daemon/io/_damage.py).
        with damaged_bytes_are_input_errors(self.name, "PSD"):
            yield from self._composited_bands(rows)

    def _composited_bands(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        for y0 in range(0, self._layout.height, rows):
            y1 = min(y0 + rows, self._layout.height)
            colour, alpha = self._composite(y0, y1)
            rgb = colour_to_rgb(self._quantise(colour), self._layout)
            if self._opaque:
                yield y0, rgb
            else:
                yield y0, np.concatenate([rgb, self._quantise(alpha)[..., None]], axis=2)

    def proxy(self, max_side: int) -> np.ndarray:
        """Matted on white like Photoshop's own merged image, which is what the model should see."""
        layout = self._layout

        def matted_rows(y0: int, y1: int) -> np.ndarray:
            colour, alpha = self._composite(y0, y1)
            matted = colour * alpha[..., None] + (1.0 - alpha[..., None])
            return colour_to_rgb(self._quantise(matted), layout)

        if max_side < 1:  # a caller's mistake, not a damaged file: checked outside the boundary
            raise ValueError(f"max_side must be positive, got {max_side}")
        with damaged_bytes_are_input_errors(self.name, "PSD"):
            return banded_proxy(layout.width, layout.height, max_side, matted_rows)

    def close(self) -> None:
        self._whole = None
        self._fp.close()

    def __enter__(self) -> LayeredPsdReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------

    def _composite(self, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray]:
        if self._bands is not None:
            step = self._band_rows
            parts = [self._bands.composite(y, min(y + step, y1)) for y in range(y0, y1, step)]
            if len(parts) == 1:
                return parts[0]
            return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        if self._whole is None:
            self._whole = _psd_tools_composite(self._fp, self._layout)
        colour, alpha = self._whole
        return colour[y0:y1], alpha[y0:y1]

    def _quantise(self, values: np.ndarray) -> np.ndarray:
        top = float(np.iinfo(self._dtype).max)
        quantised: np.ndarray = np.rint(np.clip(values, 0.0, 1.0) * top).astype(self._dtype)
        return quantised


def _psd_tools_composite(fp: BinaryIO, layout: PsdLayout) -> tuple[np.ndarray, np.ndarray]:
    """The whole canvas composited by psd-tools: colour in the stored channel space, alpha."""
    from psd_tools import PSDImage
    from psd_tools.composite import composite

    fp.seek(0)
    try:
        document = PSDImage.open(fp)
        colour, _shape, alpha = composite(document)
    except InputError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, OSError, EOFError) as error:
        if is_filesystem_error(error):
            raise  # the disk or share failed, not the file: transient
        raise CorruptInput(f"the layers cannot be composited: {error}") from error
    colour = np.asarray(colour, np.float32)[..., : layout.colour_channels]
    alpha = np.asarray(alpha, np.float32)[..., 0]
    colour = np.where(alpha[..., None] > 0, colour, np.float32(1.0))
    return colour, alpha


def _is_opaque(tree: list[Layer | Group], layout: PsdLayout) -> bool:
    """Whether the bottom layer is opaque over the whole canvas (a Background layer):
    then every pixel of the composite is opaque and the output needs no alpha."""
    bottom = tree[0]
    if not isinstance(bottom, Layer) or bottom.opacity < 1.0 or bottom.mask is not None:
        return False
    if bottom.fill is None and CHANNEL_TRANSPARENCY in bottom.channels:
        return False
    rect = bottom.rect
    return rect.top <= 0 and rect.left <= 0 and rect.bottom >= layout.height and rect.right >= layout.width


def _areas(nodes: list[Layer | Group]) -> Iterator[int]:
    for node in nodes:
        if isinstance(node, Group):
            yield from _areas(node.children)
        elif not node.rect.empty:
            yield (node.rect.bottom - node.rect.top) * (node.rect.right - node.rect.left)


def _widths(nodes: list[Layer | Group]) -> Iterator[int]:
    for node in nodes:
        if isinstance(node, Group):
            yield from _widths(node.children)
            if node.mask is not None:
                yield node.mask.rect.right - node.mask.rect.left
        else:
            yield node.rect.right - node.rect.left
            if node.mask is not None:
                yield node.mask.rect.right - node.mask.rect.left
