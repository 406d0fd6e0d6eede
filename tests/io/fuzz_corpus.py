"""A seeded corpus of damaged image files: small valid seeds of every reader's format, mutated.

Shared by ``tests/io/test_fuzz.py`` (a few thousand cases) and ``bench/fuzz.py`` (more).
The same ``(seed, index)`` always gives the same bytes, so a failing case can be rebuilt.

Mutations are what damaged files look like in a studio (a flipped byte on a bad card, a copy
cut short) and what hostile ones do (a length field set to 0xFFFFFFFF, an offset past the
end): byte flips, truncation, and corruption of the format's own length and offset fields
(PNG chunk lengths and IHDR size, JPEG segment lengths and SOF size, WebP chunk sizes, HEIC
box sizes, TIFF offsets, counts and sizes in the first IFD, PSD section lengths, header
fields and RLE row counts).
"""

from __future__ import annotations

import io
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import imagecodecs
import numpy as np
import tifffile
from PIL import Image

_REPO = Path(__file__).resolve().parents[2]
# The psd-tools corpus sits in ``shared/`` beside the checkout (one level further up for a
# worktree under ``wt/``).
PSD_CORPUS = next(
    (
        p
        for p in (_REPO.parent / "shared/corpus/psd", _REPO.parent.parent / "shared/corpus/psd")
        if p.is_dir()
    ),
    _REPO.parent / "shared/corpus/psd",
)
# Small corpus files (copied, never modified): 8-bit RLE with transparency (PSD and PSB),
# 8 and 16-bit raw, 16-bit raw PSB, a layered 8-bit RLE file, grayscale, and one saved
# without a merged image (its layers are composited).
PSD_SEEDS = {
    "psd8_rle_alpha": "transparentbg-gimp.psd",
    "psb8_rle_alpha": "transparentbg-gimp.psb",
    "psd8_raw": "colormodes/4x4_8bit_rgb.psd",
    "psd16_raw": "16bit5x5.psd",
    "psb16_raw": "16bit5x5.psb",
    "psd8_rle_layers": "1layer.psd",
    "psd8_gray_raw": "colormodes/4x4_8bit_grayscale.psd",
    "psd8_layers_only": "layers-minimal/pixel-layer.psd",  # no merged image: the layers are composited
}


@dataclass(frozen=True)
class Seed:
    name: str
    format: str  # jpeg, png, webp, tiff, psd, heif
    data: bytes


def _picture(height: int, width: int, channels: int, dtype: type = np.uint8) -> np.ndarray:
    rng = np.random.default_rng(7)
    top = np.iinfo(dtype).max
    y, x = np.mgrid[0:height, 0:width]
    base = (x * top // max(1, width - 1) + y * top // max(1, height - 1)) // 2
    noise = rng.integers(0, max(2, top // 16), (height, width, channels))
    return np.asarray((base[..., None] + noise) % (top + 1), dtype=dtype)


def _pillow(image: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def _tiff(data: np.ndarray, **options: object) -> bytes:
    out = io.BytesIO()
    tifffile.imwrite(out, data, **options)  # type: ignore[arg-type]
    return out.getvalue()


def _psd16_rle() -> bytes:
    """A 16-bit RGB PSD with RLE merged data (none that small is in the corpus)."""
    height, width = 6, 7
    planes = _picture(height, width, 3, np.uint16)
    rows = [
        imagecodecs.packbits_encode(planes[y, :, c].astype(">u2").tobytes())
        for c in range(3)
        for y in range(height)
    ]
    header = struct.pack(">4sH6sHIIHH", b"8BPS", 1, b"\0" * 6, 3, height, width, 16, 3)
    table = np.array([len(r) for r in rows], dtype=">u2").tobytes()
    return header + struct.pack(">III", 0, 0, 0) + struct.pack(">H", 1) + table + b"".join(rows)


def _heic(image: Image.Image) -> bytes:
    import pillow_heif

    out = io.BytesIO()
    heif = pillow_heif.from_pillow(image)
    heif.save(out, quality=70)
    return out.getvalue()


def seeds() -> list[Seed]:
    """Small valid files of every format and layout the readers handle."""
    rgb = Image.fromarray(_picture(48, 64, 3))
    rgba = Image.fromarray(_picture(40, 56, 4))
    exif = Image.Exif()
    exif[0x0112] = 6
    found = [
        Seed("jpeg_exif", "jpeg", _pillow(rgb, "JPEG", quality=90, exif=exif.tobytes())),
        Seed("jpeg_progressive", "jpeg", _pillow(rgb.convert("L"), "JPEG", quality=80, progressive=True)),
        Seed("png8_rgba_text", "png", _pillow(rgba, "PNG", pnginfo=_png_text())),
        Seed("png8_palette", "png", _pillow(rgb.quantize(16), "PNG")),
        Seed("png16_rgb", "png", cv2.imencode(".png", _picture(32, 40, 3, np.uint16))[1].tobytes()),
        Seed("webp_lossy", "webp", _pillow(rgb, "WEBP", quality=80)),
        Seed("webp_lossless_alpha", "webp", _pillow(rgba, "WEBP", lossless=True)),
        Seed("tiff_strips_deflate", "tiff", _tiff(_picture(48, 64, 3), rowsperstrip=8, compression="zlib")),
        Seed(
            "tiff_tiles_lzw16",
            "tiff",
            _tiff(_picture(48, 40, 3, np.uint16), tile=(16, 16), compression="lzw", predictor=True),
        ),
        Seed("tiff_raw_rgba", "tiff", _tiff(_picture(40, 48, 4), rowsperstrip=5, extrasamples=[2])),
        Seed("tiff_packbits_gray", "tiff", _tiff(_picture(30, 50, 1)[..., 0], compression="packbits")),
        Seed("psd16_rle", "psd", _psd16_rle()),
        Seed("heic", "heif", _heic(rgb)),
    ]
    for name, relative in PSD_SEEDS.items():
        found.append(Seed(name, "psd", (PSD_CORPUS / relative).read_bytes()))
    return found


def _png_text() -> object:
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Software", "hotmatte fuzz seed")
    return info


# -- where the length and offset fields are ----------------------------------------------


def png_fields(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of every chunk length, and of IHDR's width and height."""
    fields, pos = [], 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        fields.append((pos, 4))
        if data[pos + 4 : pos + 8] == b"IHDR":
            fields += [(pos + 8, 4), (pos + 12, 4)]
        pos += 12 + length
    return fields


def jpeg_fields(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of every segment length before the scan, and of SOF height and width."""
    fields, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        (length,) = struct.unpack_from(">H", data, pos + 2)
        fields.append((pos + 2, 2))
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            fields += [(pos + 5, 2), (pos + 7, 2)]
        if marker == 0xDA:
            break
        pos += 2 + length
    return fields


def webp_fields(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of the RIFF size, every chunk size, and the canvas size fields."""
    fields, pos = [(4, 4)], 12
    while pos + 8 <= len(data):
        fields.append((pos + 4, 4))
        kind = data[pos : pos + 4]
        if kind == b"VP8X":
            fields += [(pos + 12, 3), (pos + 15, 3)]
        elif kind == b"VP8L":
            fields += [(pos + 9, 4)]
        elif kind == b"VP8 ":
            fields += [(pos + 14, 2), (pos + 16, 2)]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        pos += 8 + size + size % 2
    return fields


def tiff_fields(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of the first IFD's offset, entry count, and every entry's count and value."""
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack_from(order + "I", data, 4)
    fields = [(4, 4), (ifd, 2)]
    (entries,) = struct.unpack_from(order + "H", data, ifd)
    sizes = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 16: 8}
    for i in range(entries):
        entry = ifd + 2 + 12 * i
        _tag, kind, count, value = struct.unpack_from(order + "HHII", data, entry)
        item = sizes.get(kind, 1)
        fields += [(entry + 4, 4), (entry + 8, min(4, item * count) or 4)]
        if item * count > 4:  # the values live elsewhere: offsets, counts, bits per sample
            fields += [
                (value + item * k, item) for k in range(min(count, 8)) if value + item * (k + 1) <= len(data)
            ]
    return fields


def psd_fields(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of header fields, section lengths, and the first RLE row counts."""
    version = struct.unpack_from(">H", data, 4)[0]
    wide = 8 if version == 2 else 4
    fields = [(12, 2), (14, 4), (18, 4), (22, 2), (24, 2)]  # channels, height, width, depth, mode
    pos = 26
    fields.append((pos, 4))
    pos += 4 + struct.unpack_from(">I", data, pos)[0]
    fields.append((pos, 4))
    pos += 4 + struct.unpack_from(">I", data, pos)[0]
    fields.append((pos, wide))
    layers = int.from_bytes(data[pos : pos + wide], "big")
    if layers:
        fields.append((pos + wide, wide))  # layer info length
    pos += wide + layers
    fields.append((pos, 2))  # compression
    row_count = 2 if version == 1 else 4
    fields += [
        (pos + 2 + row_count * k, row_count) for k in range(8) if pos + 2 + row_count * (k + 1) <= len(data)
    ]
    return fields


def heif_fields(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of the top-level ISO-BMFF box sizes and the ``meta`` box's children's sizes."""
    fields, pos = [], 0
    while pos + 8 <= len(data):
        (size,) = struct.unpack_from(">I", data, pos)
        fields.append((pos, 4))
        if data[pos + 4 : pos + 8] == b"meta":  # a full box: 4 bytes of version and flags first
            inner = pos + 12
            while inner + 8 <= min(len(data), pos + size):
                fields.append((inner, 4))
                inner += max(8, struct.unpack_from(">I", data, inner)[0])
        if size < 8:
            break
        pos += size
    return fields


FIELDS: dict[str, Callable[[bytes], list[tuple[int, int]]]] = {
    "heif": heif_fields,
    "png": png_fields,
    "jpeg": jpeg_fields,
    "webp": webp_fields,
    "tiff": tiff_fields,
    "psd": psd_fields,
}


# -- mutations ---------------------------------------------------------------------------


def _flip(data: bytearray, rng: random.Random) -> str:
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return "flip"


def _truncate(data: bytearray, rng: random.Random) -> str:
    del data[rng.randrange(1, len(data)) :]
    return "truncate"


def _length(data: bytearray, rng: random.Random, fields: list[tuple[int, int]], little: bool) -> str:
    fields = [(o, s) for o, s in fields if o + s <= len(data)]
    if not fields:
        return _flip(data, rng)
    offset, size = rng.choice(fields)
    order: Literal["little", "big"] = "little" if little else "big"
    old = int.from_bytes(data[offset : offset + size], order)
    top = (1 << (8 * size)) - 1
    value = rng.choice(
        [0, 1, top, top >> 1, old + 1, max(0, old - 1), old * 2, old + len(data), rng.randint(0, top)]
    )
    data[offset : offset + size] = min(value, top).to_bytes(size, order)
    return "length"


def mutate(seed: Seed, rng: random.Random) -> tuple[bytes, str]:
    """One damaged copy of ``seed`` and the names of the mutations applied."""
    data = bytearray(seed.data)
    little = seed.format == "webp" or (seed.format == "tiff" and data[:2] == b"II")
    try:
        fields = FIELDS[seed.format](seed.data)
    except (struct.error, IndexError):
        fields = []
    applied = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        kind = rng.choice(("flip", "truncate", "length", "length"))
        if kind == "flip":
            applied.append(_flip(data, rng))
        elif kind == "truncate" and len(data) > 2:
            applied.append(_truncate(data, rng))
        else:
            applied.append(_length(data, rng, fields, little))
    return bytes(data), "+".join(applied)


@dataclass(frozen=True)
class Case:
    index: int
    seed: str
    format: str
    mutation: str
    path: Path


def build_cases(folder: Path, count: int, seed: int) -> list[Case]:
    """``count`` damaged files in ``folder``, spread over the seeds in turn."""
    folder.mkdir(parents=True, exist_ok=True)
    originals = seeds()
    cases = []
    for index in range(count):
        original = originals[index % len(originals)]
        data, mutation = mutate(original, random.Random(f"{seed}:{index}"))
        path = folder / f"{index:05d}-{original.name}.{original.format}"
        path.write_bytes(data)
        cases.append(Case(index, original.name, original.format, mutation, path))
    return cases


def copy_seeds(folder: Path) -> list[Path]:
    """The undamaged seeds as files (each must open cleanly: the fuzz test checks it)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for original in seeds():
        path = folder / f"{original.name}.{original.format}"
        path.write_bytes(original.data)
        paths.append(path)
    return paths
