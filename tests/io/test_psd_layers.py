"""Layered PSD/PSB files without a merged image: their layers are composited.

psd-tools' compositor is the reference (its colour in the file's stored
channel space, converted by our :mod:`daemon.io._psd_colour` exactly as ours
is). Tolerance: max |Δ| ≤ 1 level on the 8-bit scale (float32 here, float64
in psd-tools, each rounded once).
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from daemon.config import parse_config
from daemon.errors import ConfigError, CorruptInput, InputError, UnsupportedInput
from daemon.io._psd_colour import colour_to_rgb
from daemon.io._psd_layers import LayeredPsdReader, _psd_tools_composite
from daemon.io._psd_layout import read_layout
from daemon.io._psd_records import Layer, read_layer_tree
from daemon.io.psd import PsdReader, open_psd
from tests.conftest import SMALL_MODEL_SIZE, photo, run_hotmatte
from tests.io.layered_psd import write_layered
from tests.service_harness import Daemon, assert_cutout_of, folder_settings, write_config

# Beside the checkout (as tests/io/test_psd.py expects it), or one level up from a worktree.
CORPUS = next(
    (root / "shared" / "corpus" / "psd" for root in Path(__file__).resolve().parents[3:5]
     if (root / "shared" / "corpus" / "psd").is_dir()),
    Path(__file__).resolve().parents[3] / "shared" / "corpus" / "psd",
)  # fmt: skip
FILES = sorted(p for p in CORPUS.rglob("*") if p.suffix.lower() in (".psd", ".psb"))
LIMIT_MP = 500.0
logging.getLogger("psd_tools").setLevel(logging.CRITICAL)


def _layout(path: Path) -> Any:
    with path.open("rb") as fp:
        try:
            return read_layout(fp, max_megapixels=LIMIT_MP)
        except InputError:
            return None


NO_MERGED = [p for p in FILES if (layout := _layout(p)) is not None and not layout.has_real_merged_data]
LAYERED = [p for p in FILES if (layout := _layout(p)) is not None and layout.layer_count != 0]
# The layers composited equal Photoshop's merged image within 2 levels, except where noted.
PHOTOSHOP_DIFFERS = {"text.psb", "cactus_top.psd"}


def test_the_corpus_has_its_files_without_merged_image() -> None:
    assert len(NO_MERGED) == 18, [p.name for p in NO_MERGED]


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    if pixels.dtype == np.uint8:
        return pixels
    return np.rint(pixels.astype(np.float64) / 257.0).astype(np.uint8)


def _reference(path: Path, reader: LayeredPsdReader) -> np.ndarray:
    """psd-tools' composite through our colour conversion, RGB(A) 8-bit."""
    layout = reader._layout
    with path.open("rb") as fp:
        colour, alpha = _psd_tools_composite(fp, layout)
    top = 255 if layout.depth == 8 else 65535
    dtype = np.uint8 if layout.depth == 8 else np.uint16
    rgb = colour_to_rgb(np.rint(colour * top).astype(dtype), layout)
    if reader.info.has_alpha:
        rgb = np.concatenate([rgb, np.rint(alpha * top).astype(dtype)[..., None]], axis=2)
    return _to_uint8(rgb)


def _bands_reader(path: Path) -> LayeredPsdReader:
    fp = path.open("rb")
    return LayeredPsdReader(fp, read_layout(fp, max_megapixels=LIMIT_MP), budget_megapixels=0)


@pytest.mark.parametrize("path", NO_MERGED, ids=lambda p: str(p.relative_to(CORPUS)))
def test_corpus_file_without_merged_image_is_composited_or_refused_with_the_layer_named(path: Path) -> None:
    try:
        reader = open_psd(path, max_megapixels=LIMIT_MP)
    except UnsupportedInput as error:
        message = str(error)
        assert "Maximize Compatibility" in message
        assert re.search(r"(layer|group) '[^']+'", message), message
        return
    assert isinstance(reader, LayeredPsdReader)
    with reader:
        by_psd_tools = reader.read()
    assert reader.composited_by == "psd-tools"
    with _bands_reader(path) as bands:
        ours = bands.read()
        reference = _reference(path, bands)
    assert ours.shape == by_psd_tools.shape == reference.shape
    assert np.abs(_to_uint8(ours).astype(int) - reference).max() <= 1
    assert np.abs(_to_uint8(by_psd_tools).astype(int) - reference).max() <= 1


@pytest.mark.parametrize("path", LAYERED, ids=lambda p: str(p.relative_to(CORPUS)))
def test_band_compositor_equals_psd_tools_on_every_layered_corpus_file(path: Path) -> None:
    """Files with a merged image too: their layers are a wider test of the compositor
    (16 and 32-bit, grayscale, groups, masks), and the merged image is Photoshop's own answer."""
    try:
        reader = _bands_reader(path)
    except UnsupportedInput:
        return
    with reader:
        ours = _to_uint8(reader.read())
        reference = _reference(path, reader)
        proxy = reader.proxy(100_000)
    assert np.abs(ours.astype(int) - reference).max() <= 1
    if path.name in PHOTOSHOP_DIFFERS or reader._layout.has_spot_channels:
        return
    try:
        with PsdReader(path, max_megapixels=LIMIT_MP) as merged:
            photoshop = merged.proxy(100_000)
    except InputError:
        return  # no merged image, or a damaged one (group-divider-blend-mode.psd is truncated)
    assert np.abs(proxy.astype(int) - photoshop.astype(int)).max() <= 2


# -- synthetic files -------------------------------------------------------------------


def _random(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.integers(0, 256, shape, dtype=np.uint8)


def _studio_layers(
    rng: np.random.Generator, width: int, height: int, pass_through: bool
) -> list[dict[str, Any]]:
    return [
        {"name": "Background", "rect": (0, 0, height, width), "colour": _random(rng, height, width, 3)},
        {
            "name": "Subject",
            "rect": (-10, 20, height - 20, width + 30),
            "colour": _random(rng, height - 10, width + 10, 3),
            "alpha": _random(rng, height - 10, width + 10),
            "opacity": 200,
            "mask": ((5, 10, height - 5, width - 10), 255, _random(rng, height - 10, width - 20)),
        },
        {
            "group": [
                {
                    "name": "Retouch",
                    "rect": (30, 30, height, width - 10),
                    "colour": _random(rng, height - 30, width - 40, 3),
                    "alpha": _random(rng, height - 30, width - 40),
                    "opacity": 180,
                },
                {"name": "Hidden", "rect": (0, 0, 50, 50), "colour": _random(rng, 50, 50, 3), "hidden": True},
            ],
            "name": "Group",
            "opacity": 150,
            "pass_through": pass_through,
        },
    ]


@pytest.mark.parametrize("pass_through", [False, True], ids=["normal-group", "pass-through-group"])
@pytest.mark.parametrize("psb", [False, True], ids=["psd", "psb"])
def test_band_by_band_equals_one_piece_and_psd_tools(tmp_path: Path, psb: bool, pass_through: bool) -> None:
    path = tmp_path / ("layered.psb" if psb else "layered.psd")
    write_layered(path, 160, 120, _studio_layers(np.random.default_rng(7), 160, 120, pass_through), psb=psb)
    with open_psd(path, max_megapixels=LIMIT_MP, layer_budget_megapixels=100) as whole:
        assert isinstance(whole, LayeredPsdReader) and whole.composited_by == "psd-tools"
        one_piece = whole.read()
    with open_psd(path, max_megapixels=LIMIT_MP, layer_budget_megapixels=0) as banded:
        assert isinstance(banded, LayeredPsdReader) and banded.composited_by == "bands"
        starts, pieces = zip(*banded.bands(7), strict=True)
        assert banded.info.has_alpha is False  # an opaque Background layer at the bottom
    assert starts == tuple(range(0, 120, 7))
    np.testing.assert_array_equal(np.concatenate(pieces), one_piece)


@pytest.mark.parametrize(
    ("mode", "compression"),
    [("cmyk", "zip"), ("gray", "rle"), ("rgb", "zip")],
    ids=["cmyk-zip", "gray-rle", "rgb-zip"],
)
def test_16_bit_files_stay_16_bit_and_bands_equal_psd_tools(
    tmp_path: Path, mode: str, compression: str
) -> None:
    rng = np.random.default_rng(11)
    colours = {"cmyk": 4, "gray": 1, "rgb": 3}[mode]

    def wide(*shape: int) -> np.ndarray:
        return rng.integers(0, 65536, shape, dtype=np.uint16)

    layers: list[dict[str, Any]] = [
        {"name": "Background", "rect": (0, 0, 90, 70), "colour": wide(90, 70, colours)},
        {
            "name": "Subject",
            "rect": (10, -5, 80, 60),
            "colour": wide(70, 65, colours),
            "alpha": wide(70, 65),
            "opacity": 230,
            "mask": ((0, 0, 45, 70), 0, wide(45, 70)),
        },
        {
            "group": [
                {
                    "name": "Veil",
                    "rect": (40, 0, 90, 70),
                    "colour": wide(50, 70, colours),
                    "alpha": wide(50, 70),
                }
            ],
            "name": "Group",
            "opacity": 100,
            "pass_through": True,
        },
    ]
    path = tmp_path / f"{mode}16.psd"
    write_layered(path, 70, 90, layers, mode=mode, depth=16, compression=compression)
    with open_psd(path, max_megapixels=LIMIT_MP, layer_budget_megapixels=0) as banded:
        assert isinstance(banded, LayeredPsdReader) and banded.composited_by == "bands"
        assert banded.info.bit_depth == 16 and banded.info.colour == mode
        pieces = np.concatenate([band for _, band in banded.bands(7)])
        whole = banded.read()  # from the top again: the zlib streams restart
        reference = _reference(path, banded)
    assert pieces.dtype == np.uint16
    np.testing.assert_array_equal(pieces, whole)
    assert np.abs(_to_uint8(pieces).astype(int) - reference).max() <= 1
    with open_psd(path, max_megapixels=LIMIT_MP, layer_budget_megapixels=100) as small:
        by_psd_tools = small.read()
    # float32 here, float64 in psd-tools: at most one level of 65535 apart.
    assert np.abs(by_psd_tools.astype(int) - pieces).max() <= 1


def test_a_layer_in_another_blend_mode_is_refused_by_name(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    layers = _studio_layers(rng, 64, 48, False)
    layers.append(
        {"name": "Shadow", "rect": (0, 0, 48, 64), "colour": _random(rng, 48, 64, 3), "blend": b"mul "}
    )
    path = tmp_path / "multiply.psd"
    write_layered(path, 64, 48, layers)
    with pytest.raises(UnsupportedInput) as refused:
        open_psd(path, max_megapixels=LIMIT_MP)
    assert str(refused.value) == (
        "layer 'Shadow' uses the multiply blend mode (only normal is composited); "
        "save it with Maximize Compatibility"
    )


def test_a_hidden_layer_in_another_blend_mode_changes_nothing(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    layers = _studio_layers(rng, 64, 48, False)
    layers.append(
        {
            "name": "Off",
            "rect": (0, 0, 48, 64),
            "colour": _random(rng, 48, 64, 3),
            "blend": b"mul ",
            "hidden": True,
        }
    )
    path = tmp_path / "hidden.psd"
    write_layered(path, 64, 48, layers)
    with open_psd(path, max_megapixels=LIMIT_MP) as reader:
        assert reader.read().shape == (48, 64, 3)


@pytest.mark.parametrize("damage", ["row-table", "last-row"])
@pytest.mark.parametrize("budget", [0, 100], ids=["bands", "psd-tools"])
def test_damaged_layer_pixels_are_corrupt_not_black(tmp_path: Path, budget: float, damage: str) -> None:
    path = tmp_path / "damaged.psd"
    write_layered(path, 64, 48, _studio_layers(np.random.default_rng(3), 64, 48, False))
    with path.open("rb") as fp:
        tree = read_layer_tree(fp, read_layout(fp, max_megapixels=LIMIT_MP))
    subject = tree[1]
    assert isinstance(subject, Layer) and subject.name == "Subject"
    green = subject.channels[1]
    data = bytearray(path.read_bytes())
    if damage == "row-table":
        data[green.offset + 2 : green.offset + 4] = b"\x7f\xff"  # the first row's length: past the channel
    else:
        rows = subject.rect.bottom - subject.rect.top
        last_row_length = int.from_bytes(data[green.offset + 2 * rows : green.offset + 2 * rows + 2], "big")
        last_row = green.offset + green.length - last_row_length
        data[last_row] = 0x7F  # a literal run of 128 bytes where the data ends sooner
    path.write_bytes(bytes(data))
    with (
        pytest.raises(CorruptInput, match="damaged"),
        open_psd(path, max_megapixels=LIMIT_MP, layer_budget_megapixels=budget) as reader,
    ):
        reader.read()


# A child process whose whole address space is capped: numpy, imagecodecs and psd-tools
# take ~500 MB of it before the first pixel.
COMPOSITE_UNDER_CAP = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
from pathlib import Path
from daemon.errors import TooLarge
from daemon.io.psd import open_psd
budget = float(sys.argv[2])
try:
    with open_psd(Path(sys.argv[1]), max_megapixels=1000, layer_budget_megapixels=budget) as reader:
        reader.proxy(1024)
        rows = sum(band.shape[0] for _, band in reader.bands(512))
    print(reader.composited_by, rows)
except TooLarge:  # the reader's boundary: running out of memory is that file's error
    print("TooLarge")
"""


def _blocks(width: int, seed: int, channels: int | None) -> Any:
    def rows(y0: int, y1: int) -> np.ndarray:
        base = ((np.arange(y0, y1)[:, None] // 64) * 37 + (np.arange(width)[None, :] // 64) * 11 + seed) % 256
        if channels is None:
            return base.astype(np.uint8)
        return np.stack([(base + 85 * c) % 256 for c in range(channels)], axis=2).astype(np.uint8)

    return rows


def test_a_12_mp_file_is_composited_band_by_band_in_1_gb_of_address_space(tmp_path: Path) -> None:
    path = tmp_path / "large.psb"
    width, height = 4000, 3000
    layers: list[dict[str, Any]] = [
        {"name": "Background", "rect": (0, 0, height, width), "colour": _blocks(width, 1, 3)},
        {
            "name": "Subject",
            "rect": (500, 600, 2500, 3400),
            "colour": _blocks(2800, 2, 3),
            "alpha": _blocks(2800, 3, None),
            "mask": ((0, 0, 1500, width), 255, _blocks(width, 4, None)),
        },
        {"group": [{"name": "Veil", "rect": (0, 0, height, 2000), "colour": _blocks(2000, 5, 3),
                    "alpha": _blocks(2000, 6, None), "opacity": 128}], "name": "Group", "opacity": 180},
    ]  # fmt: skip
    write_layered(path, width, height, layers, psb=True)

    def composite(budget: float) -> str:
        result = subprocess.run(
            [sys.executable, "-c", COMPOSITE_UNDER_CAP, str(path), str(budget)],
            capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2],
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    assert composite(budget=4) == "bands 3000"
    # The cap is real: psd-tools, asked to do the same file at once, runs out of it.
    assert composite(budget=100) == "TooLarge"


def test_the_budget_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="psd_layer_budget_megapixels"):
        parse_config("psd_layer_budget_megapixels: 0\n", Path("."))


# -- end to end ------------------------------------------------------------------------


def _layered_photo(path: Path) -> tuple[int, int]:
    """The astronaut as a background layer, a half-transparent grey veil over its top half."""
    rgb = photo("astronaut")
    height, width = rgb.shape[:2]
    veil = np.full((height // 2, width, 3), 128, np.uint8)
    layers: list[dict[str, Any]] = [
        {"name": "Background", "rect": (0, 0, height, width), "colour": rgb},
        {"name": "Veil", "rect": (0, 0, height // 2, width), "colour": veil, "opacity": 64},
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_layered(path, width, height, layers)
    return width, height


def test_hotmatte_process_cuts_out_a_psd_without_merged_image(tmp_path: Path) -> None:
    size = _layered_photo(tmp_path / "in" / "shoot.psd")
    result = run_hotmatte(
        "process",
        "--device",
        "cpu",
        "--model-size",
        SMALL_MODEL_SIZE,
        "-o",
        tmp_path / "out",
        tmp_path / "in",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert_cutout_of(tmp_path / "out" / "shoot.png", size)
    with Image.open(tmp_path / "out" / "shoot.png") as output:
        colour = np.asarray(output.convert("RGBA"))[..., :3]
    # The veil is there: the top half is pulled towards grey, the bottom half is not.
    original = photo("astronaut")
    assert np.abs(colour[300:].astype(int) - original[300:]).mean() < 3
    assert np.abs(colour[:200].astype(int) - original[:200]).mean() > 10


def test_the_daemon_cuts_out_a_psd_without_merged_image_band_by_band(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "c.yaml", [folder_settings(tmp_path, "hot")], psd_layer_budget_megapixels=0.01
    )
    with Daemon(config) as daemon:
        daemon.wait_for("start")
        size = _layered_photo(tmp_path / "hot" / "shoot.psd")
        done = daemon.wait_for("done", timeout=120)
        assert_cutout_of(Path(done[0]["output"]), size)
        assert daemon.terminate() == 0
