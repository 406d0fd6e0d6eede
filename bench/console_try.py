"""The Try page's preview latency: slider moved → new preview image shown, on a 12 MP photo.

    PYTHONPATH=. .venv/bin/python bench/console_try.py [--moves 12] [--profiles raw,portrait,product]

Starts a real ``hotmatte run`` (console on a free port, the real model size), drives Debian's
chromium with Playwright: uploads a 4000×3000 JPEG made from a photo scikit-image ships
(upscaled, with sensor-like noise so it compresses like a photograph), then for each profile
moves sliders and measures, in the page, from the ``input`` event to the new ``<img>``'s
``load``. That includes the page's 150 ms debounce (so a drag does not queue a finish per
pixel), the request, the finishing on the preview copy, the PNG encode and the image decode.
The daemon's CPU seconds per move are recorded too: the cost on an idle machine, whatever
the load of the shared test machine while measured.
The server's own finish time (shown on the page) is recorded next to it.

Results: bench/results/console_try.json. Target (issue 12): well under a second.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "bench" / "results"
WIDTH, HEIGHT = 4000, 3000
#: (knob, values to step through): each move is a different setting, so no preview is a cache hit.
MOVES = [
    ("erode", [1, 2, 3, 4, 5, 6]),
    ("feather", [1, 2, 3, 4, 5, 6]),
    ("alpha_threshold", [10, 20, 30, 40]),
]

MEASURE_JS = """
([name, value]) => new Promise((resolve) => {
  const before = document.querySelector('#preview-img').getAttribute('src');
  const t0 = performance.now();
  const done = () => {
    const img = document.querySelector('#preview-img');
    if (img && img.getAttribute('src') !== before) {
      if (img.complete && img.naturalWidth) { resolve(performance.now() - t0); return; }
      img.addEventListener('load', () => resolve(performance.now() - t0), {once: true});
      return;
    }
    requestAnimationFrame(done);
  };
  const el = document.querySelector(`[name='${name}']`);
  el.value = value;
  el.dispatchEvent(new Event('input', {bubbles: true}));
  requestAnimationFrame(done);
})
"""


def make_photo(path: Path) -> None:
    import cv2
    import numpy as np
    import skimage.data
    from PIL import Image

    photo = skimage.data.astronaut().astype(np.float32)
    big = cv2.resize(photo, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    noise = np.random.default_rng(0).normal(0, 2.0, big.shape).astype(np.float32)
    Image.fromarray(np.clip(big + noise, 0, 255).astype(np.uint8)).save(path, "JPEG", quality=92)


def run(moves: int, profiles: list[str], workdir: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from tests.console.browser import chromium_path
    from tests.service_harness import Daemon, write_config

    source = workdir / "photo-12mp.jpg"
    make_photo(source)
    config = write_config(
        workdir / "config.yaml",
        [],
        console={"listen": "127.0.0.1:0"},
        model_size=1024,
        workers={"decode": 1, "finish": 1, "queue_size": 4},
    )
    result: dict[str, Any] = {"image": f"{WIDTH}x{HEIGHT} JPEG ({source.stat().st_size / 1e6:.1f} MB)"}
    with Daemon(config) as daemon, sync_playwright() as playwright:
        base = str(daemon.wait_for("console", timeout=300)[0]["url"])
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(base + "try")
        page.set_input_files("#try-upload input[type=file]", str(source))
        started = time.perf_counter()
        page.click("#try-upload button")
        page.wait_for_selector("#preview-img", timeout=600_000)
        page.wait_for_function("document.querySelector('#preview-img').complete")
        result["upload_and_model_seconds"] = round(time.perf_counter() - started, 2)
        result["preview_size"] = page.eval_on_selector(
            "#preview-img", "i => `${i.naturalWidth}x${i.naturalHeight}`"
        )
        for profile in profiles:
            page.select_option("#try-profile", profile)
            page.wait_for_timeout(300)
            page.wait_for_function("document.querySelector('#preview-img').complete", timeout=60_000)
            page.wait_for_timeout(1500)  # the profile's first preview lands
            latencies, server, cpu = [], [], []
            steps = [(knob, v) for knob, values in MOVES for v in values][:moves]
            for knob, value in steps:
                used = _cpu_seconds(daemon.proc.pid)
                latencies.append(page.evaluate(MEASURE_JS, [knob, value]) / 1000)
                cpu.append(_cpu_seconds(daemon.proc.pid) - used)
                text = page.inner_text("#preview-time")
                server.append(float(text.split("took ")[1].split(" s")[0]))
            result[profile] = {
                "moves": len(latencies),
                "slider_to_image_seconds": _stats(latencies),
                "server_finish_seconds": _stats(server),
                "daemon_cpu_seconds_per_move": _stats(cpu),
            }
            print(profile, result[profile], flush=True)
        browser.close()
    return result


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` so far: what a move costs whatever else the cores run.

    The bench's daemon has no hot folders, so between two reads it only serves the page.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 3),
        "p90": round(ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], 3),
        "max": round(ordered[-1], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=12)
    parser.add_argument("--profiles", default="raw,portrait,product,complex_background")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="console-try-") as tmp:
        result = run(args.moves, args.profiles.split(","), Path(tmp))
    result["machine"] = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "device": "cpu",
        # The cores are shared with other jobs: the 1-minute load average says how busy they were.
        "load_average_before_after": [round(load_before, 1), round(os.getloadavg()[0], 1)],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "console_try.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
