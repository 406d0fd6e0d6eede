"""From the model's low-resolution alpha to the finished file, one band at a time.

The full-resolution image, alpha and output are never held together: each band of
the original is read with a halo (:mod:`daemon.finish.bands`), gets its slice of upsampled
alpha, the profile's refinement and clean-up, is framed (:mod:`daemon.finish.framing`),
composed onto its background and goes straight to a streaming writer.

Decisions that need the whole picture (islands, holes, the crop box, the face, the
coarse foreground colours, the confidence) are made first on low-resolution data.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import structlog
import torch

from daemon.errors import DeviceOutOfMemory
from daemon.finish import direct, masks
from daemon.finish.bands import resize_rows, windows
from daemon.finish.confidence import confidence
from daemon.finish.finishing import (
    Plan,
    compose_output,
    compose_raw_band,
    plan_finish,
    process_window,
    scale_alpha,
)
from daemon.finish.framing import Reframer
from daemon.finish.outputs import Destination, write_atomically
from daemon.io._types import ImageReader
from daemon.io.writers import OutputFormat, open_writer
from daemon.matting.engine import MattingEngine, choose_device
from daemon.profiles import BUILTIN_PROFILES, ID_DPI, Profile
from daemon.refine.crops import DetailMap, compute_detail, resolve_budget

BAND_ROWS = 512
FORMAT_BY_SUFFIX: dict[str, OutputFormat] = {
    ".png": "png",
    ".tif": "tiff",
    ".tiff": "tiff",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".webp": "webp",
}
MASK_SUFFIX = ".mask.png"

log = structlog.get_logger("hotmatte")


@dataclass(frozen=True)
class CutoutResult:
    output: Path
    confidence: float
    review: bool
    mask: Path | None = None
    #: Seconds the crop pass took (its own stage in the timings); None when it did not run.
    detail_seconds: float | None = None
    #: Crops run and rejected; (0, 0) when the crop pass did not run.
    crops: tuple[int, int] = (0, 0)


def upsample_alpha_band(
    alpha: np.ndarray, width: int, height: int, y0: int, y1: int, work: np.ndarray | None = None
) -> np.ndarray:
    """Rows ``[y0, y1)`` of ``alpha`` bilinearly resized to ``width``×``height`` (seamless across bands).

    ``work``: reused memory for the result (see :func:`~daemon.finish.bands.resize_rows`).
    """
    return resize_rows(alpha, width, height, y0, y1, work)


def output_bit_depth(input_bit_depth: int) -> int:
    # Readers hand 32-bit float data over as 16-bit; nothing is ever reduced to 8-bit.
    return 8 if input_bit_depth <= 8 else 16


def mask_path_for(output: Path) -> Path:
    return output.with_name(output.stem + MASK_SUFFIX)


def _mask_destination(output: Destination) -> Destination:
    return output.with_name(mask_path_for(Path(output.name)).name)


def clean_model_alpha(alpha: np.ndarray, profile: Profile) -> np.ndarray:
    """Islands and holes are decided on the model's grid, where the subject is a few components."""
    alpha = alpha.astype(np.float32, copy=False)
    if profile.keep_largest_subject:
        alpha = masks.keep_largest_subject(alpha)
    if profile.fill_holes:
        alpha = masks.fill_holes(alpha)
    return alpha


def cut_out(
    reader: ImageReader,
    alpha: np.ndarray,
    destination: Destination,
    profile: Profile = BUILTIN_PROFILES["raw"],
    *,
    review_below: float | None = None,
    review_destination: Destination | None = None,
    band_rows: int = BAND_ROWS,
    device: torch.device | None = None,
    proxy: np.ndarray | None = None,
    engine: MattingEngine | None = None,
) -> CutoutResult:
    """Write the cut-out of ``reader`` for the model's ``alpha`` with ``profile``, atomically.

    The result goes to ``review_destination`` instead when its confidence is below ``review_below``.
    ``proxy`` is the model's input image, if the caller still has it (spares finishing a decode).
    ``engine`` runs the crop pass of a profile with ``detail: crops`` (without one, none runs).
    """
    alpha = clean_model_alpha(alpha, profile)
    score = confidence(alpha)
    review = review_below is not None and review_destination is not None and score < review_below
    target = review_destination if review and review_destination is not None else destination
    if profile.is_raw:
        written = _write_raw(reader, alpha, target, band_rows, profile.tiff_compression)
        return CutoutResult(written, score, review)
    device = device or choose_device("auto")
    mask = _mask_destination(target) if profile.save_mask else None
    started = time.perf_counter()
    detail = _detail(engine, reader, alpha, profile, target.path)
    seconds = time.perf_counter() - started if engine is not None and profile.detail == "crops" else None
    crops = (detail.stats.chosen, detail.stats.rejected) if detail is not None else (0, 0)
    try:
        plan = plan_finish(reader, alpha, profile, band_rows, device, proxy, detail)
        _finish(reader, alpha, target, mask, plan)
    except torch.OutOfMemoryError:
        if device.type == "cpu":
            raise
        # The accelerator is shared with the model's batches and the workstation's other programs.
        # Refinement gives the same result on the CPU, only slower: better than failing the file.
        # Nothing was left behind: the writes are atomic and their temporaries are removed.
        log.warning("finish_on_cpu", output=str(target), reason=f"out of memory on {device}")
        if device.type == "cuda":
            torch.cuda.empty_cache()
        cpu = torch.device("cpu")
        plan = plan_finish(reader, alpha, profile, band_rows, cpu, proxy, detail)
        _finish(reader, alpha, target, mask, plan)
    return CutoutResult(target.path, score, review, mask.path if mask is not None else None, seconds, crops)


def _detail(
    engine: MattingEngine | None, reader: ImageReader, alpha: np.ndarray, profile: Profile, target: Path
) -> DetailMap | None:
    """The crop pass for ``profile`` (``None`` when it has none, or the accelerator has no room for it)."""
    if engine is None or profile.detail != "crops":
        return None
    try:
        return compute_detail(
            engine.predict_crops,
            reader,
            alpha,
            crop=profile.detail_crop,
            overlap=profile.detail_overlap,
            budget=resolve_budget(profile.detail_budget, engine.device),
            model=engine.size,
        )
    except DeviceOutOfMemory as exc:
        # Even one crop at a time did not fit beside the other work: the global α alone is a good cut.
        log.warning("detail_skipped", output=str(target), reason=str(exc))
        return None


def _finish(
    reader: ImageReader, alpha: np.ndarray, target: Destination, mask: Destination | None, plan: Plan
) -> None:
    """Render ``plan`` to ``target`` (and its α to ``mask``), each file atomically."""
    # The format comes from the final name: the temporaries' paths (/proc/self/fd/N) have none.
    fmt = FORMAT_BY_SUFFIX[target.suffix.lower()]
    if mask is None:
        write_atomically(target, lambda tmp: _render(reader, plan, fmt, tmp, None))
        return

    def write_both(mask_tmp: Path) -> None:
        write_atomically(target, lambda tmp: _render(reader, plan, fmt, tmp, mask_tmp))

    write_atomically(mask, write_both)


def write_cutout(reader: ImageReader, alpha: np.ndarray, destination: Destination) -> Path:
    """``raw``: ``reader``'s image with ``alpha`` as an RGBA file at ``destination``, atomically."""
    return cut_out(reader, alpha, destination).output


def _write_raw(
    reader: ImageReader, alpha: np.ndarray, destination: Destination, band_rows: int, tiff_compression: str
) -> Path:
    info = reader.info
    width, height = info.oriented_size
    fmt = FORMAT_BY_SUFFIX[destination.suffix.lower()]

    def write(tmp: Path) -> None:
        writer = open_writer(
            fmt,
            tmp,
            width=width,
            height=height,
            channels=4,
            bit_depth=output_bit_depth(info.bit_depth),
            icc=info.icc,
            dpi=info.oriented_dpi,
            tiff_compression=tiff_compression,
        )
        # One RGBA band, refilled for each band (the writers copy what they are given): a fresh one
        # each time was newly zeroed pages, 190 MB of them for a 24 MP RGBA16 file.
        rgba: np.ndarray | None = None
        work: np.ndarray | None = None  # the same for the upsampled α rows
        try:
            for y0, band in reader.bands(band_rows):
                y1 = y0 + band.shape[0]
                if rgba is None or rgba.shape[0] < band.shape[0] or rgba.dtype != band.dtype:
                    rgba = np.empty((band.shape[0], width, 4), band.dtype)
                    work = np.empty((band.shape[0], width), np.float32)
                alpha_rows = upsample_alpha_band(alpha, width, height, y0, y1, work)
                writer.write_band(compose_raw_band(band, alpha_rows, rgba[: band.shape[0]]))
        except BaseException:
            writer.abort()
            raise
        writer.close()

    return write_atomically(destination, write)


def _output_bands(reader: ImageReader, plan: Plan) -> Iterator[np.ndarray]:
    """Output rows, float32 premultiplied (RGB·α, α[, shadow]), or integer RGBA on the exact path."""
    width, height = reader.info.oriented_size
    g = plan.geometry
    reframer = None if plan.exact_colours else Reframer(g, width, height, plan.channels)
    for window in windows(reader.bands(plan.band_rows), height, plan.band_rows, plan.halo):
        if reframer is None:
            yield process_window(window, plan, width, height)
            continue
        if window.y1 <= g.top or window.y0 >= g.bottom:
            rows = np.zeros((window.y1 - window.y0, width, plan.channels), np.float32)  # outside the crop
        else:
            rows = process_window(window, plan, width, height)
        y0 = window.y0
        # Dropped before the next window is processed: at 108 MP each is ~100 MB.
        del window
        yield from reframer.push(y0, rows)
        del rows


def _finished_bands(reader: ImageReader, plan: Plan, bits: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The output's rows as (samples for the writer, α in [0, 1]), top to bottom."""
    if direct.applies(plan, output_bit_depth(reader.info.bit_depth), bits):
        yield from direct.direct_bands(reader, plan, bits)
        return
    y = 0
    for band in _output_bands(reader, plan):
        pixels, alpha = compose_output(band, plan, y, bits)
        y += band.shape[0]
        del band  # not held while the next band is computed
        yield pixels, alpha


def _render(reader: ImageReader, plan: Plan, fmt: OutputFormat, tmp: Path, mask_tmp: Path | None) -> None:
    info = reader.info
    g = plan.geometry
    bits = 8 if fmt == "jpeg" else output_bit_depth(info.bit_depth)
    dpi = (ID_DPI, ID_DPI) if plan.profile.crop == "face" else info.oriented_dpi
    channels = 4 if plan.profile.transparent else 3
    w, h = g.out_w, g.out_h
    quality = plan.profile.jpeg_quality
    writer = open_writer(
        fmt,
        tmp,
        width=w,
        height=h,
        channels=channels,
        bit_depth=bits,
        icc=info.icc,
        dpi=dpi,
        jpeg_quality=quality,
        tiff_compression=plan.profile.tiff_compression,
    )
    mask_writer = (
        open_writer("png", mask_tmp, width=w, height=h, channels=3, bit_depth=8, dpi=dpi)
        if mask_tmp
        else None
    )
    try:
        for pixels, alpha in _finished_bands(reader, plan, bits):
            writer.write_band(pixels)
            if mask_writer is not None:
                mask_writer.write_band(
                    np.repeat(scale_alpha(alpha, np.dtype(np.uint8))[..., None], 3, axis=2)
                )
            del pixels, alpha
    except BaseException:
        writer.abort()
        if mask_writer is not None:
            mask_writer.abort()
        raise
    writer.close()
    if mask_writer is not None:
        mask_writer.close()


__all__ = ["BAND_ROWS", "CutoutResult", "cut_out", "upsample_alpha_band", "write_cutout"]
