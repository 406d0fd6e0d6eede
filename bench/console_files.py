"""Load time of the console's Files (and Review) page with 10,000 journal rows.

A real journal file with ``--rows`` rows over three folders (done, failed, pending, a share in
review), thumbnails for every done row, and the console served by uvicorn (ConsoleServer, as
``hotmatte run`` serves it). Each view is fetched over HTTP ``--repeat`` times; the JSON gives
the median and worst time per view, and the thumbnail fetch time.

    .venv/bin/python bench/console_files.py [--rows 10000] [--repeat 20]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import skimage.data

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.config import Config, Console
from daemon.console.context import ConsoleContext
from daemon.console.server import ConsoleServer
from daemon.finish.thumbs import shrink, thumb_key, write_thumbs
from daemon.journal.store import Fingerprint, Journal, profile_hash

FOLDERS = ("studio-a", "studio-b", "catalogue")
RESULTS = Path(__file__).resolve().parent / "results" / "console_files.json"


def fill(journal: Journal, rows: int, thumbs: Path) -> None:
    # A real photo and a soft elliptical subject: thumbnails the size real ones are.
    photo = shrink(cv2.resize(skimage.data.astronaut(), (1536, 1024), interpolation=cv2.INTER_CUBIC))
    yy, xx = np.mgrid[-1:1:256j, -1:1:256j]
    alpha = np.clip((1.0 - (xx / 0.6) ** 2 - (yy / 0.9) ** 2) * 4, 0, 1).astype(np.float32)
    fp = Fingerprint(1, 1, profile_hash("bench"), "4")
    journal._db.execute("BEGIN")  # one transaction: filling is not what is measured
    now = time.time()
    for i in range(rows):
        folder = FOLDERS[i % len(FOLDERS)]
        path = f"shoot-{i // 500:03d}/IMG_{i:05d}.jpg"
        kind = i % 10
        state = "pending" if kind == 0 else "failed" if kind == 1 else "done"
        journal._db.execute(
            "INSERT INTO files (folder, path, size, mtime_ns, profile_hash, pipeline_version, state,"
            " updated_at, confidence, review, last_error, error_class, output)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                folder,
                path,
                fp.size,
                fp.mtime_ns,
                fp.profile_hash,
                fp.pipeline_version,
                state,
                now - i,
                None if state != "done" else 0.5 + (i % 50) / 100,
                int(kind == 2),
                "damaged JPEG data" if state == "failed" else None,
                "CorruptInput" if state == "failed" else None,
                f"/out/{path}.png" if state == "done" else None,
            ),
        )
    journal._db.execute("COMMIT")
    # Thumbnails only for the first rows shown (writing 8,000 of them measures the disk, not the page).
    for i in range(0, min(rows, 600)):
        folder = FOLDERS[i % len(FOLDERS)]
        path = f"shoot-{i // 500:03d}/IMG_{i:05d}.jpg"
        write_thumbs(thumbs / thumb_key(folder, path), photo, alpha, {"decode": 0.1, "model": 0.2}, 0.8)


def fetch(url: str) -> tuple[float, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=30) as response:
        body = response.read()
    return time.perf_counter() - started, len(body)


def in_browser(base: str, repeat: int) -> dict[str, float]:
    """Chromium's navigation → load event (HTML and every thumbnail decoded) for the Files page."""
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        timings = {}
        for name, path in (("files_first_page_load_ms", "/files"), ("review_load_ms", "/review")):
            loads = []
            for _ in range(repeat):
                page.goto(base + path, wait_until="load")
                loads.append(
                    page.evaluate(
                        "() => { const n = performance.getEntriesByType('navigation')[0];"
                        " return n.loadEventEnd - n.startTime; }"
                    )
                )
            timings[name] = round(statistics.median(loads), 1)
            print(f"chromium {name}: median {timings[name]} ms")
        browser.close()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        journal_path = root / "state" / "journal.sqlite"
        journal = Journal.open(journal_path)
        fill(journal, args.rows, root / "state" / "console" / "thumbs")
        journal.close()
        folders = [{"name": f, "input": str(root / f), "output": str(root / f"{f}-out")} for f in FOLDERS]
        for f in FOLDERS:
            (root / f).mkdir()
        config = Config.model_validate({"journal": str(journal_path), "folders": folders})
        ctx = ConsoleContext(
            config=lambda: config,
            open_journal=lambda: Journal.open(journal_path),
            state_dir=root / "state" / "console",
        )
        server = ConsoleServer(Console(listen="127.0.0.1:0"), ctx)
        assert server.start()
        base = f"http://127.0.0.1:{server.port}"
        views = {
            "files, first page (50 rows)": "/files",
            "files, one folder, done": "/files?folder=studio-a&state=done",
            "files, search 'IMG_0999'": "/files?q=IMG_0999",
            "files, last page": f"/files?page={args.rows // 50}",
            "files, failed (error records)": "/files?state=failed",
            "review (20 items)": "/review",
        }
        fetch(base + "/files")  # first request opens the console's journal connection
        results = {}
        for name, path in views.items():
            times, size = [], 0
            for _ in range(args.repeat):
                seconds, size = fetch(base + path)
                times.append(seconds)
            results[name] = {
                "median_ms": round(statistics.median(times) * 1000, 1),
                "max_ms": round(max(times) * 1000, 1),
                "bytes": size,
            }
            shown = results[name]
            print(f"{name:34s} median {shown['median_ms']:7.1f} ms  max {shown['max_ms']:7.1f} ms")
        key = thumb_key(FOLDERS[0], "shoot-000/IMG_00000.jpg")
        thumb_times = [fetch(f"{base}/files/thumb/{key}/after")[0] for _ in range(args.repeat)]
        results["one thumbnail (after.webp)"] = {
            "median_ms": round(statistics.median(thumb_times) * 1000, 1),
            "max_ms": round(max(thumb_times) * 1000, 1),
            "bytes": fetch(f"{base}/files/thumb/{key}/after")[1],
        }
        browser = in_browser(base, args.repeat)
        server.stop()
    report = {"rows": args.rows, "repeat": args.repeat, "views": results, "chromium": browser}
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["views"]["one thumbnail (after.webp)"]))


if __name__ == "__main__":
    main()
