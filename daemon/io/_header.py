"""Image size from the header bytes of PNG, JPEG and WebP files, before any library sees them.

The size check must come before anything that may decode: a 74-byte PNG declaring
100000×100000 once made ``getexif()`` (which loads a PNG whole) take 22 GB. Pillow's
``open`` reads only headers, but it also trusts chunk lengths (0xFFFFFFFF makes it try to
read 4 GiB), so the few header fields are read here with ``struct``: the PNG IHDR (and every
chunk's length, checked against the file's size), the JPEG SOFn frame header (and every
segment length before the scan), the WebP VP8/VP8L/VP8X frame header. TIFF (tifffile reads
only the IFD) and PSD (``_psd_layout``) check their own headers.

:func:`check_size` holds the two limits every reader applies: ``max_megapixels`` and an
absolute bound per side.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

from daemon.errors import CorruptInput, TooLarge, UnsupportedInput

# No side longer than this is plausible whatever max_megapixels says: it is the largest a
# PSB may be (Photoshop's own limit, the largest of any format we read that is made by hand).
MAX_SIDE = 300_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A bigger eXIf chunk is not EXIF a camera or editor wrote; it is skipped, not read into memory.
MAX_EXIF_BYTES = 1 << 20
# JPEG markers without a length field: TEM, RST0-7, SOI, EOI.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})
# SOFn markers: every 0xC0-0xCF except DHT (C4), JPG (C8) and DAC (CC).
_FRAME_HEADERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


@dataclass(frozen=True)
class RasterHeader:
    format: str  # png, jpeg, webp
    width: int
    height: int
    bit_depth: int = 8  # per sample, as stored (PNG 1-16)
    exif: bytes | None = None  # a PNG's eXIf chunk (Pillow would load the whole image to find it)


def check_size(name: str, width: int, height: int, max_megapixels: float) -> None:
    """Refuse a header size that is empty, absurd, or over ``max_megapixels``, before any decode."""
    if width < 1 or height < 1:
        raise CorruptInput(
            f"{name}: the header declares an empty image ({width}×{height}); re-export the file"
        )
    if width > MAX_SIDE or height > MAX_SIDE:
        raise TooLarge(
            f"{name}: the header declares {width}×{height} pixels; no side may exceed {MAX_SIDE:,} "
            "(refused before decoding)"
        )
    megapixels = width * height / 1e6
    if megapixels > max_megapixels:
        raise TooLarge(
            f"{name}: {width}×{height} is {megapixels:.1f} MP, over max_megapixels ({max_megapixels:g}); "
            "refused from the header, before decoding"
        )


def read_raster_header(fh: BinaryIO, name: str) -> RasterHeader:
    """Size (and PNG depth and EXIF) of a PNG, JPEG or WebP file, from its header bytes only."""
    size = os.fstat(fh.fileno()).st_size
    head = fh.read(16)
    if head.startswith(PNG_SIGNATURE):
        return _png(fh, size, name)
    if head.startswith(b"\xff\xd8"):
        return _jpeg(fh, size, name)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp(fh, size, name)
    raise UnsupportedInput(f"{name}: unsupported: not a JPEG, PNG or WebP file")


def _damaged(name: str, what: str, detail: str) -> CorruptInput:
    return CorruptInput(f"{name}: damaged {what} ({detail}); re-export or re-copy the file")


def _read_at(fh: BinaryIO, offset: int, count: int, name: str, what: str) -> bytes:
    fh.seek(offset)
    data = fh.read(count)
    if len(data) != count:
        raise _damaged(name, what, f"file ends at byte {offset + len(data)}, inside the header")
    return data


def _png(fh: BinaryIO, size: int, name: str) -> RasterHeader:
    """IHDR, plus a walk over every chunk's 8-byte head: lengths must fit in the file."""
    pos, width, height, depth, exif = 8, 0, 0, 8, None
    while True:
        if pos + 12 > size:
            raise _damaged(name, "PNG", f"truncated at byte {size}, before the IEND chunk")
        length, kind = struct.unpack(">I4s", _read_at(fh, pos, 8, name, "PNG"))
        label = kind.decode("latin-1")
        if length > size - pos - 12:
            raise _damaged(
                name,
                "PNG",
                f"chunk {label!r} at byte {pos} declares {length} bytes, past the end of the file at {size}",
            )
        if pos == 8:
            if kind != b"IHDR" or length != 13:
                raise _damaged(name, "PNG", f"first chunk is {label!r} of {length} bytes, not IHDR")
            width, height, depth = struct.unpack(">IIB", _read_at(fh, pos + 8, 9, name, "PNG"))
        elif kind == b"eXIf" and length <= MAX_EXIF_BYTES:
            exif = _read_at(fh, pos + 8, length, name, "PNG")
        elif kind == b"IEND":
            return RasterHeader("png", width, height, depth, exif)
        pos += 12 + length


def _jpeg(fh: BinaryIO, size: int, name: str) -> RasterHeader:
    """Segments up to the first SOFn frame header, each length checked against the file."""
    pos = 2
    while True:
        head = _read_at(fh, pos, 2, name, "JPEG")
        if head[0] != 0xFF:
            # Extraneous bytes before a marker: libjpeg and Pillow skip them (with a warning),
            # and cameras do write them, so we skip them too.
            pos = _next_marker(fh, pos, size, name)
            continue
        marker = head[1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _STANDALONE:
            if marker == 0xD9:
                raise _damaged(name, "JPEG", "the image ends before its frame header")
            pos += 2
            continue
        (length,) = struct.unpack(">H", _read_at(fh, pos + 2, 2, name, "JPEG"))
        if length < 2 or pos + 2 + length > size:
            raise _damaged(
                name,
                "JPEG",
                f"segment 0xFF{marker:02X} at byte {pos} declares {length} bytes; the file has {size}",
            )
        if marker in _FRAME_HEADERS:
            if length < 8:
                raise _damaged(name, "JPEG", f"frame header of {length} bytes")
            height, width = struct.unpack(">HH", _read_at(fh, pos + 5, 4, name, "JPEG"))
            if height == 0:
                raise UnsupportedInput(
                    f"{name}: unsupported: JPEG whose height is given after the scan (DNL)"
                )
            return RasterHeader("jpeg", width, height)
        if marker == 0xDA:
            raise _damaged(name, "JPEG", "image data starts before any frame header")
        pos += 2 + length


def _next_marker(fh: BinaryIO, pos: int, size: int, name: str) -> int:
    """The offset of the next 0xFF byte after ``pos``, read 64 KB at a time."""
    while pos < size:
        fh.seek(pos)
        block = fh.read(1 << 16)
        found = block.find(b"\xff")
        if found >= 0:
            return pos + found
        pos += len(block)
        if not block:
            break
    raise _damaged(name, "JPEG", f"truncated at byte {size}, before the frame header")


def _webp(fh: BinaryIO, size: int, name: str) -> RasterHeader:
    """The first chunk's frame header: VP8 (lossy), VP8L (lossless) or VP8X (extended)."""
    kind, length = struct.unpack("<4sI", _read_at(fh, 12, 8, name, "WebP"))
    if length > size - 20:
        raise _damaged(name, "WebP", f"chunk {kind!r} declares {length} bytes; the file has {size}")
    if kind == b"VP8X":
        data = _read_at(fh, 20, 10, name, "WebP")
        width = int.from_bytes(data[4:7], "little") + 1
        height = int.from_bytes(data[7:10], "little") + 1
    elif kind == b"VP8L":
        data = _read_at(fh, 20, 5, name, "WebP")
        if data[0] != 0x2F:
            raise _damaged(name, "WebP", "lossless frame without its signature")
        (bits,) = struct.unpack("<I", data[1:5])
        width, height = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    elif kind == b"VP8 ":
        data = _read_at(fh, 20, 10, name, "WebP")
        if data[3:6] != b"\x9d\x01\x2a":
            raise _damaged(name, "WebP", "lossy frame without its start code")
        width, height = (v & 0x3FFF for v in struct.unpack("<HH", data[6:10]))
    else:
        raise _damaged(name, "WebP", f"first chunk is {kind!r}, not VP8, VP8L or VP8X")
    return RasterHeader("webp", width, height)
