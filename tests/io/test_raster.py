"""JPEG, PNG, WebP: orientation, depth, colour profile, and damage detected rather than greyed over."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps

from daemon.errors import CorruptInput, TooLarge, UnsupportedInput
from daemon.io.detect import open_image
from tests.conftest import REPO, photo, save_jpeg


def test_truncated_jpeg_is_corrupt_not_grey(tmp_path: Path) -> None:
    whole = save_jpeg(tmp_path / "whole.jpg", photo("astronaut"))
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    reader = open_image(cut, max_megapixels=10)
    with pytest.raises(CorruptInput, match="truncated"):
        reader.read()


def pillow_reference(path: Path) -> np.ndarray:
    """What the reader gave before JPEGs were decoded through imagecodecs: Pillow, oriented."""
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


JPEG_KINDS: dict[str, dict[str, int | bool]] = {
    "4:2:0": {"subsampling": 2},
    "4:2:2": {"subsampling": 1},
    "4:4:4": {"subsampling": 0},
    "progressive": {"progressive": True},
    "restart markers": {"restart_marker_blocks": 4},
}


@pytest.mark.parametrize("kind", sorted(JPEG_KINDS))
@pytest.mark.parametrize("orientation", [1, 6])
def test_jpeg_pixels_and_bands_are_bit_identical_to_pillows_decode(
    tmp_path: Path, kind: str, orientation: int
) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    # Odd sizes: partial MCUs on the right and bottom edges.
    path = save_jpeg(tmp_path / "p.jpg", photo("chelsea")[:299, :451], exif=exif, **JPEG_KINDS[kind])
    expected = pillow_reference(path)
    reader = open_image(path, max_megapixels=10)
    rows = [band for _, band in reader.bands(64)]
    reader.close()
    np.testing.assert_array_equal(np.concatenate(rows), expected)


def test_gray_jpeg_comes_back_as_identical_rgb(tmp_path: Path) -> None:
    path = save_jpeg(tmp_path / "g.jpg", photo("camera"))
    pixels = open_image(path, max_megapixels=10).read()
    assert pixels.shape == (512, 512, 3)
    np.testing.assert_array_equal(pixels, pillow_reference(path))


@pytest.mark.parametrize("kept", [0.5, 0.9])
def test_a_jpeg_cut_before_its_end_marker_is_still_corrupt(tmp_path: Path, kept: float) -> None:
    # libjpeg-turbo through imagecodecs fills a truncated stream with grey: such files must
    # still go to Pillow, which refuses them.
    whole = save_jpeg(tmp_path / "whole.jpg", photo("coffee"), progressive=True)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * kept)])
    with pytest.raises(CorruptInput, match="truncated"):
        open_image(cut, max_megapixels=10).read()


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_exif_orientation_is_applied(tmp_path: Path, orientation: int) -> None:
    stored = np.zeros((40, 60, 3), np.uint8)
    stored[:10, :10] = 255  # a white corner marks the stored top-left
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "o.jpg"
    Image.fromarray(stored).save(path, quality=100, exif=exif)
    pixels = open_image(path, max_megapixels=10).read()
    expected = {1: (40, 60), 3: (40, 60), 6: (60, 40), 8: (60, 40)}[orientation]
    assert pixels.shape[:2] == expected
    corner = {1: (0, 0), 3: (-1, -1), 6: (0, -1), 8: (-1, 0)}[orientation]
    assert pixels[corner].mean() > 200


def test_sixteen_bit_png_stays_sixteen_bit(tmp_path: Path) -> None:
    rgb16 = np.arange(30 * 20 * 3, dtype=np.uint16).reshape(30, 20, 3) * 70
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    reader = open_image(path, max_megapixels=10)
    assert reader.info.bit_depth == 16
    assert np.array_equal(reader.read(), rgb16)
    assert reader.proxy(10).dtype == np.uint8


def test_webp_and_gray_png_come_back_rgb(tmp_path: Path) -> None:
    Image.fromarray(photo("coffee")).save(tmp_path / "c.webp", lossless=True)
    Image.fromarray(photo("camera")).save(tmp_path / "g.png")
    assert np.array_equal(open_image(tmp_path / "c.webp", max_megapixels=10).read(), photo("coffee"))
    gray = open_image(tmp_path / "g.png", max_megapixels=10).read()
    assert gray.shape == (*photo("camera").shape, 3) and np.array_equal(gray[..., 1], photo("camera"))


def test_header_over_the_limit_is_refused_before_decoding(tmp_path: Path) -> None:
    path = save_jpeg(tmp_path / "big.jpg", np.zeros((1000, 2000, 3), np.uint8))
    with pytest.raises(TooLarge, match=r"2\.0 MP"):
        open_image(path, max_megapixels=1.5)


@pytest.mark.parametrize(
    "content, error",
    [
        (b"", CorruptInput),
        (b"hello, not a picture", UnsupportedInput),
        (b"\xff\xd8\xff\xe0garbage", CorruptInput),
    ],
)
def test_bad_files_raise_input_errors(tmp_path: Path, content: bytes, error: type[Exception]) -> None:
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(error):
        open_image(path, max_megapixels=10).read()


def test_dpi_follows_the_orientation(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rotated.jpg"
    Image.new("RGB", (60, 40)).save(path, exif=exif, dpi=(300, 150))
    info = open_image(path, max_megapixels=10).info
    assert info.dpi == (300, 150) and info.oriented_dpi == (150, 300)


READ_GROWTH = """
import sys
from pathlib import Path
from daemon.io.raster import RasterReader
def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
reader = RasterReader(Path(sys.argv[1]), max_megapixels=250)
before = rss_kb()
pixels = reader.read()
print((rss_kb() - before) * 1024 / pixels.nbytes)
"""


def test_a_decoded_image_is_held_once_not_also_in_pillows_copy(tmp_path: Path) -> None:
    # Pillow keeps its own 4-byte-a-pixel copy of a decoded image until it is closed: held beside
    # ours through the whole finish, it doubled a large PNG's memory.
    path = tmp_path / "big.png"
    noise = np.random.default_rng(0).integers(0, 255, (3000, 4000, 3), dtype=np.uint8)
    Image.fromarray(noise).save(path, compress_level=1)
    result = subprocess.run(
        [sys.executable, "-c", READ_GROWTH, str(path)], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert float(result.stdout) < 1.5, result.stdout  # 1.0: our array alone; 2.3 before
