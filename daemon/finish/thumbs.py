"""Before/after thumbnails for the console, made at finish time from what is already in memory.

The Files and Review pages show every file's original and cut-out. Reading a 100 MP original
per page view would cost seconds and gigabytes, so the pipeline keeps a copy of the decoded
proxy shrunk to :data:`THUMB_SIDE` (at most 320×320×3 bytes per file in flight) and, once
the file is finished, writes beside it the model's low-resolution alpha on that thumbnail:

- ``<key>.before.jpg``: the original, JPEG (a few kB);
- ``<key>.after.webp``: the cut-out with its alpha (the page lays it on a checkerboard or a
  colour); WebP because a 320-pixel RGBA photo is ~10 kB there and ~140 kB as PNG, and a page
  shows 50 of them;
- ``<key>.json``: the stage timings and confidence of the run that made them.

``key`` is a hash of (folder, relative path) (:func:`thumb_key`), so a file processed again
replaces its thumbnails, a name never becomes a path, and the console finds them from the
journal row. Each file is written to a temporary and renamed (a page never sees half a
thumbnail). The folder is the daemon's own state directory: nothing below it is user-made.
A thumbnail is a convenience: failing to write one never fails the file (the caller suppresses).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from pathlib import Path

import cv2
import numpy as np

from daemon.journal.names import to_column

#: The longer side of a thumbnail, in pixels.
THUMB_SIDE = 320
JPEG_QUALITY = 80
#: Lossy colour, lossless alpha (libwebp's default alpha quality is 100).
WEBP_QUALITY = 80
KINDS = ("before", "after")


def thumb_key(folder: str, path: str) -> str:
    """The file name stem of a journal row's thumbnails (hex: safe in a URL and a path)."""
    stored = to_column(path)
    raw = stored if isinstance(stored, bytes) else stored.encode("utf-8")
    return hashlib.sha256(folder.encode("utf-8") + b"\0" + raw).hexdigest()[:32]


def thumb_path(directory: Path, key: str, kind: str) -> Path:
    """``<directory>/<key>.before.jpg``, ``.after.webp`` or ``.json`` (kind ``meta``)."""
    suffix = {"before": ".before.jpg", "after": ".after.webp", "meta": ".json"}[kind]
    return directory / f"{key}{suffix}"


def shrink(image: np.ndarray, side: int = THUMB_SIDE) -> np.ndarray:
    """``image`` (H×W×3 uint8) with its longer side at most ``side`` (a copy, never a view)."""
    height, width = image.shape[:2]
    scale = side / max(height, width)
    if scale >= 1:
        return np.ascontiguousarray(image[..., :3]).copy()
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(np.ascontiguousarray(image[..., :3]), size, interpolation=cv2.INTER_AREA)


def _publish(target: Path, data: bytes) -> None:
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as out:
            out.write(data)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_thumbs(
    prefix: Path, before: np.ndarray, alpha: np.ndarray, timings: dict[str, float], confidence: float | None
) -> None:
    """Write ``prefix``'s before/after thumbnails and meta (``prefix`` = directory / key).

    ``before`` is the shrunk proxy (RGB uint8); ``alpha`` the model's float α in [0, 1] at any
    size (resized here to the thumbnail's).
    """
    directory, key = prefix.parent, prefix.name
    directory.mkdir(parents=True, exist_ok=True)
    height, width = before.shape[:2]
    small_alpha = cv2.resize(
        alpha.astype(np.float32, copy=False), (width, height), interpolation=cv2.INTER_AREA
    )
    a = np.clip(small_alpha * 255.0 + 0.5, 0, 255).astype(np.uint8)
    bgr = cv2.cvtColor(before, cv2.COLOR_RGB2BGR)
    ok_jpg, jpg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    ok_webp, webp = cv2.imencode(".webp", np.dstack([bgr, a]), [cv2.IMWRITE_WEBP_QUALITY, WEBP_QUALITY])
    if not (ok_jpg and ok_webp):
        raise ValueError("thumbnail encoding failed")
    _publish(thumb_path(directory, key, "before"), jpg.tobytes())
    _publish(thumb_path(directory, key, "after"), webp.tobytes())
    meta = {"timings": {k: round(v, 4) for k, v in timings.items()}, "confidence": confidence}
    _publish(thumb_path(directory, key, "meta"), json.dumps(meta).encode())


def remove_thumbs(directory: Path, key: str) -> None:
    """Forget a row's thumbnails (its journal row was pruned): the folder stays as big as the journal."""
    for kind in (*KINDS, "meta"):
        with contextlib.suppress(FileNotFoundError):
            thumb_path(directory, key, kind).unlink()


def read_meta(directory: Path, key: str) -> dict[str, object]:
    """The timings and confidence written with the thumbnails ({} when there are none)."""
    try:
        loaded = json.loads(thumb_path(directory, key, "meta").read_bytes())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


__all__ = [
    "KINDS",
    "THUMB_SIDE",
    "read_meta",
    "remove_thumbs",
    "shrink",
    "thumb_key",
    "thumb_path",
    "write_thumbs",
]
