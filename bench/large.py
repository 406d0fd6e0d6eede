"""Large images: wall time and peak RSS of ``hotmatte process`` on 108 MP 16-bit files.

    .venv/bin/python bench/large.py [--workdir DIR] [--keep]
    .venv/bin/python bench/large.py --profiles portrait,product,complex_background

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

``--profiles`` measures refinement instead (issue 6): the tiled TIFF only, processed
with ``raw`` and then with each named profile (``--profile NAME --format tiff``), each
next to a small-image run of the same profile, with the per-stage busy seconds the
pipeline reports (``$HOTMATTE_STAGE_REPORT``). Results go to ``large-profiles.json``.
Target: peak RSS above the small-image run stays far from the 24 GB of a workstation
(refinement works band by band, so it must not grow with the image).
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


def generate(workdir: Path, tiled_only: bool = False) -> None:
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
    Image.fromarray(skimage.data.chelsea()).save(workdir / "small.jpg", quality=92)
    if tiled_only:
        return
    tifffile.imwrite(workdir / "striped.tif", pixels, rowsperstrip=64, **options)
    write_psb(workdir / "large.psb", WIDTH, HEIGHT, plane=lambda c, y0, y1, w: pixels[y0:y1, :, c] / 65535.0)


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


def measure(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of ``command`` run as its own process."""
    # stderr goes to a file, not a pipe: a child writing more than a pipe holds would block
    # forever while we sit in wait4.
    with tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr, env={**os.environ, **(env or {})}
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            stderr.seek(0)
            raise RuntimeError(f"{' '.join(command)} failed: {stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def hotmatte(source: Path, out: Path, profile: str = "raw") -> list[str]:
    return [
        sys.executable,
        "-m",
        "daemon.cli",
        "process",
        "--profile",
        profile,
        "--format",
        "tiff",
        "-o",
        str(out),
        str(source),
    ]


def expected_output(profile: str) -> tuple[int, tuple[int, int] | None, bool]:
    """(samples per pixel, exact size or ``None`` when it depends on the subject, must be square)."""
    from daemon.profiles import ID_SIZES, get_profile

    knobs = get_profile(profile)
    channels = 4 if knobs.transparent else 3
    if knobs.crop == "face":
        return channels, ID_SIZES[knobs.id_size], False
    if knobs.crop == "none":
        return channels, (WIDTH, HEIGHT), False
    if knobs.canvas not in ("none", "square"):
        width, height = (int(v) for v in knobs.canvas.split("x"))
        return channels, (width, height), False
    return channels, None, knobs.canvas == "square"


def check_output(path: Path, profile: str = "raw") -> str:
    import tifffile

    channels, size, square = expected_output(profile)
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        width, height = page.imagewidth, page.imagelength
        assert page.samplesperpixel == channels, page
        assert size is None or (width, height) == size, f"{width}x{height}, expected {size}"
        assert not square or width == height, f"{width}x{height} is not square"
        assert page.bitspersample == 16 and page.is_tiled and page.iccprofile, (
            "not a 16-bit tiled TIFF with ICC"
        )
        kind = "RGBA" if channels == 4 else "RGB"
        return f"{width}x{height} {kind}{page.bitspersample} tiled, ICC kept"


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


def measure_profile(workdir: Path, profile: str, source: Path) -> dict[str, Any]:
    """One ``hotmatte process --profile`` run on ``source``, with its stage report and output check."""
    from daemon.pipeline.stages import STAGE_REPORT_ENV

    out = workdir / f"out-{profile}-{source.stem}"
    report = workdir / f"stages-{profile}-{source.stem}.json"
    wall, rss = measure(hotmatte(source, out, profile), {STAGE_REPORT_ENV: str(report)})
    stages = json.loads(report.read_text())["stages"]
    verdict = check_output(out / f"{source.stem}.tif", profile) if source.suffix == ".tif" else "not checked"
    shutil.rmtree(out)
    return {
        "wall_s": round(wall, 1),
        "peak_rss_mb": round(rss),
        "stage_busy_s": {s["name"]: round(s["busy_seconds"], 1) for s in stages},
        "output": verdict,
    }


def run_profiles(workdir: Path, profiles: list[str]) -> dict[str, Any]:
    print(f"generating the tiled input in {workdir} …", flush=True)
    subprocess.run([sys.executable, __file__, "--generate", str(workdir), "--tiled-only"], check=True)
    small_raw: dict[str, Any] | None = None
    rows = []
    for profile in ["raw", *profiles]:
        small = measure_profile(workdir, profile, workdir / "small.jpg")
        small_raw = small_raw or small
        large = measure_profile(workdir, profile, workdir / "tiled.tif")
        rows.append(
            {
                "profile": profile,
                "file": "tiled.tif",
                **large,
                "rss_above_small_mb": large["peak_rss_mb"] - small_raw["peak_rss_mb"],
                "small_wall_s": small["wall_s"],
                "small_peak_rss_mb": small["peak_rss_mb"],
                "rss_above_same_profile_small_mb": large["peak_rss_mb"] - small["peak_rss_mb"],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    assert small_raw is not None
    return {
        "small_run": {"wall_s": small_raw["wall_s"], "peak_rss_mb": small_raw["peak_rss_mb"]},
        "rows": rows,
    }


PROFILE_COLUMNS = (
    ("profile", "profile"),
    ("wall_s", "wall s"),
    ("peak_rss_mb", "peak RSS MB"),
    ("rss_above_small_mb", "above small raw run MB"),
    ("rss_above_same_profile_small_mb", "above same-profile small run MB"),
    ("stage_busy_s", "busy s per stage"),
    ("output", "output"),
)


COLUMNS = (
    ("file", "file"),
    ("wall_s", "hotmatte s"),
    ("peak_rss_mb", "peak RSS MB"),
    ("rss_above_small_mb", "above small run MB"),
    ("plain_wall_s", "plain read+write s"),
    ("plain_peak_rss_mb", "plain peak MB"),
    ("time_ratio", "time ratio"),
)


def markdown_table(rows: list[dict[str, Any]], columns: tuple[tuple[str, str], ...]) -> str:
    lines = ["| " + " | ".join(title for _, title in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[key]) for key, _ in columns) + " |" for row in rows]
    return "\n".join(lines)


def print_table(result: dict[str, Any]) -> None:
    print("\n" + markdown_table(result["rows"], COLUMNS))
    print(f"\nsmall-image run: {result['small_run']}; targets: above small ≤ 400 MB, time ratio ≤ 2.0")


def profile_names(value: str) -> list[str]:
    from daemon.profiles import BUILTIN_PROFILES

    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in BUILTIN_PROFILES or name == "raw"]
    if unknown or not names:
        choices = ", ".join(name for name in BUILTIN_PROFILES if name != "raw")
        raise argparse.ArgumentTypeError(f"choose built-in profiles among {choices} (raw is always measured)")
    return names


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, help="where to put the generated files (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument(
        "--profiles",
        type=profile_names,
        help="comma-separated built-in profiles to measure on the tiled TIFF instead (next to raw)",
    )
    parser.add_argument("--generate", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tiled-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--plain", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(args.generate, args.tiled_only)
        return
    if args.plain:
        plain_read_write(*args.plain)
        return
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="hotmatte-large-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        result = run_profiles(workdir, args.profiles) if args.profiles else run(workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "large-profiles.json" if args.profiles else "large.json"
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    if args.profiles:
        print("\n" + markdown_table(result["rows"], PROFILE_COLUMNS))
        print(f"\nsmall-image raw run: {result['small_run']}")
    else:
        print_table(result)


if __name__ == "__main__":
    main()
