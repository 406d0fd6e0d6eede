"""The weights folders gpu_check and the CUDA tests make on a GPU machine without ``weights/``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from daemon.matting.engine import load_engine, prepare
from daemon.matting.weights import WEIGHTS_NAME, sha256_of
from tests.conftest import photo
from tests.matting._random_weights import is_random, joined_weights_dir, random_weights_dir


def test_random_weights_load_like_fetched_ones_and_say_they_are_random(tmp_path: Path) -> None:
    folder = random_weights_dir(tmp_path / "random")
    assert is_random(folder)
    engine = load_engine(folder, device="cpu", precision="fp32", size=256)
    alpha = engine.predict([prepare(photo("astronaut"), 256)])[0]
    assert alpha.shape == (256, 256) and np.isfinite(alpha).all()


def test_two_parts_join_into_the_fetched_file_and_a_wrong_order_is_refused(
    tmp_path: Path, weights_dir: Path
) -> None:
    data = (weights_dir / WEIGHTS_NAME).read_bytes()
    first, second = tmp_path / "w.partaa", tmp_path / "w.partab"
    first.write_bytes(data[: len(data) // 2])
    second.write_bytes(data[len(data) // 2 :])
    expected = json.loads((weights_dir / "manifest.json").read_text())["sha256"]
    joined = joined_weights_dir([first, second], tmp_path / "joined", expected)
    assert sha256_of(joined / WEIGHTS_NAME) == expected and not is_random(joined)
    load_engine(joined, device="cpu", precision="fp32", size=256)
    with pytest.raises(ValueError, match="sha256"):
        joined_weights_dir([second, first], tmp_path / "swapped", expected)
