"""HEIF/HEIC phone photos: real files made with libheif, read the way the phone showed them.

Every file here is encoded by pillow-heif (libheif + x265), the way iPhones write theirs:
EXIF orientation *and* the equal ``irot``/``imir`` boxes, ICC profile, 10-bit depth, grids.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pillow_heif
import pytest
from PIL import Image, ImageCms

from daemon.errors import CorruptInput, TooLarge, UnsupportedInput
from daemon.io._orient import orient
from daemon.io.detect import open_image, sniff_format
from tests.conftest import REPO, SMALL_MODEL_SIZE, photo, run_hotmatte
from tests.service_harness import Daemon, assert_cutout_of, folder_settings, write_config

ORIENTATION_TAG = 0x0112
# orient(orient(x, INVERSE[o]), o) == x: the stored image a camera held sideways would write.
INVERSE = {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 8, 7: 7, 8: 6}
RGB_PROFILE = bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


def save_heic(
    path: Path,
    pixels: np.ndarray,
    *,
    orientation: int | None = None,
    icc: bytes | None = None,
    **options: object,
) -> Path:
    """``pixels`` (uint8 or uint16 gray, RGB or RGBA) as HEIC; uint16 is written at 10 bits unless told."""
    height, width = pixels.shape[:2]
    deep = pixels.dtype == np.uint16
    mode = "L" if pixels.ndim == 2 else {3: "RGB", 4: "RGBA"}[pixels.shape[2]]
    heif = pillow_heif.from_bytes(mode + (";16" if deep else ""), (width, height), pixels.tobytes())
    extra: dict[str, object] = {"quality": 92, **options}
    if orientation is not None:
        exif = Image.Exif()
        exif[ORIENTATION_TAG] = orientation
        extra["exif"] = exif.tobytes()
    if icc is not None:
        extra["icc_profile"] = icc
    heif.save(path, **extra)
    return path


def six_blocks(height: int = 64, width: int = 96) -> np.ndarray:
    """Six flat colours in a 2×3 grid: every one of the 8 orientations looks different."""
    colours = [(230, 20, 20), (20, 230, 20), (20, 20, 230), (230, 230, 20), (20, 230, 230), (230, 20, 230)]
    image = np.zeros((height, width, 3), np.uint8)
    for index, colour in enumerate(colours):
        row, col = divmod(index, 3)
        image[row * height // 2 : (row + 1) * height // 2, col * width // 3 : (col + 1) * width // 3] = colour
    return image


def block_means(pixels: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Mean colour of each cell of a rows×cols grid, sampled away from the (lossy) edges."""
    height, width = pixels.shape[:2]
    means = np.zeros((rows, cols, 3))
    for r in range(rows):
        for c in range(cols):
            top, left = r * height // rows, c * width // cols
            cell = pixels[top : top + height // rows, left : left + width // cols]
            h, w = cell.shape[:2]
            means[r, c] = cell[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4, :3].reshape(-1, 3).mean(axis=0)
    return means


def test_an_eight_bit_heic_decodes_to_the_photo_that_was_encoded(tmp_path: Path) -> None:
    source = photo("astronaut")
    path = save_heic(tmp_path / "IMG_0001.HEIC", source, quality=95)
    reader = open_image(path, max_megapixels=10)
    assert reader.info.format == "heif" and reader.info.bit_depth == 8 and reader.info.channels == 3
    pixels = reader.read()
    assert pixels.dtype == np.uint8 and pixels.shape == source.shape
    assert np.abs(pixels.astype(int) - source).mean() < 2.5  # lossy HEVC, not another image
    proxy = reader.proxy(128)
    assert proxy.dtype == np.uint8 and proxy.shape == (128, 128, 3)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_the_image_comes_out_as_the_phone_showed_it_rotated_once(tmp_path: Path, orientation: int) -> None:
    shown = six_blocks()
    stored = np.ascontiguousarray(orient(shown, INVERSE[orientation]))
    path = save_heic(tmp_path / "o.heic", stored, orientation=orientation)
    # The file is an iPhone's: EXIF says `orientation` and the container transforms say it too.
    written = pillow_heif.open_heif(path)
    assert pillow_heif.set_orientation(dict(written.info)) == (None if orientation == 1 else orientation)
    reader = open_image(path, max_megapixels=10)
    assert reader.info.orientation == 1  # libheif applied irot/imir; EXIF must not rotate it again
    assert (reader.info.width, reader.info.height) == (shown.shape[1], shown.shape[0])
    pixels = reader.read()
    assert pixels.shape == shown.shape
    assert np.abs(block_means(pixels, 2, 3) - block_means(shown, 2, 3)).max() < 12


def test_ten_bit_heic_gives_full_range_sixteen_bit_pixels_and_keeps_its_profile(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 64 * 96, dtype=np.float64).reshape(64, 96)
    source = np.dstack([ramp, ramp[::-1], np.full_like(ramp, 65535)]).astype(np.uint16)
    source[:16] = 65535  # a white band
    path = save_heic(tmp_path / "deep.heic", source, icc=RGB_PROFILE, quality=-1, chroma=444)
    reader = open_image(path, max_megapixels=10)
    assert reader.info.bit_depth == 16 and reader.info.icc == RGB_PROFILE
    pixels = reader.read()
    assert pixels.dtype == np.uint16
    assert pixels[4:12].min() == 65535  # 10-bit white is 16-bit white, not 65472
    # Within 10-bit steps (64) plus the RGB→YCbCr round trip: the ramp survives.
    assert np.abs(pixels.astype(int) - source).max() < 64 * 3
    assert reader.proxy(32).dtype == np.uint8


def test_twelve_bit_heic_is_sixteen_bit_too(tmp_path: Path) -> None:
    ramp = np.linspace(0, 65535, 32 * 48 * 3).reshape(32, 48, 3).astype(np.uint16)
    path = save_heic(tmp_path / "deep12.heic", ramp, quality=-1, chroma=444, save_to_12bit=True)
    pixels = open_image(path, max_megapixels=10).read()
    assert pixels.dtype == np.uint16 and pixels.max() == 65535
    assert np.abs(pixels.astype(int) - ramp).max() < 16 * 8


def test_icc_profile_and_exif_dpi_are_kept(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x011A], exif[0x011B], exif[0x0128] = 300.0, 300.0, 2  # 300 dpi, in inches
    path = save_heic(tmp_path / "p.heic", photo("coffee"), icc=RGB_PROFILE, exif=exif.tobytes())
    info = open_image(path, max_megapixels=10).info
    assert info.icc == RGB_PROFILE and info.dpi == (300.0, 300.0)


def test_a_monochrome_heic_comes_back_rgb_untagged_by_its_non_rgb_profile(tmp_path: Path) -> None:
    gray = photo("camera")
    # littlecms cannot build a gray profile; any non-RGB one shows the same rule.
    lab_icc = bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes())
    path = save_heic(tmp_path / "g.heic", gray, icc=lab_icc, quality=-1)
    reader = open_image(path, max_megapixels=10)
    pixels = reader.read()
    assert reader.info.icc is None and pixels.shape == (*gray.shape, 3)
    assert np.array_equal(pixels[..., 0], pixels[..., 2])
    assert np.abs(pixels[..., 1].astype(int) - gray).mean() < 2


def test_a_transparent_heic_keeps_its_alpha(tmp_path: Path) -> None:
    rgba = np.dstack([photo("coffee")[:64, :96], np.tile(np.arange(96, dtype=np.uint8) * 2, (64, 1))])
    path = save_heic(tmp_path / "a.heic", rgba, quality=-1)
    reader = open_image(path, max_megapixels=10)
    pixels = reader.read()
    assert reader.info.has_alpha and pixels.shape == (64, 96, 4)
    assert np.abs(pixels[..., 3].astype(int) - rgba[..., 3]).max() <= 2


def test_an_iphone_style_grid_heic_is_read_whole(tmp_path: Path) -> None:
    source = photo("astronaut")
    path = save_heic(tmp_path / "grid.heic", source, quality=95, tile_size=128)  # iPhones tile at 512
    assert b"grid" in path.read_bytes()
    pixels = open_image(path, max_megapixels=10).read()
    assert pixels.shape == source.shape and np.abs(pixels.astype(int) - source).mean() < 2.5


def test_heif_is_recognised_by_content_whatever_its_name(tmp_path: Path) -> None:
    path = save_heic(tmp_path / "holiday.jpg", six_blocks())
    assert sniff_format(path) == "heif"
    assert open_image(path, max_megapixels=10).read().shape == (64, 96, 3)


@pytest.mark.parametrize("keep", [0.05, 0.3, 0.6, 0.95])
def test_a_truncated_heic_is_corrupt_with_a_reason(tmp_path: Path, keep: float) -> None:
    whole = save_heic(tmp_path / "whole.heic", photo("astronaut")).read_bytes()
    cut = tmp_path / "cut.heic"
    cut.write_bytes(whole[: int(len(whole) * keep)])
    with pytest.raises(CorruptInput, match=r"cut\.heic: damaged or truncated HEIF file \(.+\)"):
        open_image(cut, max_megapixels=10).read()


def with_declared_size(template: Path, target: Path, width: int, height: int) -> Path:
    """``template`` with its ``ispe`` box (the image's declared size) rewritten."""
    data = bytearray(template.read_bytes())
    assert data.count(b"ispe") == 1 and b"clap" not in data
    at = data.index(b"ispe") + 8  # box type, then version/flags (4), then width, height
    data[at : at + 8] = struct.pack(">II", width, height)
    target.write_bytes(bytes(data))
    return target


PROBE = """
import json, sys, time
from pathlib import Path
from daemon.errors import InputError
from daemon.io.detect import open_image
from tests.io.fuzz_runner import peak_rss_kb
started = time.perf_counter()
try:
    open_image(Path(sys.argv[1]), max_megapixels=float(sys.argv[2])).read()
    outcome = "decoded"
except InputError as exc:
    outcome = f"{type(exc).__name__}: {exc}"
print(json.dumps({"outcome": outcome, "seconds": time.perf_counter() - started,
                  "peak_mb": peak_rss_kb() / 1024}))
"""


def probe(path: Path, max_megapixels: float) -> dict[str, object]:
    """Open and read ``path`` in a fresh process: its outcome, seconds and peak memory."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(path), str(max_megapixels)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_a_header_declaring_a_huge_image_is_refused_before_any_decode(tmp_path: Path) -> None:
    template = save_heic(tmp_path / "small.heic", photo("astronaut")[:64, :64])
    bomb = with_declared_size(template, tmp_path / "bomb.heic", 30_000, 30_000)  # 900 MP, a 3 KB file
    result = probe(bomb, max_megapixels=250)
    assert result["outcome"] == "TooLarge: bomb.heic: 30000×30000 is 900 MP, over max_megapixels (250)"
    # Decoding 900 MP would take 2.7 GB and many seconds; the header alone takes neither. The
    # memory bound is the real check; the time bound is loose so a loaded CI machine cannot trip it.
    assert isinstance(result["seconds"], float) and result["seconds"] < 10, result
    assert isinstance(result["peak_mb"], float) and result["peak_mb"] < 400, result


def test_a_size_over_libheifs_own_limit_is_too_large_not_a_library_error(tmp_path: Path) -> None:
    template = save_heic(tmp_path / "small.heic", photo("astronaut")[:64, :64])
    bomb = with_declared_size(template, tmp_path / "bomb.heic", 100_000, 100_000)
    # The studio allows even more, so only libheif's safety limit (1 Gpx) stands in the way.
    with pytest.raises(TooLarge, match=r"bomb\.heic: over libheif's safety limits \(.*Security limit"):
        open_image(bomb, max_megapixels=20_000).read()


def test_a_file_bigger_than_any_photo_within_the_limit_is_not_read_into_memory(tmp_path: Path) -> None:
    path = save_heic(tmp_path / "p.heic", photo("astronaut"))  # ~30 KB
    with pytest.raises(TooLarge, match=r"MB is more than any photo within max_megapixels \(0\.001\)"):
        open_image(path, max_megapixels=0.001)


def test_avif_is_refused_with_a_reason_an_operator_can_act_on(tmp_path: Path) -> None:
    path = tmp_path / "web.avif"
    Image.fromarray(six_blocks()).save(path, "AVIF")
    assert sniff_format(path) == "heif"
    with pytest.raises(UnsupportedInput, match=r"web\.avif: unsupported: AVIF .*convert it to HEIC, JPEG"):
        open_image(path, max_megapixels=10)


def test_an_image_sequence_is_refused_as_not_a_still_photo(tmp_path: Path) -> None:
    data = bytearray(save_heic(tmp_path / "s.heic", six_blocks()).read_bytes())
    data[8:12] = b"msf1"  # the major brand of a HEIF image sequence
    path = tmp_path / "burst.heics"
    path.write_bytes(bytes(data))
    with pytest.raises(UnsupportedInput, match=r"burst\.heics: unsupported: a HEIF image sequence"):
        open_image(path, max_megapixels=10)


def test_a_ten_bit_heic_through_process_gives_a_sixteen_bit_upright_cutout_with_its_profile(
    tmp_path: Path,
) -> None:
    shown = photo("astronaut").astype(np.uint16) * 257
    stored = np.ascontiguousarray(orient(shown[:, :448], INVERSE[6]))  # held sideways: 448 wide shown
    inputs = tmp_path / "in"
    inputs.mkdir()
    save_heic(inputs / "IMG_0002.HEIC", stored, orientation=6, icc=RGB_PROFILE)
    out = tmp_path / "out"
    result = run_hotmatte("process", "--model-size", SMALL_MODEL_SIZE, "-o", out, inputs)
    assert result.returncode == 0, result.stderr
    written = out / "IMG_0002.png"
    bgra = cv2.imread(str(written), cv2.IMREAD_UNCHANGED)
    assert bgra is not None
    rgba = cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA)
    assert rgba.dtype == np.uint16 and rgba.shape == (512, 448, 4)
    assert np.abs(block_means(rgba, 4, 4) - block_means(shown[:, :448], 4, 4)).max() < 12 * 257
    with Image.open(written) as image:
        assert image.info.get("icc_profile") == RGB_PROFILE


def test_the_daemon_cuts_out_a_heic_dropped_in_a_hot_folder(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.yaml", [folder_settings(tmp_path, "hot")])
    with Daemon(config) as daemon:
        daemon.wait_for("start")
        stored = np.ascontiguousarray(orient(photo("astronaut")[:, :384], INVERSE[8]))
        heic = save_heic(tmp_path / "IMG_0003.HEIC", stored, orientation=8)
        (tmp_path / "hot" / "broken.heic").write_bytes(heic.read_bytes()[:900])
        heic.rename(tmp_path / "hot" / "IMG_0003.HEIC")
        done = daemon.wait_for("done", path="IMG_0003.HEIC")
        failed = daemon.wait_for("failed", path="broken.heic")
        assert daemon.terminate() == 0
    assert_cutout_of(Path(done[0]["output"]), (384, 512))
    record = json.loads((tmp_path / "hot-out-errors" / "broken.heic.error.json").read_text())
    assert record["error_class"] == "CorruptInput", (record, failed)
    assert "damaged or truncated HEIF file" in record["reason"]
