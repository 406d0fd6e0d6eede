"""Bar chart of a throughput result: ``python bench/_chart.py RESULT.json CHART.png``.

Run with the benchmark's own environment (bench/.venv-rembg has matplotlib); matplotlib is
never a dependency of hotmatte itself.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

STAGE_COLOURS = {"decode": "#8fb8de", "model": "#3b6ea8", "finish": "#f2a65a"}


def _bars(axis: Any, names: list[str], values: list[float], label: str, title: str) -> None:
    colours = ["#3b6ea8" if "hotmatte" in n else "#999999" for n in names]
    bars = axis.bar(names, values, color=colours)
    for bar, value in zip(bars, values, strict=True):
        axis.annotate(f"{value:.3g}", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom")
    axis.set_ylabel(label)
    axis.set_title(title, fontsize=9)
    axis.tick_params(axis="x", labelsize=7)


def draw(result: dict[str, Any], target: Path) -> None:
    runs = [r for r in result["runs"] if isinstance(r, dict)]
    names = [str(r["name"]) for r in runs]
    ratios = {k: v for k, v in result.get("ratios", {}).items() if "images/s" in k}
    figure, (rate, cpu, stages) = plt.subplots(1, 3, figsize=(15, 4.8))
    _bars(
        rate,
        names,
        [float(r["images_per_second"]) for r in runs],
        "images / s (higher is better)",
        "\n".join(f"{k}: {v:.2f}×" for k, v in ratios.items()) or "images / s",
    )
    _bars(
        cpu,
        names,
        [float(r["cpu_seconds_per_image"]) for r in runs],
        "CPU seconds per image (lower is better)",
        "CPU time per image (steadier on a shared machine)",
    )
    staged = [r for r in runs if r.get("stages")]
    bottom = [0.0] * len(staged)
    for stage, colour in STAGE_COLOURS.items():
        values = [float(r["stages"].get(stage, 0.0)) for r in staged]
        stages.bar([str(r["name"]) for r in staged], values, bottom=bottom, color=colour, label=stage)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    stages.set_ylabel("mean wall seconds per image in each stage")
    stages.set_title("hotmatte stages (they overlap in time)", fontsize=9)
    stages.legend()
    stages.tick_params(axis="x", labelsize=7)
    machine = result.get("machine", {})
    gpu = result.get("gpu", {}).get("status", "not measured")
    figure.suptitle(
        f"{result.get('images', '?')} JPEGs of 12 MP, same IS-Net weights; {machine.get('cpu', '?')}, "
        f"{machine.get('cores', '?')} cores, shared; GPU: {gpu}",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(target, dpi=110)


if __name__ == "__main__":
    draw(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))
