"""Load time of the console's Overview and Failures pages over a journal of 10,000 rows.

Fills a real journal through the Journal API (offer, then done / failed / left pending, spread
over several folders), serves the console on a free port with the real ConsoleServer (uvicorn on
its thread, as ``hotmatte run`` does, with a stage snapshot like the loop's), then times:

* ``server``: the whole HTTP exchange for the page's HTML, from a plain client (median, p95, max
  of ``--runs`` requests after one warm-up), with the body size;
* ``browser``: Debian's chromium (Playwright), navigation start to the ``load`` event (HTML,
  stylesheet, HTMX), median of ``--browser-runs`` fresh loads.

    .venv/bin/python bench/console_pages.py [--rows 10000] [--failed 2000] [--runs 30]

Writes bench/results/console_pages.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.config import parse_config
from daemon.console import ConsoleContext, ConsoleServer
from daemon.journal.opening import open_reader
from daemon.journal.store import Fingerprint, Journal

RESULTS = Path(__file__).resolve().parent / "results" / "console_pages.json"
FOLDERS = ("studio-a", "studio-b", "catalogue", "portraits", "archive")
PAGES = {
    "overview": "/",
    "overview_live": "/overview/live",
    "failures": "/failures",
    "failures_page_10": "/failures?page=10",
    "failures_one_folder": "/failures?folder=catalogue",
}


def fill_journal(path: Path, rows: int, failed: int, pending: int) -> dict[str, float]:
    """``rows`` rows through the Journal API: ``failed`` failed, ``pending`` pending, the rest done."""
    started = time.perf_counter()
    journal = Journal.open(path)
    for n in range(rows):
        folder = FOLDERS[n % len(FOLDERS)]
        name = f"shoot-{n // 500:03d}/IMG_{n:05d}.jpg"
        journal.offer(folder, name, Fingerprint(1_000_000 + n, n, "bench", "1"))
        if n >= failed + pending:
            entry = journal.claim([folder])
            assert entry is not None
            journal.mark_done(entry.id, f"/out/{folder}/{name}.png", confidence=0.9, review=n % 50 == 0)
        elif n < failed:
            entry = journal.claim([folder])
            assert entry is not None
            journal.mark_failed(entry.id, "CorruptInput", f"cannot decode {name}: image file is truncated")
    journal.close()
    return {"fill_seconds": round(time.perf_counter() - started, 2)}


def snapshot() -> dict[str, object]:
    stage = {"workers": 1, "files": 9000, "busy_seconds": 100.0, "queued": 2}
    return {
        "in_flight": 3,
        "backlog": 1000,
        "folders": dict.fromkeys(FOLDERS, True),
        "device": "cpu",
        "model_size": 1024,
        "stages": {
            "elapsed_seconds": 600.0,
            "bottleneck": "model",
            "stages": [
                {
                    **stage,
                    "name": "decode",
                    "mean_seconds": 0.05,
                    "recent_mean_seconds": 0.05,
                    "utilisation": 0.1,
                },
                {
                    **stage,
                    "name": "model",
                    "mean_seconds": 0.6,
                    "recent_mean_seconds": 0.6,
                    "utilisation": 0.9,
                },
                {
                    **stage,
                    "name": "finish",
                    "mean_seconds": 0.2,
                    "recent_mean_seconds": 0.2,
                    "utilisation": 0.3,
                },
            ],
        },
    }


def time_server(port: int, path: str, runs: int) -> dict[str, float]:
    def once() -> tuple[float, int]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        started = time.perf_counter()
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        connection.close()
        assert response.status == 200, (path, response.status, body[:200])
        return elapsed, len(body)

    once()  # warm-up: the journal connection and the templates are made on first use
    timings, size = zip(*(once() for _ in range(runs)), strict=True)
    ordered = sorted(timings)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
        "bytes": size[0],
    }


def time_browser(base: str, runs: int) -> dict[str, dict[str, float]]:
    from playwright.sync_api import sync_playwright

    from tests.console.browser import chromium_path

    results: dict[str, dict[str, float]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        for name in ("overview", "failures"):
            loads = []
            for _ in range(runs + 1):
                context = browser.new_context()  # nothing cached between loads
                page = context.new_page()
                page.goto(base + PAGES[name], wait_until="load")
                loads.append(
                    page.evaluate(
                        "() => { const t = performance.getEntriesByType('navigation')[0];"
                        " return t.loadEventEnd - t.startTime; }"
                    )
                )
                context.close()
            loads = loads[1:]  # the first also starts the browser's network service
            results[name] = {
                "median_ms": round(statistics.median(loads), 1),
                "max_ms": round(max(loads), 1),
            }
        browser.close()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--failed", type=int, default=2_000)
    parser.add_argument("--pending", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--browser-runs", type=int, default=10)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="console_pages_") as tmp:
        root = Path(tmp)
        folders = "".join(
            f"  - name: {name}\n    input: {root / name}\n    output: {root / (name + '-out')}\n"
            for name in FOLDERS
        )
        for name in FOLDERS:
            (root / name).mkdir()
            (root / f"{name}-out").mkdir()
        config = parse_config(
            f"journal: {root / 'journal.sqlite'}\nconsole:\n  listen: 127.0.0.1:0\nfolders:\n{folders}", root
        )
        fill = fill_journal(config.journal, args.rows, args.failed, args.pending)
        print(f"journal: {args.rows} rows in {fill['fill_seconds']} s", flush=True)
        assert config.console is not None
        server = ConsoleServer(
            config.console,
            ConsoleContext(lambda: config, lambda: open_reader(config), root / "console", snapshot),
        )
        assert server.start()
        try:
            server_times = {name: time_server(server.port, path, args.runs) for name, path in PAGES.items()}
            for name, figures in server_times.items():
                print(f"server  {name:<20} {figures}", flush=True)
            browser_times = (
                {} if args.no_browser else time_browser(f"http://127.0.0.1:{server.port}", args.browser_runs)
            )
            for name, figures in browser_times.items():
                print(f"browser {name:<20} {figures}", flush=True)
        finally:
            server.stop()

    result = {
        "what": "console page load times over a journal of --rows rows (bench/console_pages.py)",
        "rows": args.rows,
        "failed_rows": args.failed,
        "pending_rows": args.pending,
        "folders": len(FOLDERS),
        **fill,
        "server": server_times,
        "browser": browser_times,
        "machine": {
            "cpus": os.cpu_count(),
            "arch": platform.machine(),
            "python": platform.python_version(),
            "note": "a 2-core machine shared with other jobs: medians are the figure to read",
        },
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
