"""Write a large 16-bit RGB PSB and time the streaming PSD reader on it.

    .venv/bin/python bench/make_psb.py /tmp/big.psb            # write, then measure
    .venv/bin/python bench/make_psb.py /tmp/big.psb --measure   # measure an existing file

The file is 12000x9000, 16-bit RGB, raw (uncompressed) merged data, as
Photoshop saves 16-bit documents, with the sRGB profile embedded; with
``--rle8`` it is 8-bit with RLE (PackBits) rows, as Photoshop saves 8-bit ones. Each
measurement runs in a fresh process so that its peak RSS is its own.

The writer is ours because nothing in our dependencies writes PSB: it emits the
minimum the format needs (header, empty colour mode data, an ICC resource, an
empty layer section) and streams the pixel planes row band by row band.
"""

from __future__ import annotations

import argparse
import resource
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

WIDTH, HEIGHT = 12000, 9000
BAND = 500


def sine_plane(channel: int, y0: int, y1: int, width: int) -> np.ndarray:
    """Smooth synthetic content in [0, 1] for rows ``[y0, y1)`` of one channel."""
    x = np.arange(width, dtype=np.float64)
    y = np.arange(y0, y1, dtype=np.float64)[:, None]
    return (np.sin(x / (300.0 + 100 * channel)) * np.cos(y / 250.0) + 1.0) / 2.0


def write_psb(
    path: Path,
    width: int = WIDTH,
    height: int = HEIGHT,
    rle8: bool = False,
    plane: Callable[[int, int, int, int], np.ndarray] = sine_plane,
) -> None:
    """Write a PSB whose channel ``c``, rows ``[y0, y1)``, is ``plane(c, y0, y1, width)`` in [0, 1]."""
    import imagecodecs
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    with path.open("wb") as out:
        depth = 8 if rle8 else 16
        out.write(struct.pack(">4sH6sHIIHH", b"8BPS", 2, b"\0" * 6, 3, height, width, depth, 3))
        out.write(struct.pack(">I", 0))  # colour mode data
        block = struct.pack(">4sHBxI", b"8BIM", 1039, 0, len(icc)) + icc + b"\0" * (len(icc) % 2)
        out.write(struct.pack(">I", len(block)) + block)
        out.write(struct.pack(">Q", 0))  # layer and mask section (PSB: 8-byte length)
        out.write(struct.pack(">H", 1 if rle8 else 0))
        bands = []
        for channel in range(3):
            for y0 in range(0, height, BAND):
                wave = plane(channel, y0, min(y0 + BAND, height), width)
                if not rle8:
                    out.write((wave * 65535.0).astype(">u2").tobytes())
                    continue
                bands.append(
                    [imagecodecs.packbits_encode(row.tobytes()) for row in (wave * 255).astype(np.uint8)]
                )
        if rle8:  # the row-length table (4-byte counts in PSB) comes before all rows
            rows = [row for band in bands for row in band]
            out.write(np.array([len(row) for row in rows], dtype=">u4").tobytes())
            for row in rows:
                out.write(row)


def measure(path: Path, what: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from daemon.io.psd import open_psd

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    with open_psd(path, max_megapixels=300) as reader:
        if what == "proxy":
            shape = reader.proxy(1536).shape
        else:
            rows = 0
            for _, band in reader.bands(512):
                rows += band.shape[0]
            shape = (rows, reader.info.width, reader.info.channels)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{what:>12}: {elapsed:6.2f} s, peak RSS {peak:6.0f} MB (after imports {baseline:.0f} MB), {shape}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("path", type=Path)
    parser.add_argument("--measure", action="store_true", help="only measure an existing file")
    parser.add_argument("--rle8", action="store_true", help="8-bit RLE instead of 16-bit raw")
    parser.add_argument("--write-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--one", choices=["proxy", "all-bands"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        measure(args.path, args.one)
        return
    if args.write_only:
        start = time.perf_counter()
        write_psb(args.path, rle8=args.rle8)
        size = args.path.stat().st_size / 1e6
        print(f"wrote {args.path} ({size:.0f} MB) in {time.perf_counter() - start:.1f} s")
        return
    # Every step in its own process: Linux carries a parent's peak RSS over fork
    # and exec, so a child of the writer would report the writer's peak.
    if not args.measure:
        command = [sys.executable, __file__, str(args.path), "--write-only"]
        subprocess.run(command + (["--rle8"] if args.rle8 else []), check=True)
    for what in ("proxy", "all-bands"):
        subprocess.run([sys.executable, __file__, str(args.path), "--one", what], check=True)


if __name__ == "__main__":
    main()
