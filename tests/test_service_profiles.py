"""Profiles and review routing through a real ``hotmatte run``: what a studio folder actually delivers."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from daemon.journal import Journal
from tests.conftest import photo
from tests.service_harness import Daemon, folder_settings, write_config


def jpeg_of(name: str, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(photo(name)).resize(size).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(autouse=True)
def _needs_weights(weights_dir: Path) -> None:
    """Every test here runs the real model."""


def test_product_id_photo_and_review_folders_deliver_what_they_promise(tmp_path: Path) -> None:
    folders = [
        folder_settings(tmp_path, "shop", profile="white_tiff"),
        folder_settings(tmp_path, "passport", profile="id_photo"),
        folder_settings(tmp_path, "doubtful", review_below=1.0),
    ]
    profiles = {"white_tiff": {"extends": "product", "output_format": "tiff", "canvas": "square"}}
    config = write_config(tmp_path / "c.yaml", folders, profiles=profiles)
    with Daemon(config) as daemon:
        daemon.wait_for("start")
        (tmp_path / "shop" / "rocket.jpg").write_bytes(jpeg_of("rocket", (320, 214)))
        (tmp_path / "passport" / "face.jpg").write_bytes(jpeg_of("astronaut", (512, 512)))
        (tmp_path / "passport" / "cup.jpg").write_bytes(jpeg_of("coffee", (300, 200)))
        (tmp_path / "doubtful" / "cat.jpg").write_bytes(jpeg_of("chelsea", (300, 200)))
        daemon.wait_for("done", count=3, timeout=120)
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

    # review_below 1.0: every result goes to review_dir, not the output tree, and the journal says so.
    assert (tmp_path / "doubtful-out-review" / "cat.png").is_file()
    assert not (tmp_path / "doubtful-out" / "cat.png").exists()
    journal = Journal.open_read_only(tmp_path / "state" / "journal.sqlite")
    try:
        assert journal.in_review() == {"doubtful": 1}
    finally:
        journal.close()
