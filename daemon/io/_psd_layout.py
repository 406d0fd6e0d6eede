"""Where everything is in a PSD/PSB file, read without decoding a pixel.

Written by hand rather than with psd-tools because psd-tools reads the whole
file (every layer's pixels) on open: 4–7 GB for a 108 MP PSB. Here only the
header, the image resources we need and the *lengths* of the layer section are
read; the merged image data is located, never loaded.

Layout (Adobe "Photoshop File Formats Specification"):

1. header, 26 bytes;
2. colour mode data: 4-byte length + data;
3. image resources: 4-byte length + ``8BIM`` blocks;
4. layer and mask information: 4-byte (PSD) or 8-byte (PSB) length + data;
5. merged image data: 2-byte compression + planar channel data to the end.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import BinaryIO

from daemon.errors import CorruptInput, TooLarge, UnsupportedInput

HEADER = struct.Struct(">4sH6sHIIHH")

MODE_NAMES = {
    0: "bitmap",
    1: "grayscale",
    2: "indexed",
    3: "rgb",
    4: "cmyk",
    7: "multichannel",
    8: "duotone",
    9: "lab",
}
# The colour modes we turn into RGB, and how many stored channels carry colour.
COLOUR_CHANNELS = {1: 1, 3: 3, 4: 4}
SUPPORTED_DEPTHS = (8, 16, 32)

RESOURCE_RESOLUTION = 1005
RESOURCE_ICC = 1039
RESOURCE_ALPHA_IDS = 1053
RESOURCE_VERSION_INFO = 1057
RESOURCE_DISPLAY_INFO = 1077
DISPLAY_INFO_ENTRY = 13  # colour space 2, colour 8, opacity 2, kind 1
DISPLAY_KIND_SPOT = 2

# Global tagged blocks that Photoshop writes when the merged image has transparency.
MERGED_TRANSPARENCY_KEYS = frozenset({b"Mtrn", b"Mt16", b"Mt32"})
LAYER_INFO_KEYS = frozenset({b"Layr", b"Lr16", b"Lr32"})
# In a PSB these tagged blocks have an 8-byte length, all others a 4-byte one.
PSB_LONG_LENGTH_KEYS = frozenset(
    {
        b"LMsk", b"Lr16", b"Lr32", b"Layr", b"Mt16", b"Mt32", b"Mtrn", b"Alph", b"FMsk",
        b"lnk2", b"lnk3", b"lnkE", b"FEid", b"FXid", b"FELS", b"PxSD", b"pths", b"extd",
        b"extn", b"cinf", b"artd",
    }
)  # fmt: skip
# Photoshop's limits: 30,000 px a side for PSD, 300,000 for PSB.
MAX_SIDE = {1: 30_000, 2: 300_000}


@dataclass(frozen=True)
class PsdLayout:
    """The facts about one file that the pixel reader needs."""

    version: int  # 1 = PSD, 2 = PSB
    channels: int
    height: int
    width: int
    depth: int
    mode: int
    icc: bytes | None
    dpi: tuple[float, float] | None
    alpha_ids: tuple[int, ...] | None
    has_real_merged_data: bool
    layer_count: int  # signed; negative = first alpha channel is the merged transparency
    has_spot_channels: bool = False
    global_keys: frozenset[bytes] = field(default_factory=frozenset)
    image_data_offset: int = 0  # offset of the 2-byte compression field
    file_size: int = 0

    @property
    def mode_name(self) -> str:
        return MODE_NAMES.get(self.mode, f"mode {self.mode}")

    @property
    def colour_channels(self) -> int:
        return COLOUR_CHANNELS[self.mode]

    @property
    def transparency_index(self) -> int | None:
        """Which stored channel is the merged image's transparency, if any.

        Photoshop's rules, as psd-tools also reads them: a negative layer count
        or a "saving merged transparency" block says the first extra channel is
        transparency; otherwise the alpha identifiers resource marks it with id 0;
        extra channels of a layered file without that mark are saved selections
        or spot colours, not transparency.
        """
        first_extra = self.colour_channels
        if self.channels <= first_extra:
            return None
        if self.layer_count < 0 or self.global_keys & MERGED_TRANSPARENCY_KEYS:
            return first_extra
        if self.alpha_ids:
            if 0 in self.alpha_ids:
                index = self.channels - len(self.alpha_ids) + self.alpha_ids.index(0)
                return index if first_extra <= index < self.channels else None
            return None
        if self.layer_count > 0:
            return None
        return first_extra


def read_layout(fp: BinaryIO, *, max_megapixels: float) -> PsdLayout:
    """Parse everything before the pixels; raise before reading past the header
    when the file is too large or of a mode we cannot convert."""
    file_size = os.fstat(fp.fileno()).st_size
    version, channels, height, width, depth, mode = _read_header(fp)
    if width * height / 1e6 > max_megapixels:
        raise TooLarge(
            f"{width}×{height} is {width * height / 1e6:.1f} MP, over max_megapixels ({max_megapixels:g}); "
            "refused from the header, before decoding"
        )
    if mode not in COLOUR_CHANNELS:
        raise UnsupportedInput(f"unsupported: {MODE_NAMES.get(mode, f'colour mode {mode}')}")
    if depth not in SUPPORTED_DEPTHS:
        raise UnsupportedInput(f"unsupported: {depth}-bit {MODE_NAMES[mode]}")
    if channels < COLOUR_CHANNELS[mode]:
        raise CorruptInput(f"{MODE_NAMES[mode]} file with only {channels} channel(s)")

    colour_mode_length = _read_uint(fp, 4, "colour mode data length")
    fp.seek(colour_mode_length, os.SEEK_CUR)
    resources_length = _read_uint(fp, 4, "image resources length")
    resources_start = fp.tell()
    _check_within(resources_start + resources_length, file_size, "image resources")
    resources = _read_resources(fp, resources_length)

    lm_length = _read_uint(fp, 4 * version, "layer and mask section length")
    lm_start = fp.tell()
    _check_within(lm_start + lm_length, file_size, "layer and mask section")
    layer_count, global_keys = _read_layer_section(fp, lm_length, version)
    image_data_offset = lm_start + lm_length
    _check_within(image_data_offset + 2, file_size, "merged image data")

    version_info = resources.get(RESOURCE_VERSION_INFO)
    return PsdLayout(
        version=version,
        channels=channels,
        height=height,
        width=width,
        depth=depth,
        mode=mode,
        icc=resources.get(RESOURCE_ICC) or None,
        dpi=_parse_resolution(resources.get(RESOURCE_RESOLUTION)),
        alpha_ids=_parse_alpha_ids(resources.get(RESOURCE_ALPHA_IDS)),
        has_real_merged_data=version_info is None or len(version_info) < 5 or version_info[4] != 0,
        layer_count=layer_count,
        has_spot_channels=_has_spot_channels(resources.get(RESOURCE_DISPLAY_INFO)),
        global_keys=global_keys,
        image_data_offset=image_data_offset,
        file_size=file_size,
    )


def _read_header(fp: BinaryIO) -> tuple[int, int, int, int, int, int]:
    raw = fp.read(HEADER.size)
    if len(raw) < HEADER.size:
        raise CorruptInput(f"not a PSD/PSB file: only {len(raw)} bytes")
    signature, version, _reserved, channels, height, width, depth, mode = HEADER.unpack(raw)
    if signature != b"8BPS":
        raise CorruptInput(f"not a PSD/PSB file: signature {signature!r}")
    if version not in (1, 2):
        raise UnsupportedInput(f"unsupported: PSD format version {version}")
    if not (1 <= channels <= 56):
        raise CorruptInput(f"PSD header declares {channels} channels")
    if not (1 <= width <= MAX_SIDE[version] and 1 <= height <= MAX_SIDE[version]):
        raise CorruptInput(f"PSD header declares an impossible size {width}x{height}")
    return version, channels, height, width, depth, mode


def _read_exact(fp: BinaryIO, n: int, what: str) -> bytes:
    data = fp.read(n)
    if len(data) != n:
        raise CorruptInput(f"truncated PSD: file ends inside the {what}")
    return data


def _read_uint(fp: BinaryIO, size: int, what: str) -> int:
    return int.from_bytes(_read_exact(fp, size, what), "big")


def _check_within(end: int, file_size: int, what: str) -> None:
    if end > file_size:
        raise CorruptInput(f"truncated PSD: the {what} ends at byte {end}, the file has {file_size}")


def _read_resources(fp: BinaryIO, length: int) -> dict[int, bytes]:
    """The data of the resources we use, keyed by id; the others are skipped."""
    wanted = (
        RESOURCE_RESOLUTION,
        RESOURCE_ICC,
        RESOURCE_ALPHA_IDS,
        RESOURCE_VERSION_INFO,
        RESOURCE_DISPLAY_INFO,
    )
    end = fp.tell() + length
    found: dict[int, bytes] = {}
    while fp.tell() + 12 <= end:
        signature = _read_exact(fp, 4, "image resources")
        if signature not in (b"8BIM", b"MeSa", b"AgHg", b"PHUT", b"DCSR"):
            raise CorruptInput(f"damaged image resource block (signature {signature!r})")
        resource_id = _read_uint(fp, 2, "image resources")
        name_length = _read_uint(fp, 1, "image resources")
        fp.seek(name_length + (name_length + 1) % 2, os.SEEK_CUR)  # Pascal string padded to even
        size = _read_uint(fp, 4, "image resources")
        if fp.tell() + size > end:
            raise CorruptInput(f"image resource {resource_id} runs past its section")
        if resource_id in wanted:
            found[resource_id] = _read_exact(fp, size, f"image resource {resource_id}")
            fp.seek(size % 2, os.SEEK_CUR)
        else:
            fp.seek(size + size % 2, os.SEEK_CUR)
    fp.seek(end)
    return found


def _parse_resolution(data: bytes | None) -> tuple[float, float] | None:
    # ResolutionInfo: hRes 16.16 fixed, hResUnit, widthUnit, vRes 16.16, vResUnit,
    # heightUnit. The values are pixels per inch whatever unit the user displays.
    if data is None or len(data) < 16:
        return None
    h_fixed, _, _, v_fixed, _, _ = struct.unpack(">IHHIHH", data[:16])
    if h_fixed == 0 or v_fixed == 0:
        return None
    return h_fixed / 65536.0, v_fixed / 65536.0


def _parse_alpha_ids(data: bytes | None) -> tuple[int, ...] | None:
    if not data:
        return None
    count = len(data) // 4
    return struct.unpack(f">{count}I", data[: count * 4])


def _has_spot_channels(data: bytes | None) -> bool:
    # DisplayInfo: a 4-byte version, then one entry per extra channel.
    if data is None or len(data) < 4:
        return False
    entries = data[4:]
    kinds = entries[DISPLAY_INFO_ENTRY - 1 :: DISPLAY_INFO_ENTRY]
    return DISPLAY_KIND_SPOT in kinds


def _read_layer_section(fp: BinaryIO, length: int, version: int) -> tuple[int, frozenset[bytes]]:
    """The signed layer count and the keys of the global tagged blocks.

    Layer records and pixels are skipped by their lengths. 16 and 32-bit files
    keep their layers in an ``Lr16``/``Lr32`` tagged block instead, whose data
    starts with the same signed count.
    """
    end = fp.tell() + length
    if length == 0:
        return 0, frozenset()
    info_length = _read_uint(fp, 4 * version, "layer info length")
    info_start = fp.tell()
    if info_start + info_length > end:
        raise CorruptInput("the layer info runs past the layer and mask section")
    layer_count = _read_signed_count(fp) if info_length >= 2 else 0
    fp.seek(info_start + info_length)

    if fp.tell() + 4 <= end:
        marker = _read_exact(fp, 4, "layer and mask section")
        fp.seek(-4, os.SEEK_CUR)
        if marker not in (b"8BIM", b"8B64"):
            mask_length = _read_uint(fp, 4, "global layer mask info")
            fp.seek(mask_length, os.SEEK_CUR)

    keys: set[bytes] = set()
    while fp.tell() + 12 <= end:
        signature, key = struct.unpack(">4s4s", _read_exact(fp, 8, "tagged block"))
        if signature not in (b"8BIM", b"8B64"):
            break  # padding or data we do not understand; nothing after it matters to us
        size_bytes = 8 if version == 2 and key in PSB_LONG_LENGTH_KEYS else 4
        size = _read_uint(fp, size_bytes, "tagged block length")
        data_start = fp.tell()
        if data_start + size > end:
            raise CorruptInput(f"tagged block {key!r} runs past the layer and mask section")
        keys.add(key)
        if key in LAYER_INFO_KEYS and layer_count == 0 and size >= 2:
            layer_count = _read_signed_count(fp)
        fp.seek(data_start + size + (-size) % 4)
    fp.seek(end)
    return layer_count, frozenset(keys)


def _read_signed_count(fp: BinaryIO) -> int:
    return int(struct.unpack(">h", _read_exact(fp, 2, "layer count"))[0])
