"""Writes layered PSD/PSB files without a merged image (as Photoshop does with
"Maximize Compatibility" off), for tests and ``bench/make_layered_psb.py``.

RGB, CMYK (values as stored: 255 = no ink) or grayscale, 8 or 16-bit. Each
layer is a dict: ``rect`` (top, left, bottom, right), ``colour`` (an ``HxWxK``
array of the file's depth, or a function ``rows(y0, y1) -> array`` for files
too large to hold), optional ``alpha`` (``HxW``, or a function), ``opacity`` (0..255),
``blend`` (4-byte key), ``hidden``, ``mask`` ``(rect, default, HxW array)``.
A group is ``{"group": [children...], "opacity": .., "pass_through": bool}``.
Channel data is PackBits, one row at a time, so a 100 MP file is written in
bounded memory; or, with ``compression="zip"``, one zlib stream of per-row
deltas (Photoshop's choice for 16-bit layers).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import imagecodecs
import numpy as np

Rows = Callable[[int, int], np.ndarray]
ROW_BLOCK = 256
MODES = {"gray": (1, 1), "rgb": (3, 3), "cmyk": (4, 4)}  # name: (mode number, colour channels)


def write_layered(
    path: Path,
    width: int,
    height: int,
    layers: list[dict[str, Any]],
    *,
    psb: bool = False,
    mode: str = "rgb",
    depth: int = 8,
    compression: str = "rle",
) -> None:
    version = 2 if psb else 1
    mode_number, colours = MODES[mode]
    records = list(_flatten(layers))
    with path.open("wb") as out:
        header = struct.pack(">4sH6sHIIHH", b"8BPS", version, b"", colours, height, width, depth, mode_number)
        out.write(header)
        out.write(struct.pack(">I", 0))  # colour mode data
        resources = _version_info_resource()
        out.write(struct.pack(">I", len(resources)) + resources)
        section_at = out.tell()
        out.write(bytes(4 * version))  # layer and mask length, patched below
        info_at = out.tell()
        out.write(bytes(4 * version))  # layer info length, patched below
        out.write(struct.pack(">h", len(records)))
        channel_positions = [_write_record(out, record, version, colours) for record in records]
        for record, positions in zip(records, channel_positions, strict=True):
            for (_channel, rows), length_at in zip(_channels(record, colours), positions, strict=True):
                start = out.tell()
                if compression == "zip":
                    _write_zip_channel(out, rows, record["rect"], depth)
                else:
                    _write_rle_channel(out, rows, record["rect"], version, depth)
                _patch(out, length_at, out.tell() - start, 4 * version)
        if (out.tell() - info_at) % 2:
            out.write(b"\0")
        _patch(out, info_at, out.tell() - info_at - 4 * version, 4 * version)
        out.write(struct.pack(">I", 0))  # global layer mask info
        _patch(out, section_at, out.tell() - section_at - 4 * version, 4 * version)
        # The placeholder merged image Photoshop writes in that case: white, RLE.
        out.write(struct.pack(">H", 1))
        white = imagecodecs.packbits_encode(bytes([255]) * (width * depth // 8))
        entry = ">H" if version == 1 else ">I"
        out.write(struct.pack(entry, len(white)) * (colours * height))
        for _ in range(colours * height):
            out.write(white)


def _version_info_resource() -> bytes:
    def unicode(text: str) -> bytes:
        return struct.pack(">I", len(text)) + text.encode("utf-16-be")

    data = (
        struct.pack(">IB", 1, 0)
        + unicode("Adobe Photoshop")
        + unicode("Adobe Photoshop CC")
        + struct.pack(">I", 1)
    )
    block = b"8BIM" + struct.pack(">H", 1057) + b"\0\0" + struct.pack(">I", len(data)) + data
    return block + b"\0" * (len(data) % 2)


def _flatten(nodes: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Bottom first, with Photoshop's group markers around each group's children."""
    for node in nodes:
        if "group" in node:
            yield {"name": "</Layer group>", "rect": (0, 0, 0, 0), "divider": 3}
            yield from _flatten(node["group"])
            yield {**node, "rect": (0, 0, 0, 0), "divider": 1}
        else:
            yield node


def _channels(record: dict[str, Any], colours: int) -> list[tuple[int, Rows | None]]:
    if "divider" in record:
        return [(-1, None), *((c, None) for c in range(colours))]
    colour = record["colour"]
    channels: list[tuple[int, Rows | None]] = []
    alpha = record.get("alpha")
    if alpha is not None:
        channels.append((-1, _as_rows(alpha, None)))
    channels += [(c, _as_rows(colour, c)) for c in range(colours)]
    if "mask" in record:
        mask_rect, _default, mask = record["mask"]
        channels.append((-2, _as_rows(mask, None, rect=mask_rect)))
    return channels


def _as_rows(source: Any, channel: int | None, rect: tuple[int, int, int, int] | None = None) -> Rows:
    def rows(y0: int, y1: int) -> np.ndarray:
        block = source(y0, y1) if callable(source) else source[y0:y1]
        return np.asarray(block if channel is None else block[..., channel])

    rows.rect = rect  # type: ignore[attr-defined]
    return rows


def _write_record(out: BinaryIO, record: dict[str, Any], version: int, colours: int) -> list[int]:
    top, left, bottom, right = record["rect"]
    channels = _channels(record, colours)
    out.write(struct.pack(">iiiiH", top, left, bottom, right, len(channels)))
    positions = []
    for channel, _ in channels:
        out.write(struct.pack(">h", channel))
        positions.append(out.tell())
        out.write(bytes(4 * version))
    flags = 2 if record.get("hidden") else 0
    blend = record.get("blend", b"pass" if record.get("pass_through") else b"norm")
    out.write(b"8BIM" + blend + struct.pack(">BBBB", record.get("opacity", 255), 0, flags, 0))
    extra = bytearray()
    if "mask" in record:
        (mt, ml, mb, mr), default, _ = record["mask"]
        extra += struct.pack(">IiiiiBBxx", 20, mt, ml, mb, mr, default, 0)
    else:
        extra += struct.pack(">I", 0)
    extra += struct.pack(">I", 0)  # blending ranges: defaults
    name = record.get("name", "Layer").encode("latin-1")[:255]
    pascal = bytes([len(name)]) + name
    extra += pascal + b"\0" * (-len(pascal) % 4)
    if "divider" in record:
        divider = struct.pack(">I", record["divider"])
        if record["divider"] != 3:
            divider += b"8BIM" + blend
        extra += b"8BIMlsct" + struct.pack(">I", len(divider)) + divider
    out.write(struct.pack(">I", len(extra)) + bytes(extra))
    return positions


def _channel_size(rows: Rows | None, rect: tuple[int, int, int, int]) -> tuple[int, int]:
    top, left, bottom, right = getattr(rows, "rect", None) or rect
    return bottom - top, right - left


def _stored(block: np.ndarray, depth: int) -> np.ndarray:
    return np.ascontiguousarray(block, dtype=">u1" if depth == 8 else ">u2")


def _write_rle_channel(
    out: BinaryIO, rows: Rows | None, rect: tuple[int, int, int, int], version: int, depth: int
) -> None:
    height, width = _channel_size(rows, rect)
    out.write(struct.pack(">H", 1))
    if rows is None or height <= 0 or width <= 0:
        return
    entry = ">H" if version == 1 else ">I"
    table_at = out.tell()
    out.write(bytes(struct.calcsize(entry) * height))
    lengths = []
    for y0 in range(0, height, ROW_BLOCK):
        block = _stored(rows(y0, min(y0 + ROW_BLOCK, height)), depth)
        for row in block:
            packed = imagecodecs.packbits_encode(row.tobytes())
            lengths.append(len(packed))
            out.write(packed)
    end = out.tell()
    out.seek(table_at)
    out.write(np.asarray(lengths, dtype=entry).tobytes())
    out.seek(end)


def _write_zip_channel(out: BinaryIO, rows: Rows | None, rect: tuple[int, int, int, int], depth: int) -> None:
    """ZIP with prediction: each row as differences from its left neighbour, one zlib stream."""
    height, width = _channel_size(rows, rect)
    out.write(struct.pack(">H", 3))
    if rows is None or height <= 0 or width <= 0:
        return
    values: np.ndarray = np.asarray(rows(0, height), np.uint8 if depth == 8 else np.uint16)
    deltas = values.copy()
    np.subtract(values[:, 1:], values[:, :-1], out=deltas[:, 1:])  # wraps, as the format wants
    out.write(zlib.compress(_stored(deltas, depth).tobytes()))


def _patch(out: BinaryIO, at: int, value: int, size: int) -> None:
    here = out.tell()
    out.seek(at)
    out.write(value.to_bytes(size, "big"))
    out.seek(here)
