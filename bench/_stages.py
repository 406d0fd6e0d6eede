"""The per-stage CPU section of bench/throughput.py: this checkout, and optionally a base one.

Each tree is measured by its own bench/_stage_cpu.py worker process (``PYTHONPATH`` = the tree),
on the same files. The two are interleaved: every path is measured ``repeats`` times in turn,
before and after alternately (which goes first alternates too), and each file keeps its least
CPU per stage over all turns. Measuring one tree wholly and then the other put before/after
ratios at the mercy of the machine's drift: on a shared 2-core machine one such run measured
the base 1.7× slower than a run an hour earlier, while this checkout's half held still.
The outputs of the two are compared pixel by pixel (largest absolute difference, and how many
samples differ), so "faster" never hides "different".
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


class _Worker:
    """One tree's bench/_stage_cpu.py process, measuring one path per request."""

    def __init__(self, tree: Path, work: Path) -> None:
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self._stderr = work.with_suffix(".log").open("w+", encoding="utf-8")
        self._process = subprocess.Popen(
            [sys.executable, str(WORKER)],
            env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
            cwd=tree,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )

    def measure(self, path: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps({"path": path, "repeats": 1, "work": str(self.work)}) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        if not line:
            self._stderr.seek(0)
            raise RuntimeError(f"stage measurement in {self.work} failed:\n{self._stderr.read()[-3000:]}")
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=60)
        self._stderr.close()


def _path_spec(
    label: str, key: str, profile: str, fmt: str, knobs: dict[str, str], files: dict[str, list[Path]]
) -> dict[str, Any]:
    return {
        "name": label,
        "files": [str(f) for f in files[key]],
        "profile": profile,
        "format": fmt,
        "knobs": knobs,
    }


def _least(turns: list[dict[str, Any]]) -> dict[str, Any]:
    """One path's result from its turns: each file's least CPU per stage, averaged over the files."""
    first = turns[0]
    per_file = [
        {
            stage: min(turn["files"][i]["stages"][stage] for turn in turns)
            for stage in first["files"][i]["stages"]
        }
        for i in range(len(first["files"]))
    ]
    per_image = {stage: float(np.mean([f[stage] for f in per_file])) for stage in per_file[0]}
    per_image["compose"] = max(0.0, per_image["finish"] - per_image["read"] - per_image["encode"])
    per_image["total"] = per_image["decode"] + per_image["finish"]
    return {
        "name": first["name"],
        "files": len(per_file),
        "profile": first["profile"],
        "format": first["format"],
        "turns": len(turns),
        "cpu_seconds_per_image": {k: round(v, 4) for k, v in per_image.items()},
        "ceiling_images_per_second_16_cores": round(CORES / per_image["total"], 1)
        if per_image["total"]
        else None,
        "mean_output_bytes": int(np.mean([f["output_bytes"] for f in first["files"]])),
        "outputs": [f["output"] for f in first["files"]],
    }


def _measure(
    trees: dict[str, Path], files: dict[str, list[Path]], work: Path, repeats: int
) -> dict[str, list[dict[str, Any]]]:
    """``{tree name: [path results]}``, the trees' workers taking turns path by path."""
    workers = {name: _Worker(tree, work / name) for name, tree in trees.items()}
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    try:
        for label, key, profile, fmt, knobs in PATHS:
            spec = _path_spec(label, key, profile, fmt, knobs, files)
            turns: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
            order = list(trees)
            for turn in range(repeats):
                for name in order if turn % 2 == 0 else order[::-1]:
                    turns[name].append(workers[name].measure(spec))
            for name in trees:
                results[name].append(_least(turns[name]))
            print(
                f"  {label}: "
                + ", ".join(f"{n} {r[-1]['cpu_seconds_per_image']['total']:.3f}" for n, r in results.items()),
                flush=True,
            )
    finally:
        for worker in workers.values():
            worker.close()
    return results


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
    trees = {"after": REPO} if base is None else {"before": base, "after": REPO}
    measured = _measure(trees, files, work, repeats)
    section: dict[str, Any] = {
        "method": (
            "time.process_time of each stage alone, model skipped (fixed α), 1 OpenCV/torch thread; "
            "before and after measured in alternating turns, each file's least CPU per stage kept"
        ),
        "ceiling_cores": CORES,
        "after": measured["after"],
    }
    if base is not None:
        section["base_tree"] = str(base)
        section["before"] = measured["before"]
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
