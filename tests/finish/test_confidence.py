"""The per-image confidence: its formula on drawn mattes, and the real model's scores on real photos."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from daemon.finish.confidence import CRISP_BAND, confidence, coverage_score, edge_length
from daemon.matting.engine import load_engine, prepare
from tests.conftest import SMALL_MODEL_SIZE, photo


def _disc(blur: float = 0.0, radius: int = 150, side: int = 512) -> np.ndarray:
    alpha = np.zeros((side, side), np.float32)
    cv2.circle(alpha, (side // 2, side // 2), radius, 1.0, -1)
    return cv2.GaussianBlur(alpha, (0, 0), blur) if blur else alpha


def test_a_hard_cut_scores_one_and_a_fuzzy_edge_scores_by_its_width() -> None:
    assert confidence(_disc()) == 1.0
    fuzzy = _disc(blur=6.0)
    undecided = ((fuzzy > 0.1) & (fuzzy < 0.9)).sum()
    width = undecided / edge_length(fuzzy > 0.5)
    assert 10 < width < 20  # σ = 6 px: 0.1 → 0.9 spans about 2.56 σ
    assert confidence(fuzzy) == pytest.approx(CRISP_BAND / width, abs=1e-4)
    assert confidence(_disc(blur=2.0)) > confidence(fuzzy)


def test_cutting_almost_nothing_or_almost_everything_scores_towards_zero() -> None:
    assert confidence(np.zeros((100, 100), np.float32)) == 0.0
    assert confidence(np.ones((100, 100), np.float32)) == 0.0
    assert coverage_score(0.0025) == pytest.approx(0.5)  # half of the 0.5 % floor
    assert coverage_score(0.985) == pytest.approx(0.5)  # half-way from 97 % to all
    assert coverage_score(0.5) == 1.0
    small = _disc(radius=8)  # 0.08 % of the frame, crisp: the coverage score alone
    assert confidence(small) == pytest.approx(coverage_score(float((small > 0.5).mean())), abs=1e-4)


def test_the_real_model_is_sure_of_photos_with_a_subject_and_not_of_textures() -> None:
    engine = load_engine(None, "cpu", SMALL_MODEL_SIZE)

    def score(rgb: np.ndarray) -> float:
        return confidence(engine.predict([prepare(rgb, SMALL_MODEL_SIZE)])[0])

    gray = np.dstack([photo("camera")] * 3)
    for subject in (photo("astronaut"), photo("rocket"), gray):
        assert score(subject) > 0.2
    noise = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    for texture in (photo("grass"), photo("gravel"), noise):
        assert score(np.dstack([texture] * 3) if texture.ndim == 2 else texture) == 0.0
