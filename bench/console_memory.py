"""The console's memory over a long run, and what a ``/metrics`` scrape costs on a big journal.

    python bench/console_memory.py [--files 1000] [--good-every 1] [--batch-size auto] [--label NAME]

Part 1: a real ``hotmatte run`` with the console on, ``--files`` small photos dropped into one
hot folder (every ``--good-every``-th a good one, the others truncated: they fail fast in
decode), while a visitor scrapes ``/metrics`` and loads the overview every second, as a
Prometheus server and an operator's open tab do. VmRSS of the daemon is sampled every second
with the files settled so far, and the growth is reported from "warm" (a tenth of the files
settled: model, allocator pools and first pages in place) to the end, with the least-squares
slope over the second half in MiB per 100 files (flat means no growth).

Part 2: a 10,000-row journal (spread over 4 folders and every state) and the time one scrape
of a fresh :class:`~daemon.service.metrics.ServiceMetrics` takes over it (median of 50).

Results go to ``bench/results/console_memory.json`` under ``--label``.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from prometheus_client import generate_latest  # noqa: E402

from daemon.journal.store import Journal  # noqa: E402
from daemon.service.metrics import ServiceMetrics  # noqa: E402
from tests.service_harness import Daemon, folder_settings, small_photo_jpeg, write_config  # noqa: E402

RESULTS = REPO / "bench" / "results" / "console_memory.json"


def _get_ms(url: str) -> float:
    started = time.perf_counter()
    urllib.request.urlopen(url, timeout=30).read()
    return (time.perf_counter() - started) * 1000


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y)."""
    if len(points) < 2:
        return 0.0
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0


def memory_run(files: int, good_every: int, batch_size: str) -> dict[str, Any]:
    jpeg = small_photo_jpeg()
    corrupt = jpeg[: len(jpeg) // 2]
    with tempfile.TemporaryDirectory(prefix="hotmatte-console-memory-") as tmp:
        root = Path(tmp)
        config = write_config(
            root / "c.yaml",
            [folder_settings(root, "hot")],
            console={"listen": "127.0.0.1:0"},
            workers={
                "decode": 1,
                "finish": 1,
                "queue_size": 4,
                "batch_size": batch_size if batch_size == "auto" else int(batch_size),
            },
        )
        with Daemon(config) as daemon:
            base = str(daemon.wait_for("console", timeout=180)[0]["url"])
            samples: list[dict[str, float]] = []
            stop = threading.Event()
            started = time.monotonic()

            def settled() -> int:
                return len(daemon.named("done")) + len(daemon.named("failed"))

            def visit() -> None:  # every second: one scrape and one overview, timed; then RSS
                while not stop.is_set():
                    metrics_ms = _get_ms(base + "metrics")
                    overview_ms = _get_ms(base)
                    # The other pages too, untimed: their memory counts as much as the overview's.
                    for page in ("files", "failures", "review"):
                        _get_ms(base + page)
                    samples.append(
                        {
                            "t": round(time.monotonic() - started, 1),
                            "settled": settled(),
                            "rss_mib": round(daemon.memory_mb(), 1),
                            "metrics_ms": round(metrics_ms, 1),
                            "overview_ms": round(overview_ms, 1),
                        }
                    )
                    stop.wait(1.0)

            visitor = threading.Thread(target=visit, daemon=True)
            visitor.start()
            for i in range(files):
                (root / "hot" / f"f{i:05}.jpg").write_bytes(jpeg if i % good_every == 0 else corrupt)
            daemon.wait_until(lambda: settled() >= files, timeout=3 * 3600, what="every file settled")
            time.sleep(5)  # the visitor goes on over the full journal
            stop.set()
            visitor.join(30)
            peak = daemon.memory_mb("VmHWM")
            assert daemon.terminate() == 0
    warm_at = files // 10
    warm = next(s for s in samples if s["settled"] >= warm_at)
    end = samples[-1]
    second_half = [(s["settled"], s["rss_mib"]) for s in samples if s["settled"] >= files // 2]
    return {
        "files": files,
        "good_every": good_every,
        "batch_size": batch_size,
        "seconds": round(end["t"], 1),
        "visits": len(samples),
        "rss_warm_mib": warm["rss_mib"],
        "rss_end_mib": end["rss_mib"],
        "rss_max_after_warm_mib": max(s["rss_mib"] for s in samples if s["t"] >= warm["t"]),
        "rss_peak_vmhwm_mib": round(peak, 1),
        "growth_warm_to_end_mib": round(end["rss_mib"] - warm["rss_mib"], 1),
        "slope_second_half_mib_per_100_files": round(_slope(second_half) * 100, 2),
        "metrics_ms_median": statistics.median(s["metrics_ms"] for s in samples),
        "overview_ms_median": statistics.median(s["overview_ms"] for s in samples),
        "samples": samples,
    }


def scrape_cost(rows: int = 10_000, folders: int = 4, repeats: int = 50) -> dict[str, Any]:
    states = ("pending", "running", "done", "failed")
    with tempfile.TemporaryDirectory(prefix="hotmatte-metrics-rows-") as tmp:
        path = Path(tmp) / "journal.sqlite"
        Journal.open(path).close()  # the schema
        db = sqlite3.connect(path)
        now = time.time()
        db.executemany(
            "INSERT INTO files (folder, path, size, mtime_ns, profile_hash, pipeline_version, state,"
            " updated_at, review, error_class) VALUES (?, ?, 1, 1, 'p', '1', ?, ?, ?, ?)",
            (
                (
                    f"folder{i % folders}",
                    f"sub/{i:06}.jpg",
                    states[i % 4],
                    now,
                    int(i % 8 == 2),
                    "CorruptInput" if states[i % 4] == "failed" else None,
                )
                for i in range(rows)
            ),
        )
        db.commit()
        db.close()
        metrics = ServiceMetrics(path)
        generate_latest(metrics.registry)  # opens its connection
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            text = generate_latest(metrics.registry)
            times.append((time.perf_counter() - started) * 1000)
        metrics.close()
    return {
        "rows": rows,
        "folders": folders,
        "scrape_ms_median": round(statistics.median(times), 2),
        "scrape_ms_max": round(max(times), 2),
        "bytes": len(text),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--good-every", type=int, default=1, help="1: every file a good photo")
    parser.add_argument("--batch-size", default="auto", help="the model's batch size (workers.batch_size)")
    parser.add_argument("--label", default="files-1000")
    parser.add_argument("--skip-run", action="store_true", help="only the 10,000-row scrape cost")
    args = parser.parse_args()
    result: dict[str, Any] = {"scrape_10000_rows": scrape_cost()}
    print(json.dumps(result["scrape_10000_rows"]))
    if not args.skip_run:
        result["run"] = memory_run(args.files, args.good_every, args.batch_size)
        print(json.dumps({k: v for k, v in result["run"].items() if k != "samples"}, indent=1))
    stored: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    if "run" in result:  # a sample every few seconds is enough to see a trend, and keeps the file small
        samples = result["run"]["samples"]
        result["run"]["samples"] = samples[:: max(1, len(samples) // 100)] + samples[-1:]
    stored[args.label] = result
    RESULTS.write_text(json.dumps(stored, indent=1) + "\n")


if __name__ == "__main__":
    main()
