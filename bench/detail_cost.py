"""What the crop pass costs: ``portrait`` with ``detail: crops`` against ``detail: none`` on a 24 MP photo.

    .venv/bin/python bench/detail_cost.py [--size 6000x4000] [--device cpu]

Variants: ``detail: none``, ``portrait`` itself (``detail_budget: auto``: the device decides)
and ``detail_budget: 16`` (what ``auto`` gives on CUDA). Runs ``hotmatte process`` once per
variant on the same JPEG (a ``_scenes.large_scene`` on the studio backdrop) and reports wall
time, the process's CPU time (user + system: the fair figure on a shared machine), the load
average around the runs, and the per-stage timings, including the ``detail`` stage.
Results: ``bench/results/detail_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _scenes import large_scene
from PIL import Image
from quality import model_alpha

from daemon.matting.engine import load_engine
from daemon.refine.crops import choose_crops, resolve_budget

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
CONFIG = """profiles:
  portrait_flat: {extends: portrait, detail: none}
  portrait_budget_16: {extends: portrait, detail_budget: 16}
"""


def _run(source: Path, out: Path, config: Path, profile: str, device: str) -> dict[str, object]:
    report = out.with_suffix(".stages.json")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "daemon.cli", "process", "--config", str(config), "--device", device,
         "--profile", profile, "-o", str(out), str(source)],
        check=True, cwd=REPO, env={**os.environ, "HOTMATTE_STAGE_REPORT": str(report)},
        capture_output=True, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    stages = {s["name"]: s["mean_seconds"] for s in json.loads(report.read_text())["stages"]}
    seconds = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}
    return {"profile": profile, **seconds, "stages": stages}


def _crops(source: Path, device: str) -> dict[str, int]:
    """The crops ``portrait`` runs on ``source`` with ``auto`` on ``device`` and with 16 (one model run)."""
    engine = load_engine(None, device, 1024)
    alpha = model_alpha(engine, source)
    width, height = Image.open(source).size
    budgets = {"auto": resolve_budget("auto", engine.device), "16": 16}
    return {
        f"budget {name} ({budget})": len(choose_crops(alpha, width, height, 1024, 2048, 0.5, budget))
        for name, budget in budgets.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="6000x4000")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "studio.jpg"
        Image.fromarray(large_scene(0, "studio", (width, height)).composite()).save(source, quality=95)
        config = Path(tmp) / "config.yaml"
        config.write_text(CONFIG)
        crops = _crops(source, args.device)
        names = ("portrait_flat", "portrait", "portrait_budget_16")
        load_before = os.getloadavg()
        rows = [_run(source, Path(tmp) / name, config, name, args.device) for name in names]
        load_after = os.getloadavg()
    flat = rows[0]
    keys = ("wall_s", "cpu_s")
    ratios = {
        str(row["profile"]): {k: round(float(str(row[k])) / float(str(flat[k])), 2) for k in keys}
        for row in rows[1:]
    }
    result = {
        "size": args.size,
        "device": args.device,
        "crops": crops,
        # The machine is shared: its load (1, 5, 15 min) says how far the wall times can be trusted.
        "load average before, after": [[round(x, 2) for x in load_before], [round(x, 2) for x in load_after]],
        "runs": rows,
        "against detail none": ratios,
    }
    print(json.dumps(result, indent=1))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "detail_cost.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
