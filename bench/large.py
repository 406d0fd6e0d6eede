"""Large images: wall time and peak RSS of ``hotmatte process`` on 108 MP 16-bit files.

    .venv/bin/python bench/large.py [--workdir DIR] [--keep]

Generates, from a real photo that scikit-image ships (upscaled, with sensor-like
noise so the files compress like photographs):

- a 12000×9000 16-bit RGB TIFF, tiled 512×512, LZW;
- the same, striped (64 rows per strip), LZW;
- a 12000×9000 16-bit PSB (raw merged data, as Photoshop saves 16-bit documents).

Each is processed into an RGBA16 TIFF by ``hotmatte process --format tiff`` and
measured next to a plain tifffile full read plus RGBA16 tiled LZW write of the same
pixels, in the same run. Every measured step runs in its own process, so each peak
RSS is that step's own. Targets (issue 4): peak RSS above a small-image run ≤ 400 MB;
wall time ≤ 2× the plain read + write.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 12000, 9000
RESULTS = REPO / "bench" / "results"


def generate(workdir: Path) -> None:
    """Runs in a child process: the 648 MB source array must not inflate the parent's RSS."""
    import cv2
    import numpy as np
    import skimage.data
    import tifffile
    from PIL import Image, ImageCms

    sys.path.insert(0, str(REPO / "bench"))
    from make_psb import write_psb

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    photo = skimage.data.astronaut().astype(np.float32) / 255.0
    big = cv2.resize(photo, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(0)
    pixels = np.clip(big * 65535.0 + rng.normal(0, 96, big.shape).astype(np.float32), 0, 65535).astype(
        np.uint16
    )
    del big
    options: dict[str, Any] = {
        "photometric": "rgb",
        "compression": "lzw",
        "iccprofile": icc,
        "resolution": (300, 300),
    }
    tifffile.imwrite(workdir / "tiled.tif", pixels, tile=(512, 512), **options)
    tifffile.imwrite(workdir / "striped.tif", pixels, rowsperstrip=64, **options)
    write_psb(workdir / "large.psb", WIDTH, HEIGHT, plane=lambda c, y0, y1, w: pixels[y0:y1, :, c] / 65535.0)
    Image.fromarray(skimage.data.chelsea()).save(workdir / "small.jpg", quality=92)


def plain_read_write(source: Path, destination: Path) -> None:
    """The yardstick: tifffile reads everything, adds an opaque alpha, writes RGBA16 tiled LZW."""
    import numpy as np
    import tifffile

    pixels = tifffile.imread(source)
    alpha = np.full((*pixels.shape[:2], 1), 65535, np.uint16)
    rgba = np.concatenate([pixels, alpha], axis=2)
    del pixels
    tifffile.imwrite(
        destination, rgba, tile=(512, 512), compression="lzw", photometric="rgb", extrasamples=[2]
    )


def measure(command: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of ``command`` run as its own process."""
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        stderr = process.stderr.read().decode() if process.stderr else ""
        raise RuntimeError(f"{' '.join(command)} failed: {stderr[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def hotmatte(source: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "daemon.cli", "process", "--format", "tiff", "-o", str(out), str(source)]


def check_output(path: Path) -> str:
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        assert (page.imagewidth, page.imagelength, page.samplesperpixel) == (WIDTH, HEIGHT, 4), page
        assert page.bitspersample == 16 and page.is_tiled and page.iccprofile, (
            "not an RGBA16 tiled TIFF with ICC"
        )
        return f"{page.imagewidth}x{page.imagelength} RGBA{page.bitspersample} tiled, ICC kept"


def run(workdir: Path) -> dict[str, Any]:
    print(f"generating inputs in {workdir} …", flush=True)
    subprocess.run([sys.executable, __file__, "--generate", str(workdir)], check=True)
    small_wall, small_rss = measure(hotmatte(workdir / "small.jpg", workdir / "out-small"))
    print(f"small-image run: {small_wall:.1f} s, peak RSS {small_rss:.0f} MB", flush=True)
    rows = []
    for name in ("tiled.tif", "striped.tif", "large.psb"):
        source = workdir / name
        out = workdir / f"out-{source.stem}"
        wall, rss = measure(hotmatte(source, out))
        verdict = check_output(out / f"{source.stem}.tif")
        # The plain yardstick reads the TIFF holding the same pixels (tifffile cannot read PSB).
        plain_source = source if source.suffix == ".tif" else workdir / "striped.tif"
        plain_wall, plain_rss = measure(
            [sys.executable, __file__, "--plain", str(plain_source), str(workdir / "plain.tif")]
        )
        rows.append(
            {
                "file": name,
                "wall_s": round(wall, 1),
                "peak_rss_mb": round(rss),
                "rss_above_small_mb": round(rss - small_rss),
                "plain_wall_s": round(plain_wall, 1),
                "plain_peak_rss_mb": round(plain_rss),
                "time_ratio": round(wall / plain_wall, 2),
                "output": verdict,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        shutil.rmtree(out)
    return {"small_run": {"wall_s": round(small_wall, 1), "peak_rss_mb": round(small_rss)}, "rows": rows}


COLUMNS = (
    ("file", "file"),
    ("wall_s", "hotmatte s"),
    ("peak_rss_mb", "peak RSS MB"),
    ("rss_above_small_mb", "above small run MB"),
    ("plain_wall_s", "plain read+write s"),
    ("plain_peak_rss_mb", "plain peak MB"),
    ("time_ratio", "time ratio"),
)


def print_table(result: dict[str, Any]) -> None:
    print("\n| " + " | ".join(title for _, title in COLUMNS) + " |")
    print("|" + "---|" * len(COLUMNS))
    for row in result["rows"]:
        print("| " + " | ".join(str(row[key]) for key, _ in COLUMNS) + " |")
    print(f"\nsmall-image run: {result['small_run']}; targets: above small ≤ 400 MB, time ratio ≤ 2.0")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, help="where to put the generated files (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--plain", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(args.generate)
        return
    if args.plain:
        plain_read_write(*args.plain)
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="hotmatte-large-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        result = run(workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "large.json").write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)


if __name__ == "__main__":
    main()
