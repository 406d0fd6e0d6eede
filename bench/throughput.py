"""Throughput side by side with rembg: ``.venv/bin/python bench/throughput.py`` (``make bench-throughput``).

On one folder (24 JPEGs of 12 MP built from scikit-image's photos, or ``--images DIR``), in
one go, with the same IS-Net weights:

1. ``hotmatte process --profile raw``;
2. the daemon, ``hotmatte run``: the folder is copied into its hot folder and timed until the
   last output exists;
3. rembg 2.0.86, ``rembg p -m dis_custom`` on the ONNX that ``hotmatte weights fetch`` rebuilt.
   rembg lives in its own environment, ``bench/.venv-rembg``, made here on first use (with
   matplotlib for the chart); neither is ever a dependency of hotmatte.

4. CPU seconds per image OUTSIDE the model, per stage (decode, read, compose, encode), on three
   paths (12 MP JPEG → RGBA PNG, 24 MP 16-bit TIFF → 16-bit TIFF, 24 MP JPEG → JPEG on white
   with ``product``), with the model skipped (bench/_stage_cpu.py), and the ceiling they imply
   for a 16-core box whose model costs nothing. ``--base TREE`` measures a checkout of an
   older commit the same way in the same run (before/after), and compares the outputs.

Writes ``bench/results/throughput-<time>.json`` and a PNG bar chart beside it (also copied to
``throughput-latest.*``). On CUDA it also measures the model alone at 1024² for batches 1–16.

The CPU is shared on the development machines: wall-clock numbers are noisy, so the ratios
are taken within one run and CPU seconds per image (steadier) are reported too. ``--repeat N``
runs the three N times in turn and keeps each one's median.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

# Helpers beside this script; it runs as a script, so its folder is on sys.path.
from _dataset import build_dataset, count_images
from _runs import REPO, RunResult, run_daemon, run_process, run_rembg
from _stages import print_stage_table, stage_section

RESULTS = REPO / "bench" / "results"
REMBG_VENV = REPO / "bench" / ".venv-rembg"
REMBG_REQUIREMENTS = ("rembg[cpu,cli]==2.0.86", "matplotlib")
MODEL = REPO / "weights" / "isnet-general-use.onnx"
RUNNERS = ("process", "daemon", "rembg")


def ensure_rembg() -> Path:
    """rembg's own venv; created (from PyPI) the first time."""
    rembg = REMBG_VENV / "bin" / "rembg"
    if not rembg.exists():
        print(f"creating {REMBG_VENV} with {' '.join(REMBG_REQUIREMENTS)} (once)…", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(REMBG_VENV)], check=True)
        subprocess.run(
            [str(REMBG_VENV / "bin" / "pip"), "install", "--quiet", *REMBG_REQUIREMENTS], check=True
        )
    return rembg


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "load_average_before": os.getloadavg(),
    }


def one_round(images: Path, count: int, work: Path, which: list[str], timeout: float) -> dict[str, RunResult]:
    results = {}
    for name in which:
        target = work / name
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        print(f"  {name}…", end=" ", flush=True)
        if name == "process":
            result = run_process(images, target / "out", count, timeout)
        elif name == "daemon":
            result = run_daemon(images, target, count, timeout)
        else:
            result = run_rembg(images, target / "out", count, ensure_rembg(), MODEL, timeout)
        print(
            f"{result.images_per_second:.3f} images/s, {result.cpu_seconds_per_image:.2f} CPU s/image"
            + ("" if result.ok else "  (INCOMPLETE)"),
            flush=True,
        )
        results[name] = result
    return results


def median_run(runs: list[RunResult]) -> RunResult:
    """The run with the median wall time (its own stages and notes kept)."""
    ordered = sorted(runs, key=lambda r: r.wall_seconds)
    chosen = ordered[len(ordered) // 2]
    if len(runs) > 1:
        chosen.notes.append(
            "median of " + ", ".join(f"{r.images_per_second:.3f}" for r in runs) + " images/s"
        )
    return chosen


def ratios(runs: dict[str, RunResult]) -> dict[str, float]:
    out: dict[str, float] = {}
    rembg = runs.get("rembg")
    if rembg is None or not rembg.images_per_second:
        return out
    for name in ("process", "daemon"):
        run = runs.get(name)
        if run is not None and run.ok:
            out[f"{name}/rembg images/s"] = round(run.images_per_second / rembg.images_per_second, 2)
            if run.cpu_seconds_per_image:
                out[f"{name}/rembg CPU efficiency"] = round(
                    rembg.cpu_seconds_per_image / run.cpu_seconds_per_image, 2
                )
    return out


def gpu_section(runs: dict[str, RunResult]) -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available():
        return {"status": "not measured: no CUDA device on this machine"}
    from _gpu import model_only

    section = model_only()
    best = float(section["model_only_best"])
    for name in ("process", "daemon"):
        if name in runs and best:
            section[f"{name}_fraction_of_model_only"] = round(runs[name].images_per_second / best, 3)
    return section


def print_table(result: dict[str, Any]) -> None:
    print(f"\n{'run':<24}{'images/s':>10}{'wall s':>9}{'CPU s/img':>11}   stages (mean s per image)")
    for run in result["runs"]:
        stages = "  ".join(f"{k} {v:.3f}" for k, v in run["stages"].items()) or "-"
        print(
            f"{run['name']:<24}{run['images_per_second']:>10.3f}{run['wall_seconds']:>9.1f}"
            f"{run['cpu_seconds_per_image']:>11.2f}   {stages}"
        )
    for key, value in result["ratios"].items():
        print(f"{key}: {value:.2f}×")
    print(f"GPU: {result['gpu']}")
    if "stage_cpu" in result:
        print_stage_table(result["stage_cpu"])


def save(result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RESULTS / f"throughput-{stamp}.json"
    path.write_text(json.dumps(result, indent=1), encoding="utf-8")
    shutil.copyfile(path, RESULTS / "throughput-latest.json")
    chart = path.with_suffix(".png")
    python = REMBG_VENV / "bin" / "python"
    # The chart needs matplotlib from rembg's venv, which a stage-only run (--only) never makes.
    drawn = (
        subprocess.run([str(python), str(REPO / "bench" / "_chart.py"), str(path), str(chart)], check=False)
        if python.exists()
        else None
    )
    if drawn is not None and drawn.returncode == 0:
        shutil.copyfile(chart, RESULTS / "throughput-latest.png")
    else:
        print("the chart could not be drawn (bench/.venv-rembg has matplotlib)", file=sys.stderr)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, help="folder of images (default: build the 24 × 12 MP set)")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--only", nargs="*", choices=RUNNERS, default=list(RUNNERS), help="runs to do")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of all runs; medians are kept")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed for one run")
    parser.add_argument("--base", type=Path, help="a checkout of the commit to compare with (stage CPU)")
    parser.add_argument(
        "--stage-repeats",
        type=int,
        default=1,
        help="turns per path, before and after alternating; least CPU kept",
    )
    parser.add_argument("--no-stages", action="store_true", help="skip the per-stage CPU measurement")
    args = parser.parse_args(argv)
    if "rembg" in args.only:
        ensure_rembg()  # rembg, and matplotlib for the chart
    work = args.work or Path(tempfile.mkdtemp(prefix="hotmatte-throughput-"))
    try:
        images = args.images or work / "images" / "shoot"
        if args.images is None and args.only:
            print(f"building the test folder in {images}…", flush=True)
            build_dataset(images)
        count = count_images(images) if args.only else 0
        info = machine()
        rounds: dict[str, list[RunResult]] = {name: [] for name in args.only}
        for round_no in range(args.repeat):
            print(f"round {round_no + 1}/{args.repeat} on {count} images:", flush=True)
            for name, run in one_round(images, count, work / "runs", args.only, args.timeout).items():
                rounds[name].append(run)
        runs = {name: median_run(results) for name, results in rounds.items() if results}
        stages = None if args.no_stages else stage_section(work / "stages", args.base, args.stage_repeats)
        info["load_average_after"] = os.getloadavg()
        result: dict[str, Any] = {
            "images": count,
            "image_folder": str(args.images or "built: 24 × 12 MP JPEG from scikit-image photos"),
            "machine": info,
            "runs": [r.to_dict() for r in runs.values()],
            "ratios": ratios(runs),
            "gpu": gpu_section(runs),
        }
        if stages is not None:
            result["stage_cpu"] = stages
        print_table(result)
        print(f"\nsaved {save(result)}")
        return 0 if all(r.ok for r in runs.values()) else 1
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
