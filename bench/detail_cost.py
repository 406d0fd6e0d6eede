"""What the crop pass costs: ``portrait`` with ``detail: crops`` against ``detail: none`` on a 24 MP photo.

    .venv/bin/python bench/detail_cost.py [--size 6000x4000] [--device cpu]

Runs ``hotmatte process`` once per variant on the same JPEG (a ``_scenes.large_scene`` on
the studio backdrop) and reports wall time, the process's CPU time (user + system: the fair
figure on a shared machine) and the per-stage timings, including the ``detail`` stage.
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

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
CONFIG = "profiles:\n  portrait_flat:\n    extends: portrait\n    detail: none\n"


def _run(source: Path, out: Path, config: Path, profile: str, device: str) -> dict[str, object]:
    report = out.with_suffix(".stages.json")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "daemon.cli", "process", "--config", str(config), "--device", device,
         "--profile", profile, "-o", str(out), str(source)],
        check=True, cwd=REPO, env={**os.environ, "HOTMATTE_STAGE_REPORT": str(report)},
    )  # fmt: skip
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    stages = {s["name"]: s["mean_seconds"] for s in json.loads(report.read_text())["stages"]}
    return {"profile": profile, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "stages": stages}


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
        names = ("portrait_flat", "portrait")
        rows = [_run(source, Path(tmp) / name, config, name, args.device) for name in names]
    flat, crops = rows
    ratio = {key: round(float(str(crops[key])) / float(str(flat[key])), 2) for key in ("wall_s", "cpu_s")}
    result = {"size": args.size, "device": args.device, "runs": rows, "crops / none": ratio}
    print(json.dumps(result, indent=1))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "detail_cost.json").write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
