"""Write a large layered PSB without a merged image and measure compositing it.

    .venv/bin/python bench/make_layered_psb.py /tmp/layered.psb                 # 12000x9000, bands
    .venv/bin/python bench/make_layered_psb.py /tmp/small.psb --size 4000x3000 --budget 1000

Three layers as a retouched studio file has them: an opaque background, a
semi-transparent subject layer with a layer mask, and a group (at 70 %) with a
half-transparent layer. Pixel content is blocks of 64 px so the PackBits data
stays small on disk. Each measurement runs in a fresh process so that its peak
RSS is its own; ``--budget`` picks psd-tools (at or above the canvas size) or
our band compositor (below it).
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.io.layered_psd import write_layered


def _blocks(seed: int, width: int, channels: int | None) -> object:
    def rows(y0: int, y1: int) -> np.ndarray:
        y = (np.arange(y0, y1) // 64)[:, None]
        x = (np.arange(width) // 64)[None, :]
        base = (y * 37 + x * 11 + seed * 53) % 256
        if channels is None:
            return base.astype(np.uint8)
        return np.stack([(base + 85 * c) % 256 for c in range(channels)], axis=2).astype(np.uint8)

    return rows


def write(path: Path, width: int, height: int) -> None:
    h2, w2 = height * 2 // 3, width * 2 // 3
    layers = [
        {"name": "Background", "rect": (0, 0, height, width), "colour": _blocks(1, width, 3)},
        {
            "name": "Subject",
            "rect": (height // 6, width // 6, height // 6 + h2, width // 6 + w2),
            "colour": _blocks(2, w2, 3),
            "alpha": _blocks(3, w2, None),
            "mask": ((0, 0, height // 2, width), 255, _blocks(4, width, None)),
        },
        {
            "group": [
                {"name": "Retouch", "rect": (0, 0, height, width // 2), "colour": _blocks(5, width // 2, 3),
                 "alpha": _blocks(6, width // 2, None), "opacity": 128},
            ],
            "name": "Group",
            "opacity": 180,
        },
    ]  # fmt: skip
    write_layered(path, width, height, layers, psb=True)


def measure(path: Path, budget: float) -> None:
    from daemon.io.psd import open_psd

    started = time.perf_counter()
    with open_psd(path, max_megapixels=1000, layer_budget_megapixels=budget) as reader:
        proxy = reader.proxy(1024)
        proxy_s = time.perf_counter() - started
        rows = 0
        for _, band in reader.bands(512):
            rows += band.shape[0]
        by = reader.composited_by  # type: ignore[union-attr]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    total_s = time.perf_counter() - started
    print(
        f"{path.name}: by {by}, proxy {proxy.shape} in {proxy_s:.1f} s, {rows} rows, "
        f"{total_s:.1f} s, peak RSS {peak_mb:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("path", type=Path)
    parser.add_argument("--size", default="12000x9000")
    parser.add_argument("--budget", type=float, default=16.0)
    parser.add_argument("--measure", action="store_true", help="measure only (run in a fresh process)")
    args = parser.parse_args()
    if args.measure:
        measure(args.path, args.budget)
        return
    width, height = (int(v) for v in args.size.split("x"))
    write(args.path, width, height)
    print(f"wrote {args.path} ({args.path.stat().st_size / 1e6:.0f} MB)")
    command = [sys.executable, __file__, str(args.path), "--measure", "--budget", str(args.budget)]
    subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
