"""TIFF reader against real files written by tifffile, compared with numpy references."""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageOps

from daemon.errors import CorruptInput, TooLarge, UnsupportedInput
from daemon.io._colour import srgb_profile_bytes
from daemon.io.tiff import open_tiff
from tests.conftest import cmyk_to_srgb_reference

HEIGHT, WIDTH = 301, 517  # not multiples of any tile or strip size
CMYK_PSD = Path("/work/shared/corpus/psd/colormodes/4x4_8bit_cmyk.psd")


def _pixels(dtype: type, channels: int, seed: int = 0) -> np.ndarray:
    """Smooth gradients plus noise: compresses like a photo, and every position differs."""
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = np.stack([(xx * 7 + yy * 3 + c * 50) % 997 for c in range(channels)], axis=2) / 997 * top
    noise = rng.integers(0, max(2, top // 64), base.shape)
    return np.clip(base + noise, 0, top).astype(dtype)


def _write(path: Path, data: np.ndarray, **options: object) -> Path:
    tifffile.imwrite(path, data, metadata=None, **options)  # type: ignore[arg-type]
    return path


def _bands(reader: object, rows: int) -> np.ndarray:
    pieces = list(reader.bands(rows))  # type: ignore[attr-defined]
    starts = [y0 for y0, _ in pieces]
    assert starts == list(range(0, len(pieces) * rows, rows))
    return np.concatenate([band for _, band in pieces], axis=0)


def _exif_reference(stored: np.ndarray, orientation: int) -> np.ndarray:
    """Oriented image according to Pillow's exif_transpose, independent of our code."""
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "PNG", exif=exif.tobytes())
    return np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(buffer.getvalue()))))


LAYOUTS: dict[str, dict[str, Any]] = {
    "tiled": {"tile": (64, 128)},
    "striped": {"rowsperstrip": 13},
    "bigtiff-tiled": {"tile": (64, 64), "bigtiff": True},
    "one-strip": {"rowsperstrip": HEIGHT},
}
COMPRESSIONS: dict[str, dict[str, Any]] = {
    "none": {},
    "lzw": {"compression": "lzw", "predictor": True},
    "deflate": {"compression": "adobe_deflate"},
    "zstd": {"compression": "zstd"},
    "packbits": {"compression": "packbits"},
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("compression", sorted(COMPRESSIONS))
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_lossless_rgb_reads_exactly(tmp_path: Path, layout: str, compression: str, dtype: type) -> None:
    expected = _pixels(dtype, 3)
    path = _write(
        tmp_path / "in.tif", expected, photometric="rgb", **LAYOUTS[layout], **COMPRESSIONS[compression]
    )
    with open_tiff(path, max_megapixels=10) as reader:
        assert (reader.info.width, reader.info.height, reader.info.bit_depth) == (
            WIDTH,
            HEIGHT,
            8 * expected.itemsize,
        )
        full = reader.read()
        assert full.dtype == expected.dtype
        np.testing.assert_array_equal(full, expected)
        np.testing.assert_array_equal(_bands(reader, 37), expected)


def test_planar_separate_samples(tmp_path: Path) -> None:
    expected = _pixels(np.uint16, 3)
    path = _write(
        tmp_path / "planar.tif",
        np.moveaxis(expected, 2, 0),
        photometric="rgb",
        planarconfig="separate",
        compression="lzw",
        rowsperstrip=16,
    )
    with open_tiff(path, max_megapixels=10) as reader:
        np.testing.assert_array_equal(reader.read(), expected)
        np.testing.assert_array_equal(_bands(reader, 50), expected)


def test_jpeg_compressed_ycbcr_tiles_decode_close_to_source(tmp_path: Path) -> None:
    source = _pixels(np.uint8, 3)
    path = _write(
        tmp_path / "jpeg.tif",
        source,
        photometric="rgb",
        tile=(64, 64),
        compression="jpeg",
        compressionargs={"level": 95},
    )
    with tifffile.TiffFile(path) as tif:
        assert tif.pages.first.photometric == tifffile.PHOTOMETRIC.YCBCR  # what tifffile stores for RGB
    with open_tiff(path, max_megapixels=10) as reader:
        assert reader.info.colour == "rgb"
        full = reader.read()
        np.testing.assert_array_equal(_bands(reader, 40), full)
    assert np.abs(full.astype(int) - source).mean() < 6


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_gray_becomes_rgb_and_min_is_white_is_inverted(tmp_path: Path, dtype: type) -> None:
    gray = _pixels(dtype, 1)[:, :, 0]
    black = _write(tmp_path / "black.tif", gray, photometric="minisblack", compression="lzw")
    white = _write(tmp_path / "white.tif", gray, photometric="miniswhite", compression="lzw")
    with open_tiff(black, max_megapixels=10) as reader:
        assert (reader.info.colour, reader.info.has_alpha) == ("gray", False)
        np.testing.assert_array_equal(reader.read(), np.repeat(gray[:, :, None], 3, axis=2))
    with open_tiff(white, max_megapixels=10) as reader:
        inverted = np.iinfo(dtype).max - gray
        np.testing.assert_array_equal(reader.read(), np.repeat(inverted[:, :, None], 3, axis=2))


def test_gray_with_alpha(tmp_path: Path) -> None:
    data = _pixels(np.uint16, 2)
    path = _write(
        tmp_path / "ga.tif", data, photometric="minisblack", extrasamples=["unassalpha"], tile=(32, 32)
    )
    with open_tiff(path, max_megapixels=10) as reader:
        assert reader.info.has_alpha
        out = reader.read()
    np.testing.assert_array_equal(out[:, :, :3], np.repeat(data[:, :, :1], 3, axis=2))
    np.testing.assert_array_equal(out[:, :, 3], data[:, :, 1])


def test_unassociated_alpha_kept_as_is(tmp_path: Path) -> None:
    expected = _pixels(np.uint16, 4)
    path = _write(
        tmp_path / "rgba.tif", expected, photometric="rgb", extrasamples=["unassalpha"], compression="lzw"
    )
    with open_tiff(path, max_megapixels=10) as reader:
        assert reader.info.has_alpha and reader.info.channels == 4 and not reader.alpha_associated
        np.testing.assert_array_equal(reader.read(), expected)
        assert reader.proxy(200).shape[2] == 3


def test_associated_alpha_is_unpremultiplied(tmp_path: Path) -> None:
    straight = _pixels(np.uint8, 4)
    alpha = straight[:, :, 3:].astype(np.float64)
    premultiplied = straight.copy()
    premultiplied[:, :, :3] = np.rint(straight[:, :, :3] * alpha / 255).astype(np.uint8)
    path = _write(tmp_path / "assoc.tif", premultiplied, photometric="rgb", extrasamples=["assocalpha"])
    with open_tiff(path, max_megapixels=10) as reader:
        assert reader.alpha_associated
        out = reader.read()
    np.testing.assert_array_equal(out[:, :, 3], straight[:, :, 3])
    visible = straight[:, :, 3] >= 64  # where premultiplying kept enough precision to get it back
    error = np.abs(out[:, :, :3].astype(int) - straight[:, :, :3])[visible]
    assert error.max() <= 2


def test_unspecified_extra_sample_is_not_alpha(tmp_path: Path) -> None:
    data = _pixels(np.uint8, 4)
    path = _write(tmp_path / "extra.tif", data, photometric="rgb", extrasamples=["unspecified"])
    with open_tiff(path, max_megapixels=10) as reader:
        assert not reader.info.has_alpha and reader.info.channels == 3
        np.testing.assert_array_equal(reader.read(), data[:, :, :3])


def test_cmyk_without_profile_uses_documented_naive_formula(tmp_path: Path) -> None:
    cmyk = _pixels(np.uint8, 4)
    path = _write(tmp_path / "cmyk.tif", cmyk, photometric="separated", compression="lzw")
    with open_tiff(path, max_megapixels=10) as reader:
        assert reader.info.colour == "cmyk" and reader.naive_cmyk
        assert reader.info.icc == srgb_profile_bytes()
        out = reader.read()
    c = cmyk.astype(float) / 255
    expected = 255 * (1 - c[:, :, :3]) * (1 - c[:, :, 3:])
    assert np.abs(out.astype(float) - expected).max() <= 1


def _psd_icc(path: Path) -> bytes:
    """The ICC profile (image resource 1039) of a PSD: a real CMYK profile from the corpus."""
    data = path.read_bytes()
    pos = 26 + 4 + struct.unpack(">I", data[26:30])[0]
    end = pos + 4 + struct.unpack(">I", data[pos : pos + 4])[0]
    pos += 4
    while pos < end:
        resource = struct.unpack(">H", data[pos + 4 : pos + 6])[0]
        name = data[pos + 6] + 1
        pos += 6 + name + name % 2
        size = struct.unpack(">I", data[pos : pos + 4])[0]
        if resource == 1039:
            return data[pos + 4 : pos + 4 + size]
        pos += 4 + size + size % 2
    raise AssertionError("no ICC profile in the PSD")


@pytest.mark.skipif(not CMYK_PSD.exists(), reason="corpus not available")
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_cmyk_with_embedded_profile_goes_through_littlecms(tmp_path: Path, dtype: type) -> None:
    icc = _psd_icc(CMYK_PSD)
    cmyk = _pixels(dtype, 4)
    path = _write(tmp_path / "cmyk.tif", cmyk, photometric="separated", iccprofile=icc, tile=(64, 64))
    with open_tiff(path, max_megapixels=10) as reader:
        assert not reader.naive_cmyk and reader.source_icc == icc
        assert reader.info.icc == srgb_profile_bytes()
        out = reader.read()
        assert out.dtype == dtype
        np.testing.assert_array_equal(_bands(reader, 100), out)
    cmyk8 = cmyk if dtype == np.uint8 else ((cmyk.astype(np.uint32) + 128) // 257).astype(np.uint8)
    image = Image.frombytes("CMYK", (WIDTH, HEIGHT), cmyk8.tobytes())
    expected = np.asarray(cmyk_to_srgb_reference(image, icc))
    scale = 1 if dtype == np.uint8 else 257
    np.testing.assert_array_equal(out, expected.astype(dtype) * scale)
    naive = 255 * (1 - cmyk8[:, :, :3] / 255) * (1 - cmyk8[:, :, 3:] / 255)
    assert np.abs(expected - naive).mean() > 5  # the profile really changed the colours


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("layout", ["tiled", "striped"])
def test_orientation_applied_to_read_bands_and_proxy(tmp_path: Path, orientation: int, layout: str) -> None:
    stored = _pixels(np.uint8, 3)
    path = _write(
        tmp_path / "o.tif",
        stored,
        photometric="rgb",
        compression="lzw",
        extratags=[(274, "H", 1, orientation, True)],
        **LAYOUTS[layout],
    )
    expected = _exif_reference(stored, orientation)
    # A small window forces several column windows for the transposing orientations.
    with open_tiff(path, max_megapixels=10, window_bytes=60_000) as reader:
        assert reader.info.orientation == orientation
        assert reader.info.oriented_size == (expected.shape[1], expected.shape[0])
        np.testing.assert_array_equal(reader.read(), expected)
        np.testing.assert_array_equal(_bands(reader, 29), expected)
        proxy = reader.proxy(128)
    reference = cv2.resize(expected, (proxy.shape[1], proxy.shape[0]), interpolation=cv2.INTER_AREA)
    assert max(proxy.shape[:2]) == 128
    difference = np.abs(proxy.astype(int) - reference)
    assert np.percentile(difference, 90) <= 1 and difference.mean() < 2.5


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_proxy_is_an_area_average_in_8_bit(tmp_path: Path, dtype: type) -> None:
    stored = _pixels(dtype, 3)
    path = _write(tmp_path / "p.tif", stored, photometric="rgb", tile=(64, 64), compression="zstd")
    with open_tiff(path, max_megapixels=10) as reader:
        proxy = reader.proxy(100)
    assert proxy.dtype == np.uint8 and proxy.shape == (58, 100, 3)
    as8 = stored if dtype == np.uint8 else (stored / 257).round().astype(np.uint8)
    reference = cv2.resize(as8, (100, 58), interpolation=cv2.INTER_AREA)
    # Two-stage area shrinking differs from a one-step one only around the sharp edges of the pattern.
    difference = np.abs(proxy.astype(int) - reference)
    assert np.percentile(difference, 90) <= 1 and difference.mean() < 2.5


def test_proxy_comes_from_pyramid_level(tmp_path: Path) -> None:
    base = _pixels(np.uint8, 3)
    level = np.full((HEIGHT // 2, WIDTH // 2, 3), 77, np.uint8)  # distinct, so we know where it came from
    path = tmp_path / "pyramid.tif"
    with tifffile.TiffWriter(path) as writer:
        writer.write(base, photometric="rgb", tile=(64, 64), subifds=1, metadata=None)
        writer.write(level, photometric="rgb", tile=(64, 64), subfiletype=1, metadata=None)
    with open_tiff(path, max_megapixels=10) as reader:
        assert np.all(reader.proxy(200) == 77)
        assert not np.all(reader.proxy(300) == 77)  # level too small for 300 px: read the base
        np.testing.assert_array_equal(reader.read(), base)


def test_icc_and_dpi_round_trip(tmp_path: Path) -> None:
    icc = srgb_profile_bytes()
    path = _write(
        tmp_path / "meta.tif",
        _pixels(np.uint16, 3),
        photometric="rgb",
        iccprofile=icc,
        resolution=(300, 240),
        resolutionunit="INCH",
    )
    with open_tiff(path, max_megapixels=10) as reader:
        assert reader.info.icc == icc and reader.source_icc == icc
        assert reader.info.dpi == pytest.approx((300, 240))


def test_dpi_in_centimetres_is_converted(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "cm.tif",
        _pixels(np.uint8, 3),
        photometric="rgb",
        resolution=(100, 100),
        resolutionunit="CENTIMETER",
    )
    with open_tiff(path, max_megapixels=10) as reader:
        assert reader.info.dpi == pytest.approx((254, 254))
        assert reader.info.icc is None


def test_gray_profile_is_not_passed_on_to_rgb_pixels(tmp_path: Path) -> None:
    gray_icc = srgb_profile_bytes()[:16] + b"GRAY" + srgb_profile_bytes()[20:]
    path = _write(
        tmp_path / "g.tif", _pixels(np.uint8, 1)[:, :, 0], photometric="minisblack", iccprofile=gray_icc
    )
    with open_tiff(path, max_megapixels=10) as reader:
        assert reader.source_icc == gray_icc and reader.info.icc is None


def test_too_large_is_refused_from_the_header(tmp_path: Path) -> None:
    path = _write(tmp_path / "big.tif", _pixels(np.uint8, 3), photometric="rgb")
    with pytest.raises(TooLarge, match="over max_megapixels"):
        open_tiff(path, max_megapixels=0.1)


def test_huge_declared_size_is_refused_without_decoding(tmp_path: Path) -> None:
    path = _write(tmp_path / "bomb.tif", _pixels(np.uint8, 3), photometric="rgb", tile=(64, 64))
    with tifffile.TiffFile(path, mode="r+") as tif:  # claim 60000x60000 in the header only
        tif.pages.first.tags["ImageWidth"].overwrite(60000)
        tif.pages.first.tags["ImageLength"].overwrite(60000)
    with pytest.raises(TooLarge, match=r"3600\.0 MP"):
        open_tiff(path, max_megapixels=300)


def test_one_huge_compressed_strip_is_refused_but_uncompressed_streams(tmp_path: Path) -> None:
    data = _pixels(np.uint8, 3)
    packed = _write(tmp_path / "z.tif", data, photometric="rgb", compression="lzw", rowsperstrip=HEIGHT)
    with pytest.raises(TooLarge, match="cannot be read in bounded memory"):
        open_tiff(packed, max_megapixels=10, max_segment_bytes=100_000)
    raw = _write(tmp_path / "raw.tif", data, photometric="rgb", rowsperstrip=HEIGHT)
    with open_tiff(raw, max_megapixels=10, max_segment_bytes=100_000) as reader:
        np.testing.assert_array_equal(_bands(reader, 40), data)


def test_truncated_file_is_corrupt(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "t.tif", _pixels(np.uint16, 3), photometric="rgb", tile=(64, 64), compression="lzw"
    )
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2])
    with pytest.raises(CorruptInput, match="truncated"):
        open_tiff(path, max_megapixels=10)
    path.write_bytes(content[:100])
    with pytest.raises(CorruptInput):
        open_tiff(path, max_megapixels=10)


def test_damaged_pixel_data_is_corrupt(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "d.tif", _pixels(np.uint8, 3), photometric="rgb", tile=(64, 64), compression="zstd"
    )
    with tifffile.TiffFile(path) as tif:
        offset = tif.pages.first.dataoffsets[5]
    content = bytearray(path.read_bytes())
    content[offset : offset + 64] = b"\xff" * 64
    path.write_bytes(bytes(content))
    with open_tiff(path, max_megapixels=10) as reader, pytest.raises(CorruptInput, match="cannot be decoded"):
        reader.read()


def test_not_a_tiff_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "x.tif"
    path.write_bytes(b"this is not an image at all" * 10)
    with pytest.raises(CorruptInput):
        open_tiff(path, max_megapixels=10)


def test_float_and_palette_are_unsupported(tmp_path: Path) -> None:
    floats = _write(tmp_path / "f.tif", _pixels(np.uint8, 3).astype(np.float32), photometric="rgb")
    with pytest.raises(UnsupportedInput, match="32-bit float"):
        open_tiff(floats, max_megapixels=10)
    palette = _write(
        tmp_path / "p.tif",
        _pixels(np.uint8, 1)[:, :, 0],
        photometric="palette",
        colormap=np.zeros((3, 256), np.uint16),
    )
    with pytest.raises(UnsupportedInput, match="PALETTE"):
        open_tiff(palette, max_megapixels=10)
