"""Thumbnails for the console: small, atomic, keyed by journal row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from daemon.finish.thumbs import THUMB_SIDE, read_meta, shrink, thumb_key, thumb_path, write_thumbs


def test_thumbnails_are_bounded_and_the_after_carries_the_alpha(tmp_path: Path) -> None:
    proxy = np.random.default_rng(1).integers(0, 255, (1366, 2048, 3), dtype=np.uint8)
    alpha = np.zeros((1024, 1024), np.float32)
    alpha[:, :512] = 1.0  # left half kept
    before = shrink(proxy)
    assert max(before.shape[:2]) == THUMB_SIDE
    key = thumb_key("hot", "shoot/a.jpg")
    write_thumbs(tmp_path / "thumbs" / key, before, alpha, {"model": 0.5}, 0.75)
    with Image.open(thumb_path(tmp_path / "thumbs", key, "after")) as after:
        assert after.mode == "RGBA" and max(after.size) == THUMB_SIDE
        a = np.asarray(after)[..., 3]
    assert a[:, :100].min() == 255 and a[:, -100:].max() == 0
    with Image.open(thumb_path(tmp_path / "thumbs", key, "before")) as shown:
        assert shown.format == "JPEG" and shown.size == after.size
    assert read_meta(tmp_path / "thumbs", key) == {"timings": {"model": 0.5}, "confidence": 0.75}
    assert sorted(p.name for p in (tmp_path / "thumbs").iterdir()) == sorted(
        f"{key}{s}" for s in (".before.jpg", ".after.webp", ".json")
    )  # no temporaries left


def test_keys_differ_per_folder_and_path_and_accept_names_that_are_not_utf8() -> None:
    keys = {
        thumb_key("a", "x.jpg"),
        thumb_key("b", "x.jpg"),
        thumb_key("a", "y.jpg"),
        thumb_key("a", "caf\udce9.jpg"),
    }
    assert len(keys) == 4 and all(len(k) == 32 for k in keys)
