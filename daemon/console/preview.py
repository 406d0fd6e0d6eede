"""The Try page's engine room: the model once per image, then only the finishing per slider move.

:func:`analyse` runs what the pipeline's decode and model stages run (same proxy side, same
``prepare``, same engine) and keeps the model's α on its own grid, plus a preview-sized copy
of the photo, in the image's folder under ``state_dir/try``. :func:`render_preview` then calls
the daemon's own :func:`daemon.finish.cutout.cut_out` on that small copy through
:class:`ArrayReader`, so the preview is what the daemon writes, at preview scale: the length
knobs are scaled by :func:`preview_profile` the way :func:`daemon.profiles.pixel_scale` scales
them for the full file. The one thing left out of a preview is the crop pass (``detail``: a
second model run per move would defeat the cache); the full-resolution download runs it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from daemon.config import Config
from daemon.finish.cutout import CutoutResult, cut_out
from daemon.finish.outputs import Destination
from daemon.io._types import ImageInfo, ImageReader
from daemon.io.detect import open_image
from daemon.io.raster import shrink_to
from daemon.matting.engine import MattingEngine, load_engine, prepare
from daemon.pipeline.stages import proxy_side
from daemon.profiles import Profile, pixel_scale
from daemon.refine.guided import MAX_STEP, align

#: Long side of the preview image: small enough that a slider move re-finishes it quickly on a CPU
#: (bench/console_try.py: 1024 cost ~1.8× as much), and still more pixels than the page shows it at.
PREVIEW_SIDE = 768
SUFFIX_BY_FORMAT = {"png": ".png", "tiff": ".tif", "jpeg": ".jpg", "webp": ".webp"}


class ArrayReader:
    """An :class:`~daemon.io._types.ImageReader` over an RGB ``uint8`` array already in memory."""

    def __init__(self, rgb: np.ndarray) -> None:
        self._rgb = rgb
        h, w = rgb.shape[:2]
        self.info = ImageInfo(
            format="png", width=w, height=h, channels=3, bit_depth=8, colour="rgb", has_alpha=False
        )

    def proxy(self, max_side: int) -> np.ndarray:
        return shrink_to(self._rgb, max_side)

    def read(self) -> np.ndarray:
        return self._rgb

    def bands(self, rows: int) -> Iterator[tuple[int, np.ndarray]]:
        for y0 in range(0, self._rgb.shape[0], rows):
            yield y0, self._rgb[y0 : y0 + rows]

    def close(self) -> None:
        pass


class EngineSource:
    """The pipeline's engine when the service has one, else one loaded from the config on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._own: MattingEngine | None = None

    def get(self, shared: MattingEngine | None, config: Config) -> MattingEngine:
        if shared is not None:
            return shared
        with self._lock:
            if self._own is None:
                self._own = load_engine(
                    config.weights, config.device, config.model_size, config.model_precision
                )
            return self._own


@dataclass(frozen=True)
class Analysed:
    """One image on the Try page: its folder, the full size, the preview copy and the model's α."""

    folder: Path
    name: str
    size: tuple[int, int]  # full resolution, oriented (width, height)
    preview: np.ndarray
    alpha: np.ndarray

    @classmethod
    def load(cls, folder: Path) -> Analysed:
        meta = json.loads((folder / "meta.json").read_text())
        return cls(
            folder,
            str(meta["name"]),
            (int(meta["width"]), int(meta["height"])),
            np.load(folder / "preview.npy"),
            np.load(folder / "alpha.npy"),
        )


def open_checked(source: Path, name: str, config: Config) -> ImageReader:
    """Open an upload as the pipeline does: size limits checked on the header, before decoding."""
    return open_image(
        source,
        max_megapixels=config.max_megapixels,
        psd_layer_budget_megapixels=config.psd_layer_budget_megapixels,
        name=name,
    )


def model_pass(reader: ImageReader, engine: MattingEngine) -> tuple[np.ndarray, np.ndarray]:
    """(proxy, model alpha) of ``reader``, as the pipeline's decode and model stages make them."""
    proxy = reader.proxy(proxy_side(*reader.info.oriented_size, engine.size))
    return proxy, engine.predict([prepare(proxy, engine.size)])[0]


def analyse(source: Path, name: str, folder: Path, engine: MattingEngine, config: Config) -> Analysed:
    """Run the model once on ``source`` (header checked before decoding) and cache what previews need."""
    reader = open_checked(source, name, config)
    try:
        size = reader.info.oriented_size
        proxy, alpha = model_pass(reader, engine)
        small = (
            shrink_to(proxy, PREVIEW_SIDE)
            if max(proxy.shape[:2]) >= PREVIEW_SIDE
            else reader.proxy(PREVIEW_SIDE)
        )
    finally:
        reader.close()
    np.save(folder / "alpha.npy", alpha)
    np.save(folder / "preview.npy", np.ascontiguousarray(small))
    (folder / "meta.json").write_text(json.dumps({"name": name, "width": size[0], "height": size[1]}))
    return Analysed(folder, name, size, small, alpha)


def preview_profile(profile: Profile, full: tuple[int, int], preview: tuple[int, int]) -> Profile:
    """``profile`` for a ``preview``-sized copy of a ``full``-sized image: lengths in preview pixels.

    The daemon applies ``length × pixel_scale(full)`` full-resolution pixels; at preview scale that
    is ``length × pixel_scale(full) × preview/full`` pixels, and the preview itself applies its own
    ``pixel_scale`` (1 below 2048 px) on top: divided out here. A fixed canvas scales the same way.
    """
    ratio = max(preview) / max(full)
    k = pixel_scale(*full) * ratio / pixel_scale(*preview)
    update: dict[str, object] = {
        "erode": profile.erode * k,
        "feather": profile.feather * k,
        "refine_radius": max(profile.refine_radius * k, 0.5),
        "detail": "none",  # a second model pass per move would defeat the cache (module docstring)
        "save_mask": True,
        "output_format": "png",
    }
    if profile.shadow is not None:
        update["shadow"] = profile.shadow.model_copy(
            update={"distance": profile.shadow.distance * k, "blur": profile.shadow.blur * k}
        )
    if "x" in profile.canvas:
        w, h = (max(1, round(int(v) * ratio)) for v in profile.canvas.split("x"))
        update["canvas"] = f"{w}x{h}"
    return profile.model_copy(update=update)


def settings_key(profile: Profile) -> str:
    return hashlib.sha256(profile.model_dump_json().encode()).hexdigest()[:16]


def render_preview(image: Analysed, profile: Profile, device: torch.device) -> tuple[Path, Path]:
    """(preview, mask) PNGs of ``image`` finished with ``profile``, by the daemon's finish path.

    Named by the settings, so moving a slider back to a setting seen before costs nothing.
    """
    key = settings_key(profile)
    out = image.folder / f"preview-{key}.png"
    mask = image.folder / f"preview-{key}.mask.png"
    if out.exists() and mask.exists():
        return out, mask
    small = preview_profile(profile, image.size, (image.preview.shape[1], image.preview.shape[0]))
    # One band for the whole preview: the result does not depend on the band size, and one window
    # spares the halo rows a second window would refine and decontaminate again (~25 % here).
    rows = align(image.preview.shape[0], MAX_STEP)
    result = cut_out(
        ArrayReader(image.preview), image.alpha, Destination.at(out), small, band_rows=rows, device=device
    )
    assert result.mask is not None
    _keep_newest(image.folder, "preview-*", 40)
    return result.output, result.mask


def render_full(
    source: Path, image: Analysed, profile: Profile, engine: MattingEngine, config: Config
) -> CutoutResult:
    """The full-resolution result of ``source``, exactly as the daemon would write it (crop pass too)."""
    reader = open_checked(source, image.name, config)
    try:
        stem = Path(image.name).stem or "result"
        # Its own sub-folder: an upload called preview-….png must not shadow a preview, or vice versa.
        target = image.folder / "result" / f"{stem}{SUFFIX_BY_FORMAT[profile.output_format]}"
        return cut_out(
            reader, image.alpha, Destination.at(target), profile, device=engine.device, engine=engine
        )
    finally:
        reader.close()


def _keep_newest(folder: Path, pattern: str, keep: int) -> None:
    files = sorted(folder.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[keep:]:
        old.unlink(missing_ok=True)


__all__ = ["Analysed", "ArrayReader", "EngineSource", "analyse", "render_full", "render_preview"]
