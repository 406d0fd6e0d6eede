"""CPU seconds per image OUTSIDE the model, per stage, for one code tree (run as a subprocess).

``python bench/_stage_cpu.py`` with ``PYTHONPATH`` set to the tree to measure (this checkout, or
a worktree of an older commit: bench/throughput.py runs both in one go). It serves requests,
one JSON line each on stdin (a path: input files, profile, output format, knobs; the repeats;
a scratch folder), and answers each with one JSON line on stdout: every file's CPU per stage.
Serving lets the benchmark alternate between two trees' workers, request by request, so a
machine whose speed drifts during the run (shared CPUs moved single figures by up to 2× within
minutes) slows both sides alike instead of whichever happened to run second.

The model is skipped: every file gets the same fixed α (a soft-edged ellipse on the model's
1024² grid, what a centred subject gives), so only decode and finish are timed. CPU seconds
come from ``time.process_time`` (all threads of this process: the PNG and TIFF encoders' pools
are counted), which a shared machine disturbs far less than wall time. OpenCV and torch are
held to one thread each, as in the daemon's CPU pipeline: the per-image CPU is then the cost of
the work, not of idle worker threads spinning, and it is what a 16-core box divides. A tree
with daemon.pipeline.heap keeps freed buffers for reuse, as its `hotmatte run` does.

Stages, each measured alone on the same file:

- ``decode``: open + proxy at :func:`proxy_side` + squash to the model's input (the decode stage);
- ``read``: open + every full-resolution band, read and dropped (the finish's decode);
- ``finish``: :func:`cut_out` with the fixed α (the finish stage, ``read`` included);
- ``encode``: the writer alone, fed the finished output's own pixels;
- ``compose`` = finish − read − encode: upsampling α, refinement, compositing, quantising.
"""

from __future__ import annotations

import functools
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import tifffile
import torch
from PIL import Image

from daemon.finish.cutout import cut_out
from daemon.finish.outputs import Destination
from daemon.io.detect import open_image
from daemon.io.writers import open_writer
from daemon.matting.engine import prepare
from daemon.pipeline.stages import proxy_side
from daemon.profiles import Profile, get_profile

MODEL_SIZE = 1024
BAND_ROWS = 512


@functools.cache
def fixed_alpha(size: int = MODEL_SIZE) -> np.ndarray:
    """A centred soft ellipse: a subject over 40 % of the frame with a few pixels of soft edge.

    Made once per worker: it stands for the model's output, so drawing it is no stage's work
    (drawn inside each timed finish it cost 15 ms, a twentieth of the 12 MP PNG path).
    The finish only reads it.
    """
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    inside = (((x - 0.5) / 0.33) ** 2 + ((y - 0.52) / 0.42) ** 2 <= 1.0).astype(np.float32)
    return np.clip(cv2.GaussianBlur(inside, (0, 0), 3.0), 0.0, 1.0)


def cpu(action: Callable[[], object], repeats: int) -> float:
    """The least CPU seconds of ``repeats`` runs of ``action`` (the least disturbed)."""
    best = float("inf")
    for _ in range(repeats):
        started = time.process_time()
        action()
        best = min(best, time.process_time() - started)
    return best


def decode(path: Path) -> np.ndarray:
    reader = open_image(path, max_megapixels=1000)
    try:
        side = proxy_side(*reader.info.oriented_size, MODEL_SIZE)
        proxy = reader.proxy(side)
        prepare(proxy, MODEL_SIZE)
        return proxy
    finally:
        reader.close()


def read(path: Path) -> None:
    reader = open_image(path, max_megapixels=1000)
    try:
        for _ in reader.bands(BAND_ROWS):
            pass
    finally:
        reader.close()


def profile_with(name: str, knobs: dict[str, Any]) -> Profile:
    """The tree's profile ``name`` with those of ``knobs`` its Profile has (an older tree may lack some)."""
    profile = get_profile(name, {})
    known = {k: v for k, v in knobs.items() if k in type(profile).model_fields}
    return profile.model_copy(update=known)


def finish(path: Path, out: Path, profile: Profile, proxy: np.ndarray | None) -> None:
    reader = open_image(path, max_megapixels=1000)
    try:
        cut_out(
            reader,
            fixed_alpha(),
            Destination.at(out),
            profile,
            device=torch.device("cpu"),
            proxy=None if profile.is_raw else proxy,
            engine=None,  # no crop pass: it is the model's work
        )
    finally:
        reader.close()


def load_output(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """The written output's pixels (RGB(A), its own dtype) and what its writer needs to know."""
    pixels: np.ndarray
    if path.suffix == ".tif":
        pixels = np.asarray(tifffile.imread(path))
    elif path.suffix == ".png":
        bgr = np.asarray(cv2.imread(str(path), cv2.IMREAD_UNCHANGED))
        pixels = cv2.cvtColor(bgr, cv2.COLOR_BGRA2RGBA if bgr.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    else:
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
    fmt = {".tif": "tiff", ".png": "png", ".jpg": "jpeg"}[path.suffix]
    bits = 16 if pixels.dtype == np.uint16 else 8
    return pixels, {"fmt": fmt, "channels": pixels.shape[2], "bit_depth": bits}


def encode(pixels: np.ndarray, options: dict[str, Any], target: Path, profile: Profile) -> None:
    height, width = pixels.shape[:2]
    # The profile's TIFF compression, where the tree has the knob (else its writer's default).
    extra: dict[str, Any] = {}
    if hasattr(profile, "tiff_compression"):
        extra["tiff_compression"] = profile.tiff_compression
    writer = open_writer(
        options["fmt"],
        target,
        width=width,
        height=height,
        channels=options["channels"],
        bit_depth=options["bit_depth"],
        **extra,
    )
    for y0 in range(0, height, BAND_ROWS):
        writer.write_band(pixels[y0 : y0 + BAND_ROWS])
    writer.close()


def measure_path(spec: dict[str, Any], work: Path, repeats: int) -> dict[str, Any]:
    """Each file's least CPU seconds per stage over ``repeats`` runs, and its output."""
    profile = profile_with(spec["profile"], spec.get("knobs", {}))
    suffix = {"png": ".png", "tiff": ".tif", "jpeg": ".jpg"}[spec["format"]]
    files = []
    for index, name in enumerate(spec["files"]):
        path = Path(name)
        out = work / f"{spec['name']}-{index}{suffix}"
        proxy = decode(path)
        stages = {
            "decode": cpu(functools.partial(decode, path), repeats),
            "read": cpu(functools.partial(read, path), repeats),
            "finish": cpu(functools.partial(finish, path, out, profile, proxy), repeats),
        }
        pixels, options = load_output(out)
        again = work / f"again{suffix}"
        stages["encode"] = cpu(functools.partial(encode, pixels, options, again, profile), repeats)
        again.unlink()
        files.append({"stages": stages, "output": str(out), "output_bytes": out.stat().st_size})
    return {"name": spec["name"], "profile": spec["profile"], "format": spec["format"], "files": files}


def keep_freed_buffers_if_the_tree_does() -> None:
    """The heap policy of ``hotmatte run`` and ``process``, in the trees that have it (default on)."""
    try:
        from daemon.pipeline.heap import keep_freed_buffers
    except ImportError:  # an older tree: glibc's defaults, as its daemon ran
        return
    keep_freed_buffers()


def main() -> int:
    keep_freed_buffers_if_the_tree_does()  # before any thread starts
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    for line in sys.stdin:
        request = json.loads(line)
        work = Path(request.get("work") or tempfile.mkdtemp(prefix="hotmatte-stage-cpu-"))
        work.mkdir(parents=True, exist_ok=True)
        print(json.dumps(measure_path(request["path"], work, int(request.get("repeats", 1)))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
