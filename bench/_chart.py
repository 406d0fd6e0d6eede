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
CPU_STAGE_COLOURS = {"decode": "#8fb8de", "read": "#5b8fc7", "compose": "#f2a65a", "encode": "#c0504d"}


def _short(path_name: str) -> str:
    """A two-line tick label for a stage path ("24 MP 16-bit TIFF → TIFF, …" → "TIFF 24 MP\n…")."""
    source, _, rest = path_name.partition(" → ")
    size = " ".join(source.split()[:2])
    kind = source.split()[-1]
    # "TIFF, tiff_compression none" → "TIFF (none)"; "RGBA PNG (raw)" → "RGBA PNG".
    detail = f"{rest.split(', ')[0]} ({rest.split()[-1]})" if ", " in rest else rest.split(" (")[0]
    return f"{kind} {size}\n→ {detail}"


def _stage_cpu(axis: Any, section: dict[str, Any]) -> None:
    """Stacked CPU seconds per image outside the model, before and after, per path."""
    labels: list[str] = []
    rows: list[dict[str, float]] = []
    for before, after in zip(section.get("before", section["after"]), section["after"], strict=True):
        short = _short(str(after["name"]))
        if "before" in section:
            labels.append(f"{short}\nbefore")
            rows.append(before["cpu_seconds_per_image"])
        labels.append(f"{short}\nafter")
        rows.append(after["cpu_seconds_per_image"])
    bottom = [0.0] * len(rows)
    for stage, colour in CPU_STAGE_COLOURS.items():
        values = [float(r.get(stage, 0.0)) for r in rows]
        axis.bar(labels, values, bottom=bottom, color=colour, label=stage)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    for x, total in enumerate(bottom):
        axis.annotate(f"{total:.2f}", (x, total), ha="center", va="bottom", fontsize=7)
    axis.set_ylabel("CPU s per image outside the model (model skipped)")
    axis.set_title(f"ceiling on {section['ceiling_cores']} cores = cores / total", fontsize=9)
    axis.legend(fontsize=7)
    axis.tick_params(axis="x", labelsize=7)


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
    section = result.get("stage_cpu")
    panels = 4 if section else 3
    # The stage panel holds two bars per path: it gets twice the width of the others.
    widths = [1, 1, 1, 2] if section else [1, 1, 1]
    figure, axes = plt.subplots(
        1, panels, figsize=(5 * sum(widths), 5.2), gridspec_kw={"width_ratios": widths}
    )
    rate, cpu, stages = axes[:3]
    if section:
        _stage_cpu(axes[3], section)
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
