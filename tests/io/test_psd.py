"""The PSD/PSB reader against the 273 real files of the psd-tools test corpus.

psd-tools (test-only) is the reference: it decodes the merged image data of a
file the slow way, all at once. Where it can, our decoded channels must equal
its bytes exactly, and our RGB(A) must equal its picture (within rounding where
a conversion is involved: see each comparison).
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from psd_tools import PSDImage
from psd_tools.api.pil_io import _remove_white_background
from psd_tools.constants import AlphaChannelMode, ColorMode, Resource

from daemon.errors import CorruptInput, InputError, TooLarge, UnsupportedInput
from daemon.io._psd_layers import LayeredPsdReader
from daemon.io._psd_layout import read_layout
from daemon.io._psd_planes import PlaneRows
from daemon.io.psd import PsdReader, open_psd
from tests.conftest import cmyk_to_srgb_reference
from tests.io.fuzz_corpus import PSD_CORPUS

CORPUS = PSD_CORPUS
FILES = sorted(p for p in CORPUS.rglob("*") if p.suffix.lower() in (".psd", ".psb"))
LIMIT_MP = 500.0
UNSUPPORTED_MODES = {
    ColorMode.BITMAP: "bitmap",
    ColorMode.INDEXED: "indexed",
    ColorMode.DUOTONE: "duotone",
    ColorMode.MULTICHANNEL: "multichannel",
    ColorMode.LAB: "lab",
}

logging.getLogger("psd_tools").setLevel(logging.CRITICAL)  # it logs every unknown block


def test_the_whole_corpus_is_there() -> None:
    assert len(FILES) == 273, f"expected the 273 corpus files in {CORPUS}"


@pytest.fixture(scope="module")
def sample_rgb() -> Path:
    return CORPUS / "0layers.psb"  # 1600x1200 8-bit RGB, RLE, PSB


# -- every corpus file -----------------------------------------------------------------


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(CORPUS)))
def test_corpus_file_matches_psd_tools_or_fails_cleanly(path: Path) -> None:
    reference = PSDImage.open(path)
    try:
        reader = open_psd(path, max_megapixels=LIMIT_MP)
    except InputError as error:
        _assert_refusal_is_right(error, reference)
        return
    if isinstance(reader, LayeredPsdReader):  # no merged image: see tests/io/test_psd_layers.py
        reader.close()
        return
    with reader:
        _assert_channels_equal_psd_tools(path, reference)
        _assert_pixels_match_psd_tools(reader, reference)


def _assert_refusal_is_right(error: InputError, reference: PSDImage) -> None:
    mode = reference.color_mode
    if mode in UNSUPPORTED_MODES:
        assert isinstance(error, UnsupportedInput)
        assert str(error) == f"unsupported: {UNSUPPORTED_MODES[mode]}"
    elif not reference.has_preview():
        assert isinstance(error, UnsupportedInput)
        assert "Maximize Compatibility" in str(error)
    elif "spot" in str(error):
        assert isinstance(error, UnsupportedInput)
        display = reference.image_resources.get_data(Resource.DISPLAY_INFO)
        modes = [channel.mode for channel in display.alpha_channels]
        assert AlphaChannelMode.SPOT in modes, "refused for spot channels, but the file has none"
    else:
        # The only other refusal allowed: a file psd-tools cannot decode either.
        assert isinstance(error, CorruptInput)
        with pytest.raises(ValueError):
            _stored_channels(reference)


def _stored_channels(reference: PSDImage) -> list[bytes]:
    """psd-tools' decoding of the merged image data, one ``bytes`` per channel."""
    channels = reference._record.image_data.get_data(reference._record.header)
    assert isinstance(channels, list)
    return channels


def _assert_channels_equal_psd_tools(path: Path, reference: PSDImage) -> None:
    expected = _stored_channels(reference)
    with path.open("rb") as fp:
        layout = read_layout(fp, max_megapixels=LIMIT_MP)
        planes = PlaneRows(fp, layout)
        for channel, data in enumerate(expected):
            assert planes.rows(channel, 0, layout.height).tobytes() == data, f"channel {channel}"


def _assert_pixels_match_psd_tools(reader: PsdReader, reference: PSDImage) -> None:
    ours = reader.read()
    info = reader.info
    assert ours.shape == (info.height, info.width, info.channels)
    assert ours.dtype == (np.uint8 if info.bit_depth == 8 else np.uint16)

    if info.colour == "cmyk":
        expected = _cmyk_reference(reference, info.has_alpha)
        tolerance = 2 if reference.depth == 8 else 3
    else:
        # RGB is handed out in its own profile; gray with a profile goes to sRGB, as
        # psd-tools does (matrix/TRC gray profiles: the intent makes no difference).
        image = reference.topil(apply_icc=info.colour == "gray")
        assert image is not None
        expected = _as_rgb_array(image)
        # psd-tools reduces 16/32-bit to 8 by truncation, we round; unmatting rounds.
        tolerance = 0 if reference.depth == 8 and not info.has_alpha else 1
        if info.colour == "gray" and info.icc is not None:
            tolerance = max(tolerance, 1)
    difference = np.abs(_to_uint8(ours).astype(np.int16) - expected.astype(np.int16))
    assert difference.max() <= tolerance, f"max difference {difference.max()}"

    if reference.depth == 16 and info.colour == "rgb" and not info.has_alpha:
        stored = _stored_channels(reference)
        planes = [np.frombuffer(c, ">u2").reshape(info.height, info.width) for c in stored[:3]]
        np.testing.assert_array_equal(ours, np.stack(planes, axis=2))


def _cmyk_reference(reference: PSDImage, has_alpha: bool) -> np.ndarray:
    """An independent conversion: psd-tools' channels through Pillow's littlecms,
    with the intent we use (relative colorimetric + black point compensation), or
    through Pillow's naive CMYK to RGB when the file has no profile."""
    stored = _stored_channels(reference)
    dtype = np.dtype(">u1") if reference.depth == 8 else np.dtype(">u2")
    size = (reference.height, reference.width)
    planes = [
        _to_uint8(np.frombuffer(c, dtype).reshape(size).astype(dtype.newbyteorder("="))) for c in stored
    ]
    cmyk = Image.fromarray(255 - np.stack(planes[:4], axis=2), mode="CMYK")
    icc = reference.image_resources.get_data(Resource.ICC_PROFILE)
    rgb = cmyk.convert("RGB") if icc is None else cmyk_to_srgb_reference(cmyk, icc)
    if not has_alpha:
        return np.asarray(rgb)
    rgba = rgb.convert("RGBA")
    rgba.putalpha(Image.fromarray(planes[4]))
    return np.asarray(_remove_white_background(rgba, ColorMode.CMYK))


def _as_rgb_array(image: Image.Image) -> np.ndarray:
    if image.mode == "L":
        return np.repeat(np.asarray(image)[..., None], 3, axis=2)
    if image.mode == "LA":
        gray, alpha = np.asarray(image.getchannel(0)), np.asarray(image.getchannel(1))
        return np.stack([gray, gray, gray, alpha], axis=2)
    return np.asarray(image)


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    return np.rint(pixels.astype(np.float64) / 257.0).astype(np.uint8)


# -- streaming -------------------------------------------------------------------------


def _streaming_cases() -> Iterator[Path]:
    yield CORPUS / "0layers.psb"  # RLE, PSB (4-byte row counts)
    yield CORPUS / "gray1.psd"  # grayscale with a profile
    yield CORPUS / "transparentbg-gimp.psd"  # RGBA with white matte
    yield CORPUS / "adjustments" / "posterize_16bits_cmyk.psd"  # raw 16-bit CMYK
    yield CORPUS / "32bit.psb"  # raw 32-bit float


@pytest.mark.parametrize("path", list(_streaming_cases()), ids=lambda p: p.name)
def test_bands_put_together_equal_read(path: Path) -> None:
    with open_psd(path, max_megapixels=LIMIT_MP) as reader:
        whole = reader.read()
        starts, pieces = zip(*reader.bands(37), strict=True)
    assert starts == tuple(range(0, reader.info.height, 37))
    assert all(piece.shape[0] == 37 for piece in pieces[:-1])
    np.testing.assert_array_equal(np.concatenate(pieces, axis=0), whole)


@pytest.mark.parametrize("path", list(_streaming_cases()), ids=lambda p: p.name)
def test_proxy_is_a_small_copy_of_the_image(path: Path) -> None:
    with open_psd(path, max_megapixels=LIMIT_MP) as reader:
        whole = _to_uint8(reader.read()[..., :3])
        if reader.info.has_alpha:
            # The proxy shows the stored colour, matted on white like Photoshop's.
            alpha = reader.read()[..., 3:].astype(np.float64) / np.iinfo(whole.dtype).max
            whole = np.rint(whole * alpha + 255 * (1 - alpha)).astype(np.uint8)
        max_side = max(whole.shape[:2]) // 3
        proxy = reader.proxy(max_side)

    assert proxy.dtype == np.uint8 and proxy.ndim == 3 and proxy.shape[2] == 3
    assert max(proxy.shape[:2]) == max_side
    expected = cv2.resize(whole, (proxy.shape[1], proxy.shape[0]), interpolation=cv2.INTER_AREA)
    difference = np.abs(proxy.astype(np.int16) - expected.astype(np.int16))
    # Shrinking in two steps (integer factor per band, then a final fit) moves
    # sharp edges of tiny images by a fraction of a pixel; a wrong band, channel
    # or offset would be off by tens of levels on average.
    assert difference.mean() < 5.0


def test_proxy_by_an_integer_factor_equals_one_area_resize(sample_rgb: Path) -> None:
    with open_psd(sample_rgb, max_megapixels=LIMIT_MP) as reader:
        whole = reader.read()
        proxy = reader.proxy(400)  # 1600x1200 by 4: no final resize
    assert proxy.shape == (300, 400, 3)
    np.testing.assert_array_equal(proxy, cv2.resize(whole, (400, 300), interpolation=cv2.INTER_AREA))


def test_proxy_never_enlarges(sample_rgb: Path) -> None:
    with open_psd(sample_rgb, max_megapixels=LIMIT_MP) as reader:
        proxy = reader.proxy(5000)
        np.testing.assert_array_equal(proxy, reader.read())


# -- header facts ----------------------------------------------------------------------


def test_header_facts_of_a_profiled_psb(sample_rgb: Path) -> None:
    reference = PSDImage.open(sample_rgb)
    with open_psd(sample_rgb, max_megapixels=LIMIT_MP) as reader:
        info = reader.info
    assert (info.format, info.width, info.height) == ("psb", 1600, 1200)
    assert (info.colour, info.bit_depth, info.channels, info.has_alpha) == ("rgb", 8, 3, False)
    assert info.icc == reference.image_resources.get_data(Resource.ICC_PROFILE)
    resolution = reference.image_resources.get_data(Resource.RESOLUTION_INFO)
    assert info.dpi == (float(resolution.horizontal) / 65536, float(resolution.vertical) / 65536)


def test_dpi_of_a_300_dpi_file() -> None:
    with open_psd(CORPUS / "300dpi.psd", max_megapixels=LIMIT_MP) as reader:
        assert reader.info.dpi == (300.0, 300.0)
        assert reader.info.bit_depth == 16  # a 32-bit file comes out as 16-bit


def test_cmyk_comes_out_as_srgb() -> None:
    with open_psd(CORPUS / "colormodes" / "4x4_16bit_cmyk.psd", max_megapixels=LIMIT_MP) as reader:
        assert reader.info.colour == "cmyk"
        icc = reader.info.icc
        assert icc is not None and icc[16:20] == b"RGB " and "sRGB".encode("utf-16-be") in icc
        assert reader.read().dtype == np.uint16


# -- refusals --------------------------------------------------------------------------


def test_too_large_is_refused_from_the_header(sample_rgb: Path) -> None:
    with pytest.raises(TooLarge, match=r"1\.9 MP"):
        open_psd(sample_rgb, max_megapixels=1.5)


def test_too_large_needs_no_more_than_the_header(tmp_path: Path, sample_rgb: Path) -> None:
    header_only = tmp_path / "header.psb"
    header_only.write_bytes(sample_rgb.read_bytes()[:26])
    with pytest.raises(TooLarge):
        open_psd(header_only, max_megapixels=1.0)


@pytest.mark.parametrize("keep", [0, 10, 30, 5000, -1000, -1])
def test_truncated_copy_is_corrupt(tmp_path: Path, sample_rgb: Path, keep: int) -> None:
    data = sample_rgb.read_bytes()
    truncated = tmp_path / "truncated.psb"
    truncated.write_bytes(data[:keep])
    with (
        pytest.raises(CorruptInput, match=r"truncated|not a PSD"),
        open_psd(truncated, max_megapixels=LIMIT_MP) as reader,
    ):
        reader.read()


def test_damaged_rle_data_is_corrupt(tmp_path: Path, sample_rgb: Path) -> None:
    damaged = tmp_path / "damaged.psb"
    shutil.copy(sample_rgb, damaged)
    data = bytearray(damaged.read_bytes())
    data[-3000:-1000] = bytes(2000)  # the blue channel's last rows: 0 = "one literal byte"
    damaged.write_bytes(bytes(data))
    with (
        open_psd(damaged, max_megapixels=LIMIT_MP) as reader,
        pytest.raises(CorruptInput, match="damaged RLE"),
    ):
        reader.read()


def test_not_a_psd_is_corrupt(tmp_path: Path) -> None:
    fake = tmp_path / "fake.psd"
    fake.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(CorruptInput, match="not a PSD"):
        open_psd(fake, max_megapixels=LIMIT_MP)
