"""On a CUDA device: the fp16 engine and finishing on the device agree with the CPU.

Marked ``cuda`` (``pytest -m cuda``, run by ``make gpu-check``); skipped where torch sees no
CUDA device, so they never run on the development machines (no GPU has been lent to one yet:
the tolerances below are the first guess, to be confirmed by the first GPU run).

Weights: ``$HOTMATTE_WEIGHTS`` (``bench/gpu_check.py`` points it at the parts it joined, or at
random weights it made), else ``weights/``, else random weights of the same architecture made
here (a GPU machine receives at most 64 MiB beside the checkout; the fp16 file is 88 MB). With
random weights every alpha sits near 0.5, so the mask-agreement check is skipped and said.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from daemon.finish.cutout import cut_out
from daemon.finish.outputs import Destination
from daemon.io.detect import open_image
from daemon.matting.engine import load_engine, prepare
from daemon.profiles import BUILTIN_PROFILES
from tests.conftest import REPO, photo, save_jpeg
from tests.matting._random_weights import is_random, random_weights_dir

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real weights where there are any; else random ones, said in the test report."""
    configured = os.environ.get("HOTMATTE_WEIGHTS")
    if configured:
        return Path(configured)
    if (REPO / "weights" / "manifest.json").is_file():
        return REPO / "weights"
    print("test_cuda: no weights here; RANDOM weights of the same architecture")
    return random_weights_dir(tmp_path_factory.mktemp("random-weights"))


def test_fp16_channels_last_alpha_on_cuda_matches_fp32_on_the_cpu(weights_dir: Path) -> None:
    prepared = prepare(photo("astronaut"), 1024)
    cpu = load_engine(weights_dir, device="cpu", precision="fp32").predict([prepared])[0]
    cuda = load_engine(weights_dir, device="cuda").predict([prepared])[0]
    assert cuda.dtype == np.float32 and cuda.shape == cpu.shape
    assert float(np.abs(cuda - cpu).mean()) < 0.01
    if is_random(weights_dir):
        pytest.skip("random weights: every alpha is near 0.5, so masks at 0.5 cannot be compared")
    assert ((cuda > 0.5) == (cpu > 0.5)).mean() > 0.995


def test_batches_on_cuda_give_the_alphas_of_single_images(weights_dir: Path) -> None:
    engine = load_engine(weights_dir, device="cuda")
    images = [prepare(photo(name), 1024) for name in ("astronaut", "chelsea", "coffee")]
    batched = engine.predict_crops(images)
    for image, alpha in zip(images, batched, strict=True):
        assert float(np.abs(engine.predict([image])[0] - alpha).max()) < 0.01


def test_product_finish_on_cuda_matches_the_cpu(tmp_path: Path, weights_dir: Path) -> None:
    source = save_jpeg(tmp_path / "in.jpg", photo("chelsea"))
    engine = load_engine(weights_dir, device="cuda", size=1024)
    reader = open_image(source, max_megapixels=100)
    alpha = engine.predict([prepare(reader.proxy(1024), 1024)])[0]
    results = {}
    for device in ("cpu", "cuda"):
        target = tmp_path / f"{device}.jpg"
        product = BUILTIN_PROFILES["product"]
        cut_out(reader, alpha, Destination.at(target), product, device=torch.device(device))
        with Image.open(target) as image:
            results[device] = np.asarray(image.convert("RGB")).astype(np.int16)
    reader.close()
    difference = np.abs(results["cpu"] - results["cuda"])
    assert results["cpu"].shape == results["cuda"].shape
    assert float(difference.mean()) < 1.0
