"""Start-up of ``hotmatte process``: ``python bench/startup.py [--base TREE] [--rounds N]``.

For this checkout (and ``--base``, a checkout of an older commit, in the same run, alternating):

- ``imports``: seconds to import what ``process`` needs (``daemon.cli``, the pipeline);
- ``engine``: seconds to resolve, verify and load the weights and build the model;
- ``first_file``: wall seconds of ``hotmatte process`` on one 640×480 JPEG, start to exit
  (imports, model load, one inference at 1024², one finish), and its CPU seconds.

The least of ``--rounds`` runs is kept (the least disturbed on a shared machine). Writes
bench/results/startup.json.
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
from typing import Any

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
PROBE = """
import json, time
t0 = time.perf_counter()
import daemon.cli, daemon.pipeline.stages, daemon.pipeline.batch
t1 = time.perf_counter()
from daemon.matting.engine import load_engine
load_engine()
t2 = time.perf_counter()
print(json.dumps({"imports": t1 - t0, "engine": t2 - t1}))
"""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _env(tree: Path) -> dict[str, str]:
    # The weights of this checkout serve both trees (a base worktree has no weights folder).
    return {**os.environ, "PYTHONPATH": str(tree), "HOTMATTE_WEIGHTS": str(REPO / "weights")}


def one_round(tree: Path, image: Path, work: Path) -> dict[str, float]:
    probe = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tree, env=_env(tree), capture_output=True, text=True, check=True
    )
    result: dict[str, float] = json.loads(probe.stdout.strip().splitlines()[-1])
    out = work / f"out-{time.monotonic_ns()}"
    cpu = _children_cpu()
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "daemon.cli", "process", "--profile", "raw", "-o", str(out), str(image)],
        cwd=tree,
        env=_env(tree),
        capture_output=True,
        check=True,
    )
    result["first_file"] = time.perf_counter() - started
    result["first_file_cpu"] = _children_cpu() - cpu
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", type=Path, help="a checkout of the commit to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "startup.json")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="hotmatte-startup-"))
    image = work / "small.jpg"
    import skimage.data

    Image.fromarray(skimage.data.chelsea()).resize((640, 480)).save(image, quality=90)
    trees = {"after": REPO} | ({"before": args.base} if args.base else {})
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            rounds[name].append(one_round(tree, image, work))
    best: dict[str, Any] = {
        name: {key: round(min(r[key] for r in runs), 3) for key in runs[0]} for name, runs in rounds.items()
    }
    report = {
        "rounds": args.rounds,
        "load_average": os.getloadavg(),
        "seconds (least of the rounds)": best,
        "base_tree": str(args.base) if args.base else None,
    }
    print(f"{'tree':<8}{'imports':>9}{'engine':>9}{'first file':>12}{'CPU s':>8}")
    for name, row in best.items():
        print(
            f"{name:<8}{row['imports']:>9.2f}{row['engine']:>9.2f}{row['first_file']:>12.2f}"
            f"{row['first_file_cpu']:>8.2f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
