"""The torch port against onnxruntime running the published graph, on real photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from daemon.errors import ConfigError, WeightsError
from daemon.matting.engine import (
    MattingEngine,
    cpu_runs_bf16,
    cpu_vendor,
    default_precision,
    load_engine,
    prepare,
)
from tests.conftest import SMALL_MODEL_SIZE, photo
from tests.matting.cores import needs_bf16_cores
from tests.matting.onnx_reference import fp32_session, reference_alpha

PHOTOS = ("astronaut", "chelsea", "coffee")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    fa, fb = a > 0.5, b > 0.5
    return float((fa & fb).sum() / max(1, (fa | fb).sum()))


@pytest.fixture(scope="module")
def references(weights_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    session = fp32_session(weights_dir / "isnet-general-use.onnx")
    out = {}
    for name in PHOTOS:
        prepared = prepare(photo(name), 1024)
        out[name] = (prepared, reference_alpha(session, prepared))
    return out


@pytest.mark.parametrize(
    "precision, max_delta, min_iou",
    [
        ("fp32", 1e-3, 0.9999),
        pytest.param("bf16", 0.05, 0.99, marks=needs_bf16_cores),
    ],
)
def test_port_matches_onnxruntime(
    weights_dir: Path,
    references: dict[str, tuple[np.ndarray, np.ndarray]],
    precision: str,
    max_delta: float,
    min_iou: float,
) -> None:
    engine = load_engine(weights_dir, device="cpu", size=1024, precision=precision)  # type: ignore[arg-type]
    for name, (prepared, expected) in references.items():
        alpha = engine.predict([prepared])[0]
        delta = float(np.abs(alpha - expected).max())
        print(f"{precision} {name}: max|Δα| = {delta:.2e}, IoU = {iou(alpha, expected):.5f}")
        assert alpha.shape == (1024, 1024)
        assert delta <= max_delta, f"{name}: {precision} differs from onnxruntime by {delta}"
        assert iou(alpha, expected) >= min_iou
        # A real cut-out, not a constant map: both subject and background are present.
        assert 0.05 < float((alpha > 0.5).mean()) < 0.95


@pytest.fixture(scope="module")
def small_engine(weights_dir: Path) -> MattingEngine:
    return load_engine(weights_dir, device="cpu", size=SMALL_MODEL_SIZE, precision="fp32")


def test_batched_forward_equals_one_at_a_time(small_engine: MattingEngine) -> None:
    images = [prepare(photo(name), SMALL_MODEL_SIZE) for name in ("astronaut", "rocket")]
    together = small_engine.predict(images)
    alone = [small_engine.predict([image])[0] for image in images]
    for a, b in zip(together, alone, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-4)
    assert not np.allclose(together[0], together[1], atol=0.1)


def test_prepare_squashes_to_model_size() -> None:
    prepared = prepare(photo("chelsea"), 320)
    assert prepared.shape == (320, 320, 3) and prepared.dtype == np.uint8


def _cpuinfo_field(name: str) -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith(name):
            return line.split(":", 1)[1].strip()
    return ""


@pytest.mark.skipif(not Path("/proc/cpuinfo").exists(), reason="reads the kernel's CPU flags")
def test_the_cpu_runs_bf16_where_the_cores_have_amx_or_are_amds_with_the_bf16_dot_product() -> None:
    # Per 1024² image: with AMX 0.72 s against fp32's 1.57; on AMD Zen 5 (avx512_bf16) 0.40-0.48
    # against 1.00-1.29; on Intel's avx512_bf16 without AMX slower than fp32 (2.1-2.2 s against
    # 1.4-1.8). The kernel's flags decide the expectation, independently of torch's probes.
    flags = set(_cpuinfo_field("flags").split())
    amx = {"amx_tile", "amx_bf16"} <= flags
    amd_dot = "avx512_bf16" in flags and _cpuinfo_field("vendor_id") == "AuthenticAMD"
    expected = "bf16" if amx or amd_dot else "fp32"
    assert default_precision(torch.device("cpu")) == expected


def test_the_cpu_vendor_is_the_kernels_vendor_id() -> None:
    expected = _cpuinfo_field("vendor_id") if Path("/proc/cpuinfo").exists() else ""
    assert cpu_vendor() == expected


def test_a_precision_the_device_cannot_run_is_named_before_the_weights_are_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_engine(tmp_path / "no weights here", device="cpu", precision="fp16")
    assert caught.value.problems == [
        "precision: fp16 runs on CUDA only (the device is cpu); use auto, fp32 or bf16"
    ]


def test_bf16_is_refused_before_the_weights_are_read_exactly_where_the_cores_cannot_run_it(
    tmp_path: Path,
) -> None:
    # On AVX2-only cores the first bf16 convolution raises: better a config error at start than
    # every file failing. Where they can, the same call goes on to look for the weights.
    if cpu_runs_bf16():
        with pytest.raises(WeightsError):
            load_engine(tmp_path / "no weights here", device="cpu", precision="bf16")
        return
    with pytest.raises(ConfigError) as caught:
        load_engine(tmp_path / "no weights here", device="cpu", precision="bf16")
    (problem,) = caught.value.problems
    assert problem.startswith("precision: bf16 needs a CPU with AVX-512 (BW, VL and DQ) or AVX-NE-CONVERT")
    assert problem.endswith("; use auto or fp32")
