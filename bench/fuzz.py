"""A longer fuzz run of every reader: thousands of damaged files, counted by format and outcome.

    python bench/fuzz.py --cases 2000 --seed 1 --label after

Uses the seeded mutator of the suite's fuzz test (``tests/io/fuzz_corpus.py``) at larger
counts, in the same memory-capped worker (``tests/io/fuzz_runner.py``): each case is
``open_image`` + ``proxy`` + every band. The table (per format, per outcome class) goes into
``bench/results/fuzz.json`` under ``--label``, so a run on the code before a change and one
after, with the same seed, sit side by side. An outcome outside ``daemon.errors`` (or a hang
or crash) is a reader bug; a few examples of each are kept with their case names so they can
be rebuilt (``build_cases`` with the same seed).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.io.fuzz_corpus import build_cases  # noqa: E402
from tests.io.fuzz_runner import Worker  # noqa: E402

RESULTS = REPO / "bench" / "results" / "fuzz.json"
EXAMPLES_PER_CLASS = 3


def run(cases: int, seed: int, timeout: float) -> dict[str, Any]:
    per_format: dict[str, Counter[str]] = defaultdict(Counter)
    examples: dict[str, list[str]] = defaultdict(list)
    peak_rss_kb = 0
    slowest = (0.0, "")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hotmatte-fuzz-") as tmp, Worker(timeout=timeout) as worker:
        for case in build_cases(Path(tmp), cases, seed):
            result = worker.run(case.path)
            label = "ok" if result.outcome == "ok" else result.outcome
            per_format[case.format][label] += 1
            peak_rss_kb = max(peak_rss_kb, result.max_rss_kb)
            slowest = max(slowest, (result.seconds, case.path.name))
            if not result.acceptable and len(examples[label]) < EXAMPLES_PER_CLASS:
                examples[label].append(f"{case.path.name} ({case.mutation}): {result.message[:160]}")
    foreign = sum(n for counts in per_format.values() for k, n in counts.items() if _foreign(k))
    return {
        "cases": cases,
        "seed": seed,
        "per_case_timeout_s": timeout,
        "seconds": round(time.monotonic() - started, 1),
        "foreign_outcomes": foreign,
        "per_format": {fmt: dict(sorted(c.items())) for fmt, c in sorted(per_format.items())},
        "totals": dict(sorted(sum(per_format.values(), Counter()).items())),
        "peak_worker_rss_mb": round(peak_rss_kb / 1024, 1),
        "slowest_case": {"seconds": round(slowest[0], 2), "case": slowest[1]},
        "examples": dict(examples),
    }


def _foreign(outcome: str) -> bool:
    return outcome != "ok" and not outcome.startswith("daemon.errors.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per case before it is a hang")
    parser.add_argument("--label", default="latest", help="key of this run in the results file")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    report = run(args.cases, args.seed, args.timeout)
    table = json.loads(args.out.read_text()) if args.out.exists() else {}
    table[args.label] = report
    args.out.write_text(json.dumps(table, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("seconds", "foreign_outcomes", "totals")}, indent=2))


if __name__ == "__main__":
    main()
