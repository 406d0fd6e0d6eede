"""Band-wise alpha stitches with no seam; depth, ICC and DPI follow the input; GPU memory fallback."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
import torch
from PIL import Image, ImageCms

from daemon.finish import cutout, finishing
from daemon.finish.bands import Window
from daemon.finish.cutout import BAND_ROWS, upsample_alpha_band, write_cutout
from daemon.finish.outputs import Destination
from daemon.io.detect import open_image
from daemon.profiles import BUILTIN_PROFILES
from tests.conftest import photo


def test_bands_equal_one_piece_resize() -> None:
    rng = np.random.default_rng(1)
    alpha = cv2.GaussianBlur(rng.random((64, 64), dtype=np.float32), (7, 7), 0)
    width, height = 1000, 1337
    one_piece = cv2.resize(alpha, (width, height), interpolation=cv2.INTER_LINEAR)
    bands = [
        upsample_alpha_band(alpha, width, height, y, min(y + 300, height)) for y in range(0, height, 300)
    ]
    stitched = np.vstack(bands)
    assert stitched.shape == (height, width)
    np.testing.assert_allclose(stitched, one_piece, atol=2e-6)
    # Also the rows either side of every band boundary: no step between bands.
    for y in range(300, height, 300):
        assert np.abs(stitched[y] - stitched[y - 1]).max() <= np.abs(np.diff(one_piece, axis=0)).max() + 1e-6


def test_sixteen_bit_input_keeps_depth_and_icc(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    rgb16 = (rng.random((BAND_ROWS + 77, 300, 3)) * 65535).astype(np.uint16)
    source = tmp_path / "deep.png"
    cv2.imwrite(str(source), cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    reader = open_image(source, max_megapixels=10)
    alpha = np.linspace(0, 1, 64 * 64, dtype=np.float32).reshape(64, 64)
    out = write_cutout(reader, alpha, Destination.at(tmp_path / "out" / "deep.png"))
    written = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert written is not None
    assert written.dtype == np.uint16 and written.shape == (BAND_ROWS + 77, 300, 4)
    assert np.array_equal(cv2.cvtColor(written[..., :3], cv2.COLOR_BGR2RGB), rgb16)
    assert written[0, 0, 3] == 0 and written[-1, -1, 3] == 65535


@pytest.mark.parametrize("profile_name", ["raw", "product"])
def test_the_profiles_tiff_compression_is_what_the_tiff_output_gets(
    tmp_path: Path, profile_name: str
) -> None:
    source = tmp_path / "coffee.png"
    Image.fromarray(photo("coffee")).save(source)
    alpha = cv2.resize((photo("coffee")[..., 0] > 100).astype(np.float32), (64, 64))
    outputs = {}
    for compression in ("none", "deflate"):
        profile = BUILTIN_PROFILES[profile_name].model_copy(
            update={"output_format": "tiff", "tiff_compression": compression}
        )
        destination = Destination.at(tmp_path / compression / "coffee.tif")
        done = cutout.cut_out(open_image(source, max_megapixels=10), alpha, destination, profile)
        with tifffile.TiffFile(done.output) as tif:
            assert tif.pages.first.compression == {"none": 1, "deflate": 8}[compression]
            outputs[compression] = tif.pages.first.asarray()
    np.testing.assert_array_equal(outputs["none"], outputs["deflate"])  # only the bytes differ


def test_icc_and_dpi_follow_the_input(tmp_path: Path) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = tmp_path / "tagged.jpg"
    Image.new("RGB", (120, 80), (200, 30, 30)).save(source, icc_profile=icc, dpi=(300, 300))
    reader = open_image(source, max_megapixels=10)
    out = write_cutout(reader, np.ones((32, 32), np.float32), Destination.at(tmp_path / "tagged.png"))
    with Image.open(out) as written:
        assert written.info.get("icc_profile") == icc
        assert tuple(round(v) for v in written.info["dpi"]) == (300, 300)


def test_accelerator_out_of_memory_while_refining_finishes_on_the_cpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No GPU here: a "meta" device stands for it, and its windows fail as a full GPU would."""
    calls: list[str] = []

    def process_window(window: Window, plan: finishing.Plan, width: int, height: int) -> np.ndarray:
        calls.append(plan.device.type)
        if plan.device.type != "cpu":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return finishing.process_window(window, plan, width, height)

    monkeypatch.setattr("daemon.finish.cutout.process_window", process_window)
    source = tmp_path / "astronaut.png"
    Image.fromarray(photo("astronaut")).save(source)
    alpha = cv2.resize((photo("astronaut")[..., 0] > 128).astype(np.float32), (64, 64))
    profile = BUILTIN_PROFILES["portrait"].model_copy(update={"decontaminate": False, "save_mask": True})
    meta, cpu = (
        cutout.cut_out(
            open_image(source, max_megapixels=10),
            alpha,
            Destination.at(tmp_path / name / "a.png"),
            profile,
            device=device,
        )
        for name, device in (("gpu", torch.device("meta")), ("cpu", torch.device("cpu")))
    )
    assert calls[0] == "meta" and set(calls[1:]) == {"cpu"}
    assert meta.output.read_bytes() == cpu.output.read_bytes()
    assert meta.mask is not None and cpu.mask is not None
    assert meta.mask.read_bytes() == cpu.mask.read_bytes()
    assert sorted(p.name for p in (tmp_path / "gpu").iterdir()) == ["a.mask.png", "a.png"]


def test_out_of_memory_on_the_cpu_is_not_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def process_window(window: Window, plan: finishing.Plan, width: int, height: int) -> np.ndarray:
        raise torch.OutOfMemoryError("out of memory")

    monkeypatch.setattr("daemon.finish.cutout.process_window", process_window)
    source = tmp_path / "a.png"
    Image.fromarray(photo("coffee")).save(source)
    with pytest.raises(torch.OutOfMemoryError):
        cutout.cut_out(
            open_image(source, max_megapixels=10),
            np.ones((32, 32), np.float32),
            Destination.at(tmp_path / "out" / "a.png"),
            BUILTIN_PROFILES["portrait"],
            device=torch.device("cpu"),
        )
    assert list((tmp_path / "out").iterdir()) == []
