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


def sniff_format(path: Path, *, name: str | None = None) -> str:
    """The format of ``path`` from its first bytes; ``name`` is how messages call the file."""
    shown = name or path.name
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except IsADirectoryError:
        raise UnsupportedInput(f"{shown}: is a directory") from None
    if not head:
        raise CorruptInput(f"{shown}: empty file (0 bytes)")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp" and head[8:12] in HEIF_BRANDS:
        return "heif"
    for signature, fmt in _SIGNATURES:
        if head.startswith(signature):
            return fmt
    raise UnsupportedInput(f"{shown}: unsupported: not a JPEG, PNG, WebP, TIFF, PSD/PSB or HEIC file")


def open_image(
    path: Path, *, max_megapixels: float, psd_layer_budget_megapixels: float = 4.0, name: str | None = None
) -> ImageReader:
    """Open ``path`` with the reader for its real format; header checks run before any decode.

    ``path`` may be :func:`daemon.beneath.fd_path` of a descriptor the caller opened (and keeps
    open until the reader is closed), so the file is the one checked, not whatever its name
    leads to later; ``name`` (the file's name in its hot folder) is then what messages show.
    """
    fmt = sniff_format(path, name=name)
    if fmt == "tiff":
        from daemon.io.tiff import open_tiff

        return open_tiff(path, max_megapixels=max_megapixels, name=name)
    if fmt == "psd":
        from daemon.io.psd import open_psd

        return open_psd(
            path,
            max_megapixels=max_megapixels,
            layer_budget_megapixels=psd_layer_budget_megapixels,
            name=name,
        )
    if fmt == "heif":
        from daemon.io.heif import open_heif

        return open_heif(path, max_megapixels=max_megapixels, name=name)
    return RasterReader(path, max_megapixels=max_megapixels, name=name)
