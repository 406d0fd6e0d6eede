"""A weights folder for machines that have none: random values in the IS-Net architecture.

The lent GPU machines receive at most 64 MiB beside the checkout and reach no registry, so the
88 MB fp16 weights arrive in two parts or not at all. Speed does not depend on the values, and
the CUDA-vs-CPU agreement tests compare two devices on the same values, so a folder shaped
exactly like ``hotmatte weights fetch``'s (safetensors + manifest with its sha256) lets every
loader run unchanged. The manifest says ``"random": true`` so reports can say which they had.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from daemon.matting.registry import DEFAULT_MODEL, build_model
from daemon.matting.weights import MANIFEST_NAME, WEIGHTS_NAME, sha256_of


def is_random(directory: Path) -> bool:
    manifest = json.loads((directory / MANIFEST_NAME).read_text(encoding="utf-8"))
    return bool(manifest.get("random"))


def random_weights_dir(directory: Path, seed: int = 0) -> Path:
    """Write fp16 random weights and their manifest into ``directory`` (made if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = build_model(DEFAULT_MODEL)
    state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    save_file({k: v.contiguous() for k, v in state.items()}, str(directory / WEIGHTS_NAME))
    manifest = {
        "model": DEFAULT_MODEL,
        "file": WEIGHTS_NAME,
        "sha256": sha256_of(directory / WEIGHTS_NAME),
        "dtype": "float16",
        "random": True,
        "source": f"random initialisation (torch.manual_seed({seed})): timings and device agreement only",
    }
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return directory


def joined_weights_dir(parts: list[Path], directory: Path, expected_sha256: str | None) -> Path:
    """Join ``split -n 2`` parts into a weights folder; refuse a join whose sha256 is not expected."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / WEIGHTS_NAME
    with open(target, "wb") as out:
        for part in parts:
            with open(part, "rb") as source:
                while block := source.read(1 << 20):
                    out.write(block)
    digest = sha256_of(target)
    if expected_sha256 is not None and digest != expected_sha256:
        raise ValueError(f"joined weights' sha256 {digest} is not the expected {expected_sha256}")
    manifest = {"model": DEFAULT_MODEL, "file": WEIGHTS_NAME, "sha256": digest, "dtype": "float16"}
    manifest["source"] = f"joined from {len(parts)} parts"
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return directory
