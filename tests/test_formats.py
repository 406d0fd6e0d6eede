"""Every input format through ``hotmatte process``: depth, profile and DPI survive; bad modes are named."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import ImageCms

from daemon.io.detect import open_image
from tests.conftest import REPO, SMALL_MODEL_SIZE, photo, run_hotmatte

CORPUS = REPO.parent / "shared" / "corpus" / "psd"
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def write_tiff16(path: Path, tiled: bool) -> np.ndarray:
    rgb16 = photo("coffee").astype(np.uint16) * 257
    layout = {"tile": (128, 128)} if tiled else {"rowsperstrip": 32}
    tifffile.imwrite(
        path,
        rgb16,
        photometric="rgb",
        compression="lzw",
        iccprofile=SRGB,
        resolution=(240, 240),
        resolutionunit="INCH",
        **layout,
    )
    return rgb16


@pytest.fixture(scope="module")
def processed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    shoot = tmp_path_factory.mktemp("formats")
    inputs = shoot / "in"
    (inputs / "psd").mkdir(parents=True)
    write_tiff16(inputs / "tiled16.tif", tiled=True)
    write_tiff16(inputs / "striped16.tif", tiled=False)
    cmyk = np.zeros((200, 300, 4), np.uint8)
    cmyk[50:150, 100:200, 0] = 255  # a cyan square on white paper
    tifffile.imwrite(inputs / "cmyk.tif", cmyk, photometric="separated")
    for name in (
        "300dpi.psd",
        "gray0.psb",
        "colormodes/4x4_8bit_index_color.psd",
        "colormodes/4x4_16bit_cmyk.psd",
    ):
        shutil.copy(CORPUS / name, inputs / "psd" / Path(name).name)
    out = shoot / "out"
    result = run_hotmatte("process", "--model-size", SMALL_MODEL_SIZE, "--format", "tiff", "-o", out, inputs)
    return inputs, out, result.stderr + f"\nexit={result.returncode}"


@dataclass(frozen=True)
class Written:
    pixels: np.ndarray
    icc: bytes | None
    resolution: tuple[float, float]
    tiled: bool
    extrasamples: tuple[int, ...]


def read_output(path: Path) -> Written:
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        assert isinstance(page, tifffile.TiffPage)
        resolution = page.get_resolution()
        return Written(
            page.asarray(),
            page.iccprofile,
            (resolution[0], resolution[1]),
            page.is_tiled,
            tuple(page.extrasamples),
        )


def test_unsupported_mode_is_named_and_the_rest_succeed(processed: tuple[Path, Path, str]) -> None:
    _, out, log = processed
    assert "exit=1" in log
    assert "4x4_8bit_index_color.psd" in log and "unsupported: indexed" in log
    produced = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.tif"))
    assert produced == [
        "cmyk.tif",
        "psd/300dpi.tif",
        "psd/4x4_16bit_cmyk.tif",
        "psd/gray0.tif",
        "striped16.tif",
        "tiled16.tif",
    ]


@pytest.mark.parametrize("name", ["tiled16", "striped16"])
def test_sixteen_bit_tiff_comes_back_sixteen_bit_with_profile_and_dpi(
    processed: tuple[Path, Path, str], name: str
) -> None:
    inputs, out, _ = processed
    written = read_output(out / f"{name}.tif")
    rgba = written.pixels
    assert rgba.dtype == np.uint16 and rgba.shape == (*photo("coffee").shape[:2], 4)
    assert np.array_equal(rgba[..., :3], tifffile.imread(inputs / f"{name}.tif"))
    assert written.icc == SRGB
    assert written.tiled and written.extrasamples == (2,)  # unassociated alpha, as Photoshop expects
    assert written.resolution == (240, 240)
    # A real matte: both opaque and transparent regions at full 16-bit scale.
    assert rgba[..., 3].max() > 65000 and rgba[..., 3].min() < 500


def test_psd_keeps_its_depth_profile_and_dpi(processed: tuple[Path, Path, str]) -> None:
    inputs, out, _ = processed
    written = read_output(out / "psd" / "300dpi.tif")
    source = open_image(inputs / "psd" / "300dpi.psd", max_megapixels=10)
    assert written.pixels.dtype == np.uint16
    assert np.array_equal(written.pixels[..., :3], source.read()[..., :3])
    assert written.icc == source.info.icc
    assert written.resolution == (300, 300)


def test_cmyk_comes_back_as_rgb_with_an_rgb_profile(processed: tuple[Path, Path, str]) -> None:
    _, out, _ = processed
    written = read_output(out / "cmyk.tif")
    rgba = written.pixels
    assert rgba.shape == (200, 300, 4) and rgba.dtype == np.uint8
    cyan, paper = rgba[100, 150, :3].astype(int), rgba[10, 10, :3].astype(int)
    assert cyan[0] < 80 and cyan[1] > 120 and cyan[2] > 180  # cyan stays cyan
    assert paper.min() > 230  # white paper stays white
    assert written.icc is not None and b"RGB " in written.icc[:24]
