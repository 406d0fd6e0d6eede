"""What a studio folder delivers through a real ``hotmatte run``: profiles, review, formats, collisions."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from daemon.journal.store import Journal
from tests.conftest import farthest_island, photo
from tests.service_harness import Daemon, folder_settings, write_config


def jpeg_of(name: str, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(photo(name)).resize(size).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def _needs_weights(weights_dir: Path) -> None:
    """Every test here runs the real model."""


def test_every_profile_folder_delivers_what_it_promises(tmp_path: Path) -> None:
    folders = [
        folder_settings(tmp_path, "shop", profile="white_tiff"),
        folder_settings(tmp_path, "passport", profile="id_photo"),
        folder_settings(tmp_path, "people", profile="portrait"),
        folder_settings(tmp_path, "busy", profile="complex_background"),
        folder_settings(tmp_path, "doubtful", review_below=1.0),
    ]
    profiles = {"white_tiff": {"extends": "product", "output_format": "tiff", "canvas": "square"}}
    config = write_config(tmp_path / "c.yaml", folders, profiles=profiles)
    with Daemon(config) as daemon:
        daemon.wait_for("start")
        (tmp_path / "shop" / "rocket.jpg").write_bytes(jpeg_of("rocket", (320, 214)))
        (tmp_path / "passport" / "face.jpg").write_bytes(jpeg_of("astronaut", (512, 512)))
        (tmp_path / "passport" / "cup.jpg").write_bytes(jpeg_of("coffee", (300, 200)))
        (tmp_path / "people" / "face.jpg").write_bytes(jpeg_of("astronaut", (512, 512)))
        (tmp_path / "busy" / "cup.jpg").write_bytes(jpeg_of("coffee", (300, 200)))
        (tmp_path / "doubtful" / "cat.jpg").write_bytes(jpeg_of("chelsea", (300, 200)))
        (tmp_path / "doubtful" / "cup.jpg").write_bytes(jpeg_of("coffee", (300, 200)))
        daemon.wait_for("done", count=6, timeout=180)
        daemon.wait_for("failed", path="cup.jpg", timeout=60)
        assert daemon.terminate() == 0

    # product: a square canvas, pure white wherever the subject is not.
    with Image.open(tmp_path / "shop-out" / "rocket.tif") as shop:
        product = np.asarray(shop)
    assert product.shape[0] == product.shape[1] and product.shape[2] == 3
    border = np.concatenate([product[0], product[-1], product[:, 0], product[:, -1]])
    assert (border == 255).all()

    # id_photo: exactly 35×45 mm at 300 dpi; a photo without a face is a readable failure.
    with Image.open(tmp_path / "passport-out" / "face.jpg") as passport:
        assert passport.size == (413, 531)
        assert tuple(round(v) for v in passport.info["dpi"]) == (300, 300)
    record = json.loads((tmp_path / "passport-out-errors" / "cup.jpg.error.json").read_text())
    assert record["error_class"] == "NoFaceFound"
    assert not (tmp_path / "passport-out" / "cup.jpg").exists()

    # portrait: transparent; opaque pixels keep the photo's colours exactly, soft edges are unmixed.
    source = np.asarray(Image.open(tmp_path / "people" / "face.jpg"))
    with Image.open(tmp_path / "people-out" / "face.png") as people:
        assert people.mode == "RGBA"
        portrait = np.asarray(people)
    alpha = portrait[..., 3]
    assert alpha[70:150, 180:260].mean() > 240 and alpha[200:300, 440:].mean() < 30
    np.testing.assert_array_equal(portrait[alpha == 255][:, :3], source[alpha == 255])
    soft = (alpha > 25) & (alpha < 230)
    assert soft.sum() > 500
    assert np.abs(portrait[soft][:, :3].astype(int) - source[soft]).mean() > 3

    # complex_background: only the subject and its own edge are left; raw keeps a far-off island.
    busy = np.asarray(Image.open(tmp_path / "busy-out" / "cup.png"))[..., 3]
    raw = np.asarray(Image.open(tmp_path / "doubtful-out-review" / "cup.png"))[..., 3]
    assert farthest_island(busy) < 12 < 40 < farthest_island(raw)

    # review_below 1.0: every result goes to review_dir, not the output tree, and the journal says so.
    assert (tmp_path / "doubtful-out-review" / "cat.png").is_file()
    assert not (tmp_path / "doubtful-out" / "cat.png").exists()
    journal = Journal.open_read_only(tmp_path / "state" / "journal.sqlite")
    try:
        assert journal.in_review() == {"doubtful": 2}
    finally:
        journal.close()


def test_tiff_psd_png_and_webp_drops_come_out_with_their_depth_and_profile(tmp_path: Path) -> None:
    import shutil

    import cv2
    import tifffile
    from PIL import ImageCms

    from tests.conftest import REPO

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    config = write_config(tmp_path / "c.yaml", [folder_settings(tmp_path, "hot", output_format="tiff")])
    hot = tmp_path / "hot"
    rgb16 = photo("coffee").astype(np.uint16) * 257
    with Daemon(config) as daemon:
        daemon.wait_for("start")
        tifffile.imwrite(
            hot / "deep.tif", rgb16, photometric="rgb", compression="lzw", iccprofile=srgb, tile=(64, 64)
        )
        shutil.copy(REPO.parent / "shared" / "corpus" / "psd" / "300dpi.psb", hot / "layered.psb")
        cv2.imwrite(str(hot / "deep16.png"), cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
        Image.fromarray(photo("chelsea")).save(hot / "cat.webp", lossless=True)
        daemon.wait_for("done", count=4, timeout=120)
        # cat.jpg would overwrite cat.webp's result: it is refused with a reason instead.
        Image.fromarray(photo("rocket")).save(hot / "cat.jpg")
        daemon.wait_for("failed", path="cat.jpg", timeout=60)
        assert daemon.terminate() == 0

    out = tmp_path / "hot-out"
    for name, depth in (("deep.tif", 16), ("layered.tif", 16), ("deep16.tif", 16), ("cat.tif", 8)):
        with tifffile.TiffFile(out / name) as tif:
            page = tif.pages.first
            assert isinstance(page, tifffile.TiffPage)
            assert page.samplesperpixel == 4 and page.bitspersample == depth, name
            assert page.iccprofile or name in ("deep16.tif", "cat.tif"), f"{name} lost its colour profile"
    assert np.array_equal(tifffile.imread(out / "deep.tif")[..., :3], rgb16)
    assert tifffile.imread(out / "cat.tif").shape[:2] == photo("chelsea").shape[:2]  # not the rocket
    record = json.loads((tmp_path / "hot-out-errors" / "cat.jpg.error.json").read_text())
    assert record["error_class"] == "OutputCollision" and "cat.webp" in record["reason"]
