"""Choosing a reader from the file's first bytes, never from its name."""

from __future__ import annotations

from pathlib import Path

from daemon.errors import CorruptInput, UnsupportedInput
from daemon.io._types import ImageReader
from daemon.io.heif import HEIF_BRANDS
from daemon.io.raster import RasterReader

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "jpeg"),
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"II*\x00", "tiff"),
    (b"MM\x00*", "tiff"),
    (b"II+\x00", "tiff"),
    (b"MM\x00+", "tiff"),
    (b"8BPS", "psd"),
)


def sniff_format(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except IsADirectoryError:
        raise UnsupportedInput(f"{path.name}: is a directory") from None
    if not head:
        raise CorruptInput(f"{path.name}: empty file (0 bytes)")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS:
        return "heif"
    for signature, fmt in _SIGNATURES:
        if head.startswith(signature):
            return fmt
    raise UnsupportedInput(f"{path.name}: unsupported: not a JPEG, PNG, WebP, TIFF, PSD/PSB or HEIC file")


def open_image(path: Path, *, max_megapixels: float, psd_layer_budget_megapixels: float = 4.0) -> ImageReader:
    """Open ``path`` with the reader for its real format; header checks run before any decode."""
    fmt = sniff_format(path)
    if fmt == "tiff":
        from daemon.io.tiff import open_tiff

        return open_tiff(path, max_megapixels=max_megapixels)
    if fmt == "psd":
        from daemon.io.psd import open_psd

        return open_psd(
            path, max_megapixels=max_megapixels, layer_budget_megapixels=psd_layer_budget_megapixels
        )
    if fmt == "heif":
        from daemon.io.heif import open_heif

        return open_heif(path, max_megapixels=max_megapixels)
    return RasterReader(path, max_megapixels=max_megapixels)
