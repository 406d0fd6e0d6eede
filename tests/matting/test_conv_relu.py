"""ConvReLU: the fused oneDNN convolution + ReLU gives the two-pass layer's α (bf16: bit for bit)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from daemon.matting import conv_relu
from daemon.matting.engine import load_engine, prepare
from tests.conftest import photo
from tests.matting.cores import needs_bf16_cores


@pytest.mark.skipif(not conv_relu.FUSE_ON_CPU, reason="this torch has no fused oneDNN convolution")
@pytest.mark.parametrize(
    "precision, tolerance",
    # fp32: oneDNN runs another algorithm with the post-op, 1.6e-7 apart at 1024², never a visible level.
    [pytest.param("bf16", 0.0, marks=needs_bf16_cores), ("fp32", 1e-5)],
)
def test_fused_convolutions_give_the_two_pass_alpha_exactly_in_bf16_and_within_rounding_in_fp32(
    weights_dir: Path, monkeypatch: pytest.MonkeyPatch, precision: str, tolerance: float
) -> None:
    engine = load_engine(weights_dir, device="cpu", size=320, precision=precision)  # type: ignore[arg-type]
    images = [prepare(photo(name), 320) for name in ("astronaut", "coffee")]
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        fused = engine.predict(images)
    assert any(event.name == "mkldnn::_convolution_pointwise" for event in profiler.events())
    monkeypatch.setattr(conv_relu, "FUSE_ON_CPU", False)
    two_pass = engine.predict(images)
    for one, other in zip(fused, two_pass, strict=True):
        assert 0.0 < float(one.mean()) < 1.0  # a real cut, not an empty or full α
        np.testing.assert_allclose(one, other, rtol=0, atol=tolerance)
