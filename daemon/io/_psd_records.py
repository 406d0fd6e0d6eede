"""The layer tree of a PSD/PSB file, and whether we can composite it faithfully.

Layer *records* (names, rectangles, blend modes, masks, tagged blocks) are
small and parsed with psd-tools' low-level reader (``LayerRecord.read``), which
knows every block of the format; the *pixels* after them are never read here,
only located (channel offsets), so that :mod:`daemon.io._psd_layer_rows` can
read any rows of any layer later without holding the rest.

The support policy lives here, once, for both compositors (psd-tools below the
pixel budget, ours band by band above it): a file is composited only when every
visible layer is something whose stored pixels *are* its look, blended in a way
we reproduce exactly. Anything else is refused with the layer's name and what
it is, never composited approximately.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import BinaryIO

from psd_tools.api.adjustments import TYPES as ADJUSTMENT_AND_FILL_TYPES
from psd_tools.constants import BlendMode, SectionDivider, Tag
from psd_tools.psd.layer_and_mask import LayerRecord, MaskData

from daemon.errors import CorruptInput, UnsupportedInput
from daemon.io._damage import is_filesystem_error
from daemon.io._psd_fill import solid_fill_colour
from daemon.io._psd_layout import MAX_SIDE, PSB_LONG_LENGTH_KEYS, PsdLayout

ADVICE = "save it with Maximize Compatibility"
FILL_TAGS = frozenset({Tag.SOLID_COLOR_SHEET_SETTING, Tag.GRADIENT_FILL_SETTING, Tag.PATTERN_FILL_SETTING})
EFFECT_TAGS = (
    Tag.OBJECT_BASED_EFFECTS_LAYER_INFO,
    Tag.OBJECT_BASED_EFFECTS_LAYER_INFO_V0,
    Tag.OBJECT_BASED_EFFECTS_LAYER_INFO_V1,
)
# psd-tools' registry, plus the legacy keys it reads as pixel layers (Photoshop
# still writes 'brit' and 'hue ' beside the modern blocks of old documents).
ADJUSTMENT_TAGS = (set(ADJUSTMENT_AND_FILL_TYPES) - FILL_TAGS) | {
    Tag.BRIGHTNESS_AND_CONTRAST,
    Tag.HUE_SATURATION_V4,
}
ARTBOARD_TAGS = (Tag.ARTBOARD_DATA1, Tag.ARTBOARD_DATA2, Tag.ARTBOARD_DATA3)
VECTOR_MASK_TAGS = (Tag.VECTOR_MASK_SETTING1, Tag.VECTOR_MASK_SETTING2)
# Blend-if sliders at their defaults: every channel passes 0..255 on both layers.
DEFAULT_BLEND_RANGE = (0, 65535)
CHANNEL_TRANSPARENCY = -1
CHANNEL_USER_MASK = -2
CHANNEL_REAL_USER_MASK = -3


@dataclass(frozen=True)
class Channel:
    """Where one channel's stored data is: 2-byte compression, then ``length - 2`` bytes."""

    id: int
    offset: int
    length: int


@dataclass(frozen=True)
class Rect:
    top: int
    left: int
    bottom: int
    right: int

    @property
    def empty(self) -> bool:
        return self.bottom <= self.top or self.right <= self.left


@dataclass(frozen=True)
class Mask:
    """A raster user mask: its rectangle, the value outside it, and its density."""

    rect: Rect
    default: int  # 0 or 255, the mask's value outside ``rect``
    density: float  # 1.0 = the mask applies fully
    channel: Channel | None


@dataclass(frozen=True)
class Layer:
    """A layer composited with the normal blend mode: its stored pixels, or a solid fill."""

    name: str
    rect: Rect
    opacity: float  # layer opacity times fill opacity, 0..1
    channels: dict[int, Channel]
    mask: Mask | None
    #: A solid colour fill layer: this colour (stored values) over the whole canvas, no pixels.
    fill: tuple[float, ...] | None = None


@dataclass(frozen=True)
class Group:
    name: str
    pass_through: bool
    opacity: float
    mask: Mask | None
    children: list[Layer | Group] = field(default_factory=list)


def read_layer_tree(fp: BinaryIO, layout: PsdLayout) -> list[Layer | Group]:
    """The visible layers, bottom first, or :class:`UnsupportedInput` naming the
    first one we cannot composite faithfully."""
    records, channel_offsets = _read_records(fp, layout)
    stack: list[tuple[list[Layer | Group], LayerRecord | None]] = [([], None)]
    for record, channels in zip(records, channel_offsets, strict=True):
        divider = record.tagged_blocks.get_data(Tag.SECTION_DIVIDER_SETTING) if record.tagged_blocks else None
        kind = divider.kind if divider is not None else SectionDivider.OTHER
        if kind == SectionDivider.BOUNDING_SECTION_DIVIDER:
            stack.append(([], record))
        elif kind in (SectionDivider.OPEN_FOLDER, SectionDivider.CLOSED_FOLDER):
            if len(stack) < 2:
                raise CorruptInput(f"layer group '{_name(record)}' has no start marker")
            children, _ = stack.pop()
            group = _group(record, getattr(divider, "blend_mode", None), channels, children)
            if group is not None:
                stack[-1][0].append(group)
        else:
            layer = _layer(record, channels, layout)
            if layer is not None:
                stack[-1][0].append(layer)
    if len(stack) != 1:
        raise CorruptInput("a layer group is never closed")
    return stack[0][0]


# -- the support policy ------------------------------------------------------------


def _common_checks(record: LayerRecord, what: str) -> None:
    name = _name(record)
    blocks = record.tagged_blocks
    for tag in EFFECT_TAGS:
        effects = blocks.get_data(tag) if blocks else None
        if effects is not None and _effects_enabled(effects):
            raise UnsupportedInput(f"{what} '{name}' has layer effects (layer styles); {ADVICE}")
    ranges = record.blending_ranges
    if ranges is not None and any(
        tuple(pair) != DEFAULT_BLEND_RANGE
        for pairs in (ranges.composite_ranges or [], *(ranges.channel_ranges or []))
        for pair in pairs
    ):
        raise UnsupportedInput(f"{what} '{name}' uses Blend If sliders; {ADVICE}")
    knockout = blocks.get_data(Tag.KNOCKOUT_SETTING) if blocks else None
    if knockout:
        raise UnsupportedInput(f"{what} '{name}' uses knockout; {ADVICE}")
    if record.clipping:
        raise UnsupportedInput(f"layer '{name}' is a clipping mask; {ADVICE}")


def _layer(record: LayerRecord, channels: dict[int, Channel], layout: PsdLayout) -> Layer | None:
    if not record.flags.visible:
        return None  # a hidden layer of any kind changes nothing
    name = _name(record)
    blocks = record.tagged_blocks
    keys = set(blocks.keys()) if blocks else set()
    has_pixels = any(cid >= 0 and ch.length > 2 for cid, ch in channels.items())
    vector_mask = next((blocks.get_data(t) for t in VECTOR_MASK_TAGS if t in keys), None)
    vector_mask_on = vector_mask is not None and not vector_mask.disable
    is_fill = bool(keys & FILL_TAGS)
    adjustment = keys & ADJUSTMENT_TAGS
    if adjustment:
        raise UnsupportedInput(f"layer '{name}' is an adjustment layer; {ADVICE}")
    # A shape layer is a fill clipped to its vector path; Photoshop stores its
    # rendering (colour and anti-aliased coverage) as the layer's pixels, which
    # psd-tools also composites as they are. A plain fill layer has none.
    is_shape = is_fill and vector_mask_on and has_pixels
    solid = Tag.SOLID_COLOR_SHEET_SETTING in keys and not vector_mask_on
    if is_fill and not is_shape and not solid:
        raise UnsupportedInput(
            f"layer '{name}' is a shape or fill layer without stored pixels "
            f"(drawn from its settings); {ADVICE}"
        )
    if vector_mask_on and not is_shape:
        raise UnsupportedInput(f"layer '{name}' has a vector mask; {ADVICE}")
    if Tag.TYPE_TOOL_OBJECT_SETTING in keys and not has_pixels:
        raise UnsupportedInput(f"text layer '{name}' has no stored pixels; {ADVICE}")
    if record.blend_mode != BlendMode.NORMAL:
        mode = record.blend_mode.name.lower().replace("_", " ")
        raise UnsupportedInput(
            f"layer '{name}' uses the {mode} blend mode (only normal is composited); {ADVICE}"
        )
    _common_checks(record, "layer")
    mask = _mask(record, channels)
    if is_shape and mask is not None:
        # Photoshop repeats a shape's coverage as its mask; psd-tools guesses when
        # to skip it. Rather than guess, refuse.
        raise UnsupportedInput(f"shape layer '{name}' has a layer mask; {ADVICE}")
    fill = blocks.get_data(Tag.BLEND_FILL_OPACITY, 255) if blocks else 255
    rect = _rect(name, record.top, record.left, record.bottom, record.right)
    colour = None
    if solid:
        colour = solid_fill_colour(blocks.get_data(Tag.SOLID_COLOR_SHEET_SETTING), layout.mode, name, ADVICE)
        rect = Rect(0, 0, layout.height, layout.width)  # a fill has no edges; its mask shapes it
    return Layer(
        name=name,
        rect=rect,
        opacity=record.opacity / 255.0 * fill / 255.0,
        channels=channels,
        mask=mask,
        fill=colour,
    )


def _group(
    record: LayerRecord,
    blend_mode: BlendMode | None,
    channels: dict[int, Channel],
    children: list[Layer | Group],
) -> Group | None:
    if not record.flags.visible:
        return None
    name = _name(record)
    mode = blend_mode if blend_mode is not None else record.blend_mode
    if mode not in (BlendMode.NORMAL, BlendMode.PASS_THROUGH):
        text = mode.name.lower().replace("_", " ")
        raise UnsupportedInput(f"group '{name}' uses the {text} blend mode; {ADVICE}")
    blocks = record.tagged_blocks
    if blocks and any(t in blocks for t in VECTOR_MASK_TAGS):
        vector_mask = next(blocks.get_data(t) for t in VECTOR_MASK_TAGS if t in blocks)
        if not vector_mask.disable:
            raise UnsupportedInput(f"group '{name}' has a vector mask; {ADVICE}")
    if blocks and any(t in blocks for t in ARTBOARD_TAGS):
        raise UnsupportedInput(f"group '{name}' is an artboard (its background is not composited); {ADVICE}")
    _common_checks(record, "group")
    fill = blocks.get_data(Tag.BLEND_FILL_OPACITY, 255) if blocks else 255
    if fill != 255:
        # Fill opacity on a group changes how pass-through is isolated; not ours to guess.
        raise UnsupportedInput(f"group '{name}' has a fill opacity below 100%; {ADVICE}")
    return Group(
        name=name,
        pass_through=mode == BlendMode.PASS_THROUGH,
        opacity=record.opacity / 255.0,
        mask=_mask(record, channels),
        children=children,
    )


def _mask(record: LayerRecord, channels: dict[int, Channel]) -> Mask | None:
    data: MaskData | None = record.mask_data
    if data is None or data.flags.mask_disabled:
        return None
    name = _name(record)
    if data.real_flags is not None:
        # Two masks (vector and user) stored together: the vector one is refused above.
        raise UnsupportedInput(f"layer '{name}' has two layer masks; {ADVICE}")
    density = 255
    if data.parameters is not None:
        if data.parameters.user_mask_feather:
            raise UnsupportedInput(f"layer '{name}' has a feathered layer mask; {ADVICE}")
        if data.parameters.user_mask_density is not None:
            density = data.parameters.user_mask_density
    rect = _rect(name, data.top, data.left, data.bottom, data.right)
    channel = channels.get(CHANNEL_USER_MASK)
    if rect.empty and data.background_color == 255:
        return None  # an empty mask that shows everything
    if data.flags.invert_mask:
        raise UnsupportedInput(f"layer '{name}' has an inverted layer mask; {ADVICE}")
    return Mask(rect=rect, default=data.background_color, density=density / 255.0, channel=channel)


def _rect(name: str, top: int, left: int, bottom: int, right: int) -> Rect:
    """A layer or mask rectangle, refused when no Photoshop file could hold it
    (it would make us read absurd rows)."""
    limit = 2 * MAX_SIDE[2]
    if not (0 <= bottom - top <= limit and 0 <= right - left <= limit):
        raise CorruptInput(f"layer '{name}' has an impossible rectangle {left},{top} to {right},{bottom}")
    return Rect(top, left, bottom, right)


def _effects_enabled(effects: object) -> bool:
    """Whether an effects descriptor shows anything: the master switch and one enabled effect."""
    getter = getattr(effects, "get", None)
    if getter is None:
        return True  # a form we do not know: assume it shows
    if not bool(getter(b"masterFXSwitch", True)):
        return False
    for value in effects.values():  # type: ignore[attr-defined]
        items = value if isinstance(value, list) else [value]
        for item in items:
            item_get = getattr(item, "get", None)
            if item_get is not None and item_get(b"enab", False) and item_get(b"present", True):
                return True
    return False


def _name(record: LayerRecord) -> str:
    unicode_name = record.tagged_blocks.get_data(Tag.UNICODE_LAYER_NAME) if record.tagged_blocks else None
    return str(unicode_name if unicode_name else record.name)


# -- locating the records and their pixels -------------------------------------------


def _read_records(fp: BinaryIO, layout: PsdLayout) -> tuple[list[LayerRecord], list[dict[int, Channel]]]:
    start, end = _layer_info_span(fp, layout)
    if start == end:
        return [], []
    fp.seek(start)
    count = abs(struct.unpack(">h", _read(fp, 2))[0])
    try:
        records = [LayerRecord.read(fp, "macroman", layout.version) for _ in range(count)]
    except (ValueError, struct.error, EOFError, OSError, KeyError, IndexError, TypeError) as error:
        if is_filesystem_error(error):
            raise  # the disk or share failed, not the file: transient
        raise CorruptInput(f"damaged layer records: {error}") from error
    offset = fp.tell()
    offsets: list[dict[int, Channel]] = []
    for record in records:
        channels: dict[int, Channel] = {}
        for info in record.channel_info:
            channels[int(info.id)] = Channel(int(info.id), offset, int(info.length))
            offset += int(info.length)
        offsets.append(channels)
    if offset > end:
        raise CorruptInput(
            f"truncated PSD: the layer pixels need {offset - end} bytes more than the layer section"
        )
    return records, offsets


def _layer_info_span(fp: BinaryIO, layout: PsdLayout) -> tuple[int, int]:
    """``(start, end)`` of the layer info (count, records, pixels); in 16/32-bit
    files it is the ``Lr16``/``Lr32`` tagged block after the global mask info."""
    fp.seek(26)
    fp.seek(_uint(fp, 4), os.SEEK_CUR)  # colour mode data
    fp.seek(_uint(fp, 4), os.SEEK_CUR)  # image resources
    section_length = _uint(fp, 4 * layout.version)
    section_end = fp.tell() + section_length
    if section_length == 0:
        return 0, 0
    info_length = _uint(fp, 4 * layout.version)
    info_start = fp.tell()
    if info_length > 0:
        return info_start, info_start + info_length
    fp.seek(info_start)
    fp.seek(_uint(fp, 4), os.SEEK_CUR)  # global layer mask info
    while fp.tell() + 12 <= section_end:
        signature, key = struct.unpack(">4s4s", _read(fp, 8))
        if signature not in (b"8BIM", b"8B64"):
            break
        size = _uint(fp, 8 if layout.version == 2 and key in PSB_LONG_LENGTH_KEYS else 4)
        data_start = fp.tell()
        if key in (b"Layr", b"Lr16", b"Lr32"):
            return data_start, min(data_start + size, section_end)
        fp.seek(data_start + size + (-size) % 4)
    return 0, 0


def _uint(fp: BinaryIO, size: int) -> int:
    return int.from_bytes(_read(fp, size), "big")


def _read(fp: BinaryIO, size: int) -> bytes:
    data = fp.read(size)
    if len(data) != size:
        raise CorruptInput("truncated PSD: the file ends inside the layer section")
    return data
