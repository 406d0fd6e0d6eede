"""Time and peak memory of the TIFF reader and the band writers on a 12000x9000 16-bit RGB image.

Each case runs in its own Python process so its peak RSS (ru_maxrss) is its own; the
``baseline`` case (imports only) is printed so the figure above it can be read off.

    .venv/bin/python bench/io_probe.py [--dir /tmp/io_probe] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daemon.io.tiff import open_tiff
from daemon.io.writers import open_writer

HEIGHT, WIDTH = 9000, 12000
BAND = 512


def synthetic_band(y0: int, rows: int, width: int, channels: int) -> np.ndarray:
    """Photo-like 16-bit content: smooth gradients with sensor-like noise in the low bits."""
    yy, xx = np.mgrid[y0 : y0 + rows, 0:width].astype(np.float32)
    planes = [
        32768 + 20000 * np.sin(xx / (700 + 150 * c)) * np.cos(yy / (500 + 90 * c)) for c in range(channels)
    ]
    band = np.stack(planes, axis=2)
    noise = np.random.default_rng(y0).integers(0, 64, band.shape, dtype=np.int32)
    return np.clip(band + noise, 0, 65535).astype(np.uint16)


ORIENTATION_TAG = [(274, "H", 1, 1, True)]  # written as 1, overwritten to 6 in the rotated copies


def make_inputs(directory: Path) -> dict[str, Path]:
    paths = {"tiled": directory / "tiled_lzw.tif", "striped": directory / "striped_lzw.tif"}
    if not paths["tiled"].exists():

        def tiles() -> Iterator[np.ndarray]:
            for y0 in range(0, HEIGHT, 512):
                band = synthetic_band(y0, min(512, HEIGHT - y0), WIDTH, 3)
                for x0 in range(0, WIDTH, 512):
                    yield band[:, x0 : x0 + 512]

        tifffile.imwrite(
            paths["tiled"],
            tiles(),
            shape=(HEIGHT, WIDTH, 3),
            dtype=np.uint16,
            tile=(512, 512),
            photometric="rgb",
            compression="lzw",
            predictor=True,
            metadata=None,
            buffersize=8 << 20,
            extratags=ORIENTATION_TAG,
        )
    if not paths["striped"].exists():
        # tifffile cannot stream strips from an iterator; this copy is written in one go (setup only).
        with open_tiff(paths["tiled"], max_megapixels=1000) as reader:
            whole = reader.read()
        tifffile.imwrite(
            paths["striped"],
            whole,
            photometric="rgb",
            compression="lzw",
            predictor=True,
            rowsperstrip=64,
            metadata=None,
            extratags=ORIENTATION_TAG,
        )
    for layout in ("tiled", "striped"):
        rotated = paths[f"{layout}_o6"] = directory / f"{layout}_lzw_o6.tif"
        if not rotated.exists():
            shutil.copyfile(paths[layout], rotated)
            with tifffile.TiffFile(rotated, mode="r+") as tif:
                tif.pages.first.tags["Orientation"].overwrite(6)
    return paths


def status_mb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return round(int(line.split()[1]) / 1024)
    raise KeyError(field)


def peak_rss_mb() -> int:
    # VmHWM belongs to this process's address space, so unlike ru_maxrss it does not start
    # from the parent's peak (ru_maxrss survives fork+exec on Linux).
    return status_mb("VmHWM")


def reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux >= 4.0: VmHWM := current RSS


def run_case(case: str, path: Path, out_dir: Path) -> dict[str, object]:
    start = time.perf_counter()
    extra: dict[str, object] = {}
    if case == "baseline":
        pass
    elif case == "plain_read":
        tifffile.imread(path)
    elif case == "proxy":
        with open_tiff(path, max_megapixels=1000) as reader:
            extra["shape"] = reader.proxy(1536).shape
    elif case == "bands":
        with open_tiff(path, max_megapixels=1000) as reader:
            extra["checksum"] = sum(int(band[::97, ::89].sum()) for _, band in reader.bands(BAND))
    elif case.startswith("write_"):
        _, fmt, level = case.split("_")
        target = out_dir / f"out_{level}.{'tif' if fmt == 'tiff' else 'png'}"
        options = {"tiff_compression": level} if fmt == "tiff" else {"png_level": int(level)}
        rows = HEIGHT
        bands = [synthetic_band(y0, BAND, WIDTH, 4) for y0 in range(0, 2 * BAND, BAND)]  # content, reused
        reset_peak_rss()  # generating the content above is not the writer's memory
        extra["rss_at_start_mb"] = status_mb("VmRSS")
        start = time.perf_counter()
        writer = open_writer(fmt, target, width=WIDTH, height=rows, channels=4, bit_depth=16, **options)  # type: ignore[arg-type]
        for y0 in range(0, rows, BAND):
            writer.write_band(bands[(y0 // BAND) % 2][: min(BAND, rows - y0)])
        writer.close()
        extra["size_mb"] = round(target.stat().st_size / 1e6, 1)
        target.unlink()
    else:
        raise ValueError(case)
    extra["seconds"] = round(time.perf_counter() - start, 2)
    extra["peak_rss_mb"] = peak_rss_mb()
    return extra


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "io_probe")
    parser.add_argument("--case")
    parser.add_argument("--input")
    parser.add_argument("--only", help="comma-separated case names to run")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    if args.case:
        print(json.dumps(run_case(args.case, Path(args.input or "."), args.dir)))
        return
    paths = make_inputs(args.dir)
    plan = [("baseline", "tiled")]
    for layout in ("tiled", "striped"):
        plan += [("plain_read", layout), ("proxy", layout), ("bands", layout), ("bands", f"{layout}_o6")]
    plan += [
        ("write_tiff_lzw", "-"),
        ("write_tiff_deflate", "-"),
        ("write_png_1", "-"),
        ("write_png_3", "-"),
        ("write_png_6", "-"),
    ]
    if args.only:
        plan = [(case, layout) for case, layout in plan if case in args.only.split(",")]
    for case, layout in plan:
        command = [
            sys.executable,
            __file__,
            "--dir",
            str(args.dir),
            "--case",
            case,
            "--input",
            str(paths.get(layout, "")),
        ]
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        print(f"{case:20s} {layout:8s} {result}", flush=True)


if __name__ == "__main__":
    main()
