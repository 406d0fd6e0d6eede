"""Band writers: exact round trips read back by independent decoders (tifffile, cv2, Pillow)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms

from daemon.errors import UnsupportedInput
from daemon.finish.outputs import Destination, write_atomically
from daemon.io import writers
from daemon.io._colour import srgb_profile_bytes
from daemon.io.writers import WEBP_MAX_SIDE, OutputFormat, check_output_size, open_writer

HEIGHT, WIDTH = 1100, 700  # more than two 512-row tile strips, width not a tile multiple
# Baseline and Photoshop-documented TIFF tags; anything else may upset strict readers.
STANDARD_TAGS = {
    254,
    256,
    257,
    258,
    259,
    262,
    277,
    282,
    283,
    284,
    296,
    305,
    317,
    322,
    323,
    324,
    325,
    338,
    339,
    34675,
}


def _image(channels: int, dtype: type, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    top = np.iinfo(dtype).max
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    smooth = np.stack([(xx * (c + 1) + yy * 2) % 1000 for c in range(channels)], axis=2) / 1000 * top
    return np.clip(smooth + rng.integers(0, top // 100 + 2, smooth.shape), 0, top).astype(dtype)


def _write(fmt: OutputFormat, path: Path, pixels: np.ndarray, band_rows: int = 333, **options: Any) -> Path:
    writer = open_writer(
        fmt,
        path,
        width=pixels.shape[1],
        height=pixels.shape[0],
        channels=pixels.shape[2],
        bit_depth=8 * pixels.itemsize,
        **options,
    )
    for y0 in range(0, pixels.shape[0], band_rows):
        writer.write_band(pixels[y0 : y0 + band_rows])
    writer.close()
    return path


def _cv2_rgb(path: Path) -> np.ndarray:
    pixels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert pixels is not None
    return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB if pixels.shape[2] == 3 else cv2.COLOR_BGRA2RGBA)


@pytest.mark.parametrize("compression", ["lzw", "deflate", "none"])
@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tiff_round_trip_exact(tmp_path: Path, compression: str, channels: int, dtype: type) -> None:
    pixels = _image(channels, dtype)
    icc = srgb_profile_bytes()
    path = _write("tiff", tmp_path / "out.tif", pixels, tiff_compression=compression, icc=icc, dpi=(300, 200))
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        np.testing.assert_array_equal(page.asarray(), pixels)
        assert page.is_tiled and (page.tilelength, page.tilewidth) == (512, 512)
        assert page.compression == {"lzw": 5, "deflate": 8, "none": 1}[compression]
        assert page.predictor == (1 if compression == "none" else 2)
        assert page.iccprofile == icc
        assert page.get_resolution() == pytest.approx((300, 200)) and page.resolutionunit == 2
        assert not tif.is_bigtiff
        if channels == 4:
            assert page.extrasamples == (2,)  # unassociated alpha
        assert set(page.tags.keys()) <= STANDARD_TAGS
    if channels == 3:
        np.testing.assert_array_equal(_cv2_rgb(path), pixels)  # libtiff agrees
    elif dtype == np.uint8:
        # cv2 reads RGBA through libtiff's RGBA interface, which premultiplies; Pillow does not.
        with Image.open(path) as image:
            assert image.mode == "RGBA"
            np.testing.assert_array_equal(np.asarray(image), pixels)


def test_tiff_bigtiff_when_over_threshold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writers, "BIGTIFF_ABOVE", 1000)  # the real threshold needs a 3.5 GB file
    pixels = _image(4, np.uint16)
    path = _write("tiff", tmp_path / "big.tif", pixels)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff
        np.testing.assert_array_equal(tif.asarray(), pixels)


def test_tiff_bands_of_any_height_including_single_rows(tmp_path: Path) -> None:
    pixels = _image(4, np.uint8)[:530]
    path = _write("tiff", tmp_path / "rows.tif", pixels, band_rows=1)
    np.testing.assert_array_equal(tifffile.imread(path), pixels)


@pytest.mark.parametrize("fmt", ["tiff", "png", "jpeg", "webp"])
def test_incomplete_image_raises_and_atomic_publish_leaves_nothing(tmp_path: Path, fmt: OutputFormat) -> None:
    pixels = _image(3, np.uint8)
    destination = tmp_path / f"out.{fmt}"

    def write_half(tmp: Path) -> None:
        writer = open_writer(fmt, tmp, width=WIDTH, height=HEIGHT, channels=3, bit_depth=8)
        writer.write_band(pixels[: HEIGHT // 2])
        writer.close()

    with pytest.raises(ValueError, match="rows were written"):
        write_atomically(Destination.at(destination), write_half)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["tiff", "png", "jpeg", "webp"])
def test_wrong_band_shape_is_rejected(tmp_path: Path, fmt: OutputFormat) -> None:
    writer = open_writer(fmt, tmp_path / "x", width=WIDTH, height=HEIGHT, channels=3, bit_depth=8)
    with pytest.raises(ValueError, match="does not fit"):
        writer.write_band(np.zeros((10, WIDTH, 4), np.uint8))
    with pytest.raises(ValueError, match="does not fit"):
        writer.write_band(np.zeros((10, WIDTH, 3), np.uint16))
    writer.abort()


def test_atomic_publish_of_a_complete_tiff(tmp_path: Path) -> None:
    pixels = _image(4, np.uint16)
    final = Destination.at(tmp_path / "final.tif")
    destination = write_atomically(final, lambda tmp: _write("tiff", tmp, pixels) and None)
    assert [p.name for p in tmp_path.iterdir()] == ["final.tif"]
    np.testing.assert_array_equal(tifffile.imread(destination), pixels)


@pytest.mark.parametrize("filter_name", ["none", "sub", "up", "paeth"])
@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_round_trip_exact(tmp_path: Path, filter_name: str, channels: int, dtype: type) -> None:
    pixels = _image(channels, dtype)
    path = _write("png", tmp_path / "out.png", pixels, png_filter=filter_name)
    np.testing.assert_array_equal(_cv2_rgb(path), pixels)


def test_png_8_bit_read_by_pillow_with_icc_and_dpi(tmp_path: Path) -> None:
    pixels = _image(4, np.uint8)
    icc = srgb_profile_bytes()
    path = _write("png", tmp_path / "meta.png", pixels, icc=icc, dpi=(300, 300))
    with Image.open(path) as image:
        image.load()  # Pillow verifies every chunk CRC and the zlib stream's checksum
        assert image.mode == "RGBA"
        np.testing.assert_array_equal(np.asarray(image), pixels)
        assert image.info["icc_profile"] == icc
        assert image.info["dpi"] == pytest.approx((300, 300), abs=0.01)
        ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))  # a valid profile, not just bytes


def test_png_16_bit_keeps_icc(tmp_path: Path) -> None:
    icc = srgb_profile_bytes()
    path = _write("png", tmp_path / "meta16.png", _image(4, np.uint16), icc=icc)
    with Image.open(path) as image:
        assert image.info["icc_profile"] == icc


def test_png_level_changes_size(tmp_path: Path) -> None:
    pixels = _image(3, np.uint16)
    fast = _write("png", tmp_path / "1.png", pixels, png_level=1).stat().st_size
    small = _write("png", tmp_path / "9.png", pixels, png_level=9).stat().st_size
    assert small < fast


def test_jpeg_with_icc_and_dpi(tmp_path: Path) -> None:
    pixels = _image(3, np.uint8)
    icc = srgb_profile_bytes()
    path = _write("jpeg", tmp_path / "out.jpg", pixels, icc=icc, dpi=(300, 300), jpeg_quality=95)
    with Image.open(path) as image:
        decoded = np.asarray(image)
        assert image.info["icc_profile"] == icc
        assert image.info["dpi"] == pytest.approx((300, 300))
    assert np.abs(decoded.astype(int) - pixels).mean() < 3


def test_jpeg_refuses_16_bit_and_alpha(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="8-bit RGB"):
        open_writer("jpeg", tmp_path / "a.jpg", width=10, height=10, channels=4, bit_depth=8)
    with pytest.raises(ValueError, match="8-bit RGB"):
        open_writer("jpeg", tmp_path / "b.jpg", width=10, height=10, channels=3, bit_depth=16)


def _pillow_webp_whole(path: Path, pixels: np.ndarray, quality: int) -> np.ndarray:
    """The same image encoded in one piece, with the writer's options, decoded again."""
    Image.fromarray(pixels).save(
        path, "WEBP", quality=quality, method=writers.WEBP_METHOD, alpha_quality=100, exact=True
    )
    return _cv2_rgb(path)


@pytest.mark.parametrize("channels", [3, 4])
def test_webp_fed_in_bands_equals_the_whole_image_encoded_at_once(tmp_path: Path, channels: int) -> None:
    pixels = _image(channels, np.uint8)
    icc = srgb_profile_bytes()
    path = _write("webp", tmp_path / "out.webp", pixels, icc=icc, dpi=(300, 200), jpeg_quality=92)
    banded = _cv2_rgb(path)  # libwebp inside OpenCV, not Pillow
    # libwebp is deterministic: the same pixels and options decode identically, so any
    # misplaced or repeated band shows here.
    np.testing.assert_array_equal(banded, _pillow_webp_whole(tmp_path / "whole.webp", pixels, 92))
    # Lossy colours: the test image is smooth plus ±1 % noise; at quality 92 libwebp stays
    # within a couple of levels on average (measured 2.0), while a misplaced band is off by ~116.
    assert np.abs(banded[..., :3].astype(int) - pixels[..., :3]).mean() < 3
    with Image.open(path) as image:
        assert image.format == "WEBP" and image.mode == ("RGBA" if channels == 4 else "RGB")
        assert image.info["icc_profile"] == icc
        exif = image.getexif()
        assert (exif[0x011A], exif[0x011B], exif[0x0128]) == (300, 200, 2)  # dpi, unit = inch


def test_webp_alpha_is_exact_and_hidden_colours_are_kept(tmp_path: Path) -> None:
    pixels = _image(4, np.uint8)
    pixels[:, : WIDTH // 2, 3] = 0  # a transparent half whose colours must survive (exact=True)
    pixels[:, WIDTH // 2 :, 3] = np.arange(HEIGHT * (WIDTH - WIDTH // 2)).reshape(HEIGHT, -1) % 256
    decoded = _cv2_rgb(_write("webp", tmp_path / "a.webp", pixels, jpeg_quality=60))
    np.testing.assert_array_equal(decoded[..., 3], pixels[..., 3])
    # Without exact=True libwebp flattens colours under α = 0: mean error 81 here, 2.2 with it.
    hidden = np.abs(decoded[:, : WIDTH // 2, :3].astype(int) - pixels[:, : WIDTH // 2, :3]).mean()
    assert hidden < 4


def test_webp_rounds_16_bit_bands_to_8_bit(tmp_path: Path) -> None:
    pixels = _image(4, np.uint16)
    decoded = _cv2_rgb(_write("webp", tmp_path / "16.webp", pixels, jpeg_quality=92))
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded[..., 3], (pixels[..., 3].astype(np.uint32) + 128) // 257)
    assert np.abs(decoded[..., :3].astype(int) - pixels[..., :3] / 257).mean() < 3


def _open_webp(path: Path, width: int, height: int) -> None:
    open_writer("webp", path, width=width, height=height, channels=4, bit_depth=8)


def test_webp_at_its_side_limit_writes_and_one_more_pixel_is_refused(tmp_path: Path) -> None:
    edge = np.zeros((2, WEBP_MAX_SIDE, 4), np.uint8)
    edge[..., 3] = 255
    edge[:, ::2, 0] = 200
    with Image.open(_write("webp", tmp_path / "edge.webp", edge)) as image:
        assert image.size == (WEBP_MAX_SIDE, 2)
    refusal = r"at most 16383 px a side; choose output_format png or tiff"
    with pytest.raises(UnsupportedInput, match=refusal):
        write_atomically(
            Destination.at(tmp_path / "wide.webp"), lambda tmp: _open_webp(tmp, WEBP_MAX_SIDE + 1, 10)
        )
    with pytest.raises(UnsupportedInput, match=refusal):
        write_atomically(
            Destination.at(tmp_path / "tall.webp"), lambda tmp: _open_webp(tmp, 10, WEBP_MAX_SIDE + 1)
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edge.webp"]  # no output, no temporary


def test_output_size_check_needs_no_pixels() -> None:
    check_output_size("webp", WEBP_MAX_SIDE, WEBP_MAX_SIDE)
    check_output_size("png", 100_000, 100_000)
    with pytest.raises(UnsupportedInput, match=r"WEBP cannot hold 20000x3000"):
        check_output_size("webp", 20_000, 3_000)


@pytest.mark.parametrize("filter_name", ["none", "sub", "up", "paeth"])
def test_png_of_many_pieces_round_trips_while_piece_buffers_are_reused(
    tmp_path: Path, filter_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pieces of a few rows: each band is cut into many, so the ring of filter buffers turns over
    # while earlier pieces are still being compressed, and the last piece of a band is shorter.
    monkeypatch.setattr("daemon.io._png.PIECE_BYTES", 7 * WIDTH * 4)
    pixels = _image(4, np.uint8)
    path = _write("png", tmp_path / "pieces.png", pixels, png_filter=filter_name)
    np.testing.assert_array_equal(_cv2_rgb(path), pixels)


def _tile_windows(path: Path) -> set[int]:
    """The deflate window (log2 bytes) of each tile's zlib stream, from its CMF byte."""
    with tifffile.TiffFile(path) as tif, path.open("rb") as fh:
        windows = set()
        for offset in tif.pages.first.dataoffsets:
            fh.seek(offset)
            windows.add((fh.read(1)[0] >> 4) + 8)
        return windows


def test_noisy_sixteen_bit_tiles_deflate_with_a_short_window_and_eight_bit_values_with_the_full_one(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(4)
    base = (_image(4, np.uint8).astype(np.uint16)) * 257  # 8-bit values stored as 16-bit
    noisy = np.clip(base + rng.normal(0, 600, base.shape), 0, 65535).astype(np.uint16)
    for name, pixels, window in (
        ("doubled", base, 15),
        ("noisy", noisy, 8),
        ("eight", _image(4, np.uint8), 15),
    ):
        path = _write("tiff", tmp_path / f"{name}.tif", pixels, tiff_compression="deflate")
        np.testing.assert_array_equal(tifffile.imread(path), pixels)
        assert _tile_windows(path) == {window}, name
