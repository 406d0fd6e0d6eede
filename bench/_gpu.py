"""On CUDA only: the model alone at 1024², batches 1–16, as the ceiling end-to-end runs are held to.

NOT MEASURED YET: no GPU was lent when this was written; the code path follows the engine
(fp16, channels_last) and must be checked on the first GPU run.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch

from daemon.matting.engine import load_engine

BATCHES = (1, 2, 4, 8, 16)
GFLOP_PER_IMAGE = 319.0  # IS-Net at 1024² (NOTES §1)


def model_only(size: int = 1024, repeats: int = 10) -> dict[str, Any]:
    """Images/s of ``engine.predict`` per batch size, after a warm-up; stops at the first OOM."""
    engine = load_engine(device="cuda", size=size)
    rng = np.random.default_rng(0)
    per_batch: dict[str, float] = {}
    for batch in BATCHES:
        images = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(batch)]
        try:
            engine.predict(images)  # warm-up: cuDNN picks its algorithms here
            torch.cuda.synchronize()
            started = time.perf_counter()
            for _ in range(repeats):
                engine.predict(images)
            torch.cuda.synchronize()
        except torch.OutOfMemoryError:
            break
        per_batch[str(batch)] = batch * repeats / (time.perf_counter() - started)
    best = max(per_batch.values(), default=0.0)
    return {
        "status": "measured",
        "device": torch.cuda.get_device_name(0),
        "model_only_images_per_second": {k: round(v, 2) for k, v in per_batch.items()},
        "model_only_best": round(best, 2),
        "model_only_tflops": round(best * GFLOP_PER_IMAGE / 1000, 1),
    }
