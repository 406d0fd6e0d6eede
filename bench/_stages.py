"""The per-stage CPU section of bench/throughput.py: this checkout, and optionally a base one.

Each tree is measured by bench/_stage_cpu.py in its own process (``PYTHONPATH`` = the tree),
on the same files, one after the other; the outputs of the two are compared pixel by pixel
(largest absolute difference, and how many samples differ), so "faster" never hides "different".
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tifffile
from _dataset import build_stage_files
from _runs import REPO
from PIL import Image

WORKER = REPO / "bench" / "_stage_cpu.py"
#: The cores of the GPU workstation the ceiling is quoted for.
CORES = 16
#: (label, files, profile, format, profile knobs set where the tree's Profile has them).
PATHS: tuple[tuple[str, str, str, str, dict[str, str]], ...] = (
    ("12 MP JPEG → RGBA PNG (raw)", "jpeg12", "raw", "png", {}),
    ("24 MP 16-bit TIFF → 16-bit TIFF (raw)", "tiff24", "raw", "tiff", {}),
    ("24 MP JPEG → JPEG on white (product)", "jpeg24", "product", "jpeg", {}),
    # The same TIFF path uncompressed; a tree without the knob writes its own default.
    (
        "24 MP 16-bit TIFF → TIFF, tiff_compression none",
        "tiff24",
        "raw",
        "tiff",
        {"tiff_compression": "none"},
    ),
)
STAGES = ("decode", "read", "compose", "encode", "total")


def _measure(tree: Path, files: dict[str, list[Path]], work: Path, repeats: int) -> list[dict[str, Any]]:
    spec = {
        "repeats": repeats,
        "work": str(work),
        "paths": [
            {
                "name": label,
                "files": [str(f) for f in files[key]],
                "profile": profile,
                "format": fmt,
                "knobs": knobs,
            }
            for label, key, profile, fmt, knobs in PATHS
        ],
    }
    spec_path = work.with_suffix(".json")
    work.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(WORKER), str(spec_path)],
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
        cwd=tree,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"stage measurement in {tree} failed:\n{done.stderr[-3000:]}")
    result: list[dict[str, Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    for path in result:
        cpu = path["cpu_seconds_per_image"]
        path["ceiling_images_per_second_16_cores"] = round(CORES / cpu["total"], 1) if cpu["total"] else None
    return result


def _pixels(path: Path) -> np.ndarray:
    if path.suffix == ".tif":
        return np.asarray(tifffile.imread(path))
    if path.suffix == ".png":
        return np.asarray(cv2.imread(str(path), cv2.IMREAD_UNCHANGED))
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def _compare(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    worst, differing, total = 0, 0, 0
    for old, new in zip(before["outputs"], after["outputs"], strict=True):
        a, b = _pixels(Path(old)).astype(np.int64), _pixels(Path(new)).astype(np.int64)
        if a.shape != b.shape:
            return {"identical": False, "note": f"shapes differ: {a.shape} vs {b.shape}"}
        diff = np.abs(a - b)
        worst = max(worst, int(diff.max()))
        differing += int(np.count_nonzero(diff))
        total += diff.size
    return {
        "identical": worst == 0,
        "max_abs_difference": worst,
        "fraction_of_samples_differing": round(differing / total, 8) if total else 0.0,
    }


def stage_section(work: Path, base: Path | None, repeats: int) -> dict[str, Any]:
    """Stage CPU for this checkout (``after``) and, given ``base``, that checkout (``before``)."""
    print("per-stage CPU outside the model (model skipped, fixed α)…", flush=True)
    files = build_stage_files(work / "inputs")
    section: dict[str, Any] = {
        "method": "time.process_time of each stage alone, model skipped (fixed α), 1 OpenCV/torch thread",
        "ceiling_cores": CORES,
        "after": _measure(REPO, files, work / "after", repeats),
    }
    if base is not None:
        section["base_tree"] = str(base)
        section["before"] = _measure(base, files, work / "before", repeats)
        section["comparison"] = {}
        for old, new in zip(section["before"], section["after"], strict=True):
            total_old = old["cpu_seconds_per_image"]["total"]
            total_new = new["cpu_seconds_per_image"]["total"]
            section["comparison"][new["name"]] = {
                "cpu_after_over_before": round(total_new / total_old, 3) if total_old else None,
                "output_bytes_after_over_before": round(
                    new["mean_output_bytes"] / old["mean_output_bytes"], 3
                ),
                **_compare(old, new),
            }
    for runs in (section.get("before", []), section["after"]):
        for path in runs:
            path.pop("outputs", None)
    return section


def print_stage_table(section: dict[str, Any]) -> None:
    print(f"\nCPU s per image outside the model; ceiling = {section['ceiling_cores']} cores / total")
    header = f"{'path':<42}{'tree':<8}" + "".join(f"{s:>9}" for s in STAGES) + f"{'img/s':>8}"
    print(header)
    for tree in ("before", "after"):
        for path in section.get(tree, []):
            cpu = path["cpu_seconds_per_image"]
            print(
                f"{path['name']:<42}{tree:<8}"
                + "".join(f"{cpu[s]:>9.3f}" for s in STAGES)
                + f"{path['ceiling_images_per_second_16_cores']:>8}"
            )
    for name, comparison in section.get("comparison", {}).items():
        print(f"{name}: {comparison}")
