"""Our band-by-band compositor of a PSD/PSB layer tree (see :mod:`daemon.io._psd_records`).

Written by hand because psd-tools composites the whole canvas at once in
float64 (4–7 GB for a 108 MP file): here one band of rows is composited at a
time, reading only those rows of each layer, so memory is a few canvases of
one band whatever the file's size.

The maths is the normal blend mode of the PDF/Photoshop model, on premultiplied
float32 values in the document's own stored channel space (RGB, gray or CMYK
as stored, where 1.0 is white), the same operations psd-tools performs:

* a layer: ``a = transparency × mask × opacity × fill``, ``P ← c·a + P·(1 − a)``;
* a normal group: its children on a transparent canvas, then the result is
  composited like a layer with the group's mask and opacity;
* a pass-through group: its children straight onto the backdrop, then the
  result is interpolated with the backdrop by the group's mask × opacity
  (psd-tools' ``_apply_passthrough_source``, in premultiplied form).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from daemon.errors import CorruptInput
from daemon.io._psd_layer_rows import ChannelRows
from daemon.io._psd_layout import PsdLayout
from daemon.io._psd_records import CHANNEL_TRANSPARENCY, Channel, Group, Layer, Mask, Rect

Node = Layer | Group


class BandCompositor:
    """Composites rows ``[y0, y1)`` of the whole canvas from the layer tree."""

    def __init__(self, fp: BinaryIO, layout: PsdLayout, tree: list[Node]) -> None:
        self._fp = fp
        self._layout = layout
        self._tree = tree
        self._readers: dict[int, ChannelRows] = {}
        self._check_colour_channels(tree)

    def composite(self, y0: int, y1: int) -> tuple[np.ndarray, np.ndarray]:
        """``(colour HxWxK, alpha HxW)``: unassociated float32 in [0, 1]; colour is
        white where nothing covers the canvas."""
        height, width = y1 - y0, self._layout.width
        premultiplied = np.zeros((height, width, self._layout.colour_channels), np.float32)
        alpha = np.zeros((height, width), np.float32)
        self._nodes(self._tree, y0, y1, premultiplied, alpha)
        colour = np.ones_like(premultiplied)
        covered = alpha > 0
        np.divide(premultiplied, alpha[..., None], out=colour, where=covered[..., None])
        np.clip(colour, 0.0, 1.0, out=colour)
        return colour, np.clip(alpha, 0.0, 1.0)

    def check_decodable(self) -> None:
        """Decode every channel of every visible layer and mask once; raise
        :class:`CorruptInput` for damaged data. For files small enough to decode whole."""
        for node in _walk(self._tree):
            for channel, rect in _stored_channels(node):
                if not rect.empty:
                    self._rows(channel, rect, (rect.top, rect.left, rect.bottom, rect.right))
        self._readers.clear()

    # -- the tree ------------------------------------------------------------------

    def _nodes(self, nodes: list[Node], y0: int, y1: int, canvas: np.ndarray, alpha: np.ndarray) -> None:
        for node in nodes:
            if isinstance(node, Layer):
                self._layer(node, y0, y1, canvas, alpha)
            elif node.pass_through:
                self._pass_through(node, y0, y1, canvas, alpha)
            else:
                self._isolated(node, y0, y1, canvas, alpha)

    def _layer(self, layer: Layer, y0: int, y1: int, canvas: np.ndarray, alpha: np.ndarray) -> None:
        box = _clip(layer.rect, y0, y1, self._layout.width)
        if box is None or layer.opacity <= 0.0:
            return
        top, left, bottom, right = box
        rows = slice(top - y0, bottom - y0)
        cols = slice(left, right)
        coverage = np.full((bottom - top, right - left), layer.opacity, np.float32)
        if layer.mask is not None:
            coverage *= self._mask(layer.mask, box)
        if layer.fill is not None:
            fill = np.asarray(layer.fill, np.float32)
            _over(canvas[rows, cols], alpha[rows, cols], fill * coverage[..., None], coverage)
            return
        transparency = layer.channels.get(CHANNEL_TRANSPARENCY)
        if transparency is not None:
            coverage *= self._rows(transparency, layer.rect, box)
        colour = np.stack(
            [self._rows(layer.channels[c], layer.rect, box) for c in range(self._layout.colour_channels)],
            axis=2,
        )
        if self._layout.depth == 32:
            np.clip(colour, 0.0, 1.0, out=colour)
            np.clip(coverage, 0.0, 1.0, out=coverage)
        _over(canvas[rows, cols], alpha[rows, cols], colour * coverage[..., None], coverage)

    def _isolated(self, group: Group, y0: int, y1: int, canvas: np.ndarray, alpha: np.ndarray) -> None:
        if group.opacity <= 0.0:
            return
        inner = np.zeros_like(canvas)
        inner_alpha = np.zeros_like(alpha)
        self._nodes(group.children, y0, y1, inner, inner_alpha)
        weight = self._group_weight(group, y0, y1)
        _over(canvas, alpha, inner * weight[..., None], inner_alpha * weight)

    def _pass_through(self, group: Group, y0: int, y1: int, canvas: np.ndarray, alpha: np.ndarray) -> None:
        if group.opacity >= 1.0 and group.mask is None:
            self._nodes(group.children, y0, y1, canvas, alpha)
            return
        if group.opacity <= 0.0:
            return
        result = canvas.copy()
        result_alpha = alpha.copy()
        self._nodes(group.children, y0, y1, result, result_alpha)
        weight = self._group_weight(group, y0, y1)
        canvas += (result - canvas) * weight[..., None]
        alpha += (result_alpha - alpha) * weight

    def _group_weight(self, group: Group, y0: int, y1: int) -> np.ndarray:
        weight = np.full((y1 - y0, self._layout.width), group.opacity, np.float32)
        if group.mask is not None:
            weight *= self._mask(group.mask, (y0, 0, y1, self._layout.width))
        return weight

    # -- pixels --------------------------------------------------------------------

    def _mask(self, mask: Mask, box: tuple[int, int, int, int]) -> np.ndarray:
        """The mask's values over ``box`` (top, left, bottom, right), density applied."""
        top, left, bottom, right = box
        values = np.full((bottom - top, right - left), mask.default / 255.0, np.float32)
        inside = _intersect(mask.rect, box)
        if inside is not None and mask.channel is not None:
            it, il, ib, ir = inside
            values[it - top : ib - top, il - left : ir - left] = self._rows(mask.channel, mask.rect, inside)
        if mask.density < 1.0:
            values = values * mask.density + (1.0 - mask.density)
        return values

    def _rows(self, channel: Channel, rect: Rect, box: tuple[int, int, int, int]) -> np.ndarray:
        """``box`` (inside ``rect``) of a channel stored over ``rect``."""
        reader = self._readers.get(channel.offset)
        if reader is None:
            reader = ChannelRows(
                self._fp,
                channel,
                rect.right - rect.left,
                rect.bottom - rect.top,
                self._layout.depth,
                self._layout.version,
            )
            self._readers[channel.offset] = reader
        top, left, bottom, right = box
        rows = reader.rows(top - rect.top, bottom - rect.top)
        return rows[:, left - rect.left : right - rect.left]

    def _check_colour_channels(self, nodes: list[Node]) -> None:
        for node in nodes:
            if isinstance(node, Group):
                self._check_colour_channels(node.children)
            elif not node.rect.empty and node.fill is None:
                missing = [c for c in range(self._layout.colour_channels) if c not in node.channels]
                if missing:
                    raise CorruptInput(f"layer '{node.name}' lacks colour channel(s) {missing}")


def _over(canvas: np.ndarray, alpha: np.ndarray, source: np.ndarray, source_alpha: np.ndarray) -> None:
    """Normal blend, premultiplied, in place."""
    keep = 1.0 - source_alpha
    canvas *= keep[..., None]
    canvas += source
    alpha *= keep
    alpha += source_alpha


def _clip(rect: Rect, y0: int, y1: int, width: int) -> tuple[int, int, int, int] | None:
    top, bottom = max(rect.top, y0), min(rect.bottom, y1)
    left, right = max(rect.left, 0), min(rect.right, width)
    if bottom <= top or right <= left:
        return None
    return top, left, bottom, right


def _intersect(rect: Rect, box: tuple[int, int, int, int]) -> tuple[int, int, int, int] | None:
    top, left = max(rect.top, box[0]), max(rect.left, box[1])
    bottom, right = min(rect.bottom, box[2]), min(rect.right, box[3])
    if bottom <= top or right <= left:
        return None
    return top, left, bottom, right


def _walk(nodes: list[Node]) -> Iterator[Node]:
    for node in nodes:
        yield node
        if isinstance(node, Group):
            yield from _walk(node.children)


def _stored_channels(node: Node) -> Iterator[tuple[Channel, Rect]]:
    if isinstance(node, Layer) and node.fill is None:
        for channel_id, channel in node.channels.items():
            if channel_id >= CHANNEL_TRANSPARENCY:
                yield channel, node.rect
    if node.mask is not None and node.mask.channel is not None:
        yield node.mask.channel, node.mask.rect
