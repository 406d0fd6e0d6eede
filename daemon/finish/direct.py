"""Finished samples straight from the photo's where α is 0 or 1; float arithmetic only on the edge.

On a colour background, with no resampling (a crop and a canvas at most) and no shadow, a
finished pixel is the photo's own sample where α is 1, the background's where α is 0, and
needs the composition ``F·α + B·(1 − α)`` only where 0 < α < 1: a band a few dozen pixels
wide around the subject. The general path (:func:`~daemon.finish.finishing.process_window`,
:class:`~daemon.finish.framing.Reframer`, :func:`~daemon.finish.finishing.compose_output`)
carries every pixel through four float32 channels and several full passes: on a 24 MP product
cut-out that was 1.3 of its 2.4 CPU seconds outside the model.

The samples are the same bit for bit. Where α is 1 the float path computes ``p/peak·peak`` in
float32, within 2⁻²³·p of ``p``, which rounds back to ``p`` (and decontamination keeps opaque
colours as they are); where α is 0 it computes the background's own rounding, which is taken
from :func:`~daemon.finish.finishing.quantise` itself; inside the soft boxes the float path's
operations run in the same order on the same values. tests/finish/test_direct.py compares
both paths sample by sample.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np

from daemon.finish.bands import Window, windows
from daemon.finish.finishing import (
    BLOCK_COLUMNS,
    Plan,
    decontaminated,
    quantise,
    soft_box,
    unit_colours,
    window_alpha,
    window_guide,
)
from daemon.io._types import ImageReader
from daemon.refine.guide import Guide


def applies(plan: Plan, input_bits: int, output_bits: int) -> bool:
    """Whether ``plan``'s output can be made directly (else the general float path makes it)."""
    return (
        not plan.exact_colours
        and plan.low.shadow is None
        and plan.background is not None
        and plan.background.ndim == 1
        and not plan.geometry.resamples
        # Keeping a sample where α is 1 needs the output to have the input's depth.
        and input_bits == output_bits
    )


def background_samples(plan: Plan, bits: int) -> np.ndarray:
    """The background colour as output samples, rounded exactly as a composed pixel of α 0 is."""
    assert plan.background is not None
    return quantise(plan.background.astype(np.float32).reshape(1, 1, 3).copy(), bits)[0, 0]


def direct_bands(reader: ImageReader, plan: Plan, bits: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The output's rows as (samples, α in [0, 1]) bands, top to bottom, cropped and padded.

    Rows and columns of the canvas beyond the photo are background with α 0, as the general
    path's zero padding composes to; windows wholly outside the crop are never refined.
    """
    width, height = reader.info.oriented_size
    g = plan.geometry
    background = background_samples(plan, bits)
    # Read by every window (cv2.copyTo under the α = 0 mask), never written.
    canvas = _canvas(min(plan.band_rows, height), width, background)
    next_row = 0

    def padding(until: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        nonlocal next_row
        if until > next_row:
            rows = until - next_row
            yield _canvas(rows, g.out_w, background), np.zeros((rows, g.out_w), np.float32)
            next_row = until

    first, last = max(0, g.left), min(width, g.right)
    inside = slice(first - g.left, max(first, last) - g.left)
    for window in windows(reader.bands(plan.band_rows), height, plan.band_rows, plan.halo):
        top, bottom = max(window.y0, g.top), min(window.y1, g.bottom)
        if bottom > top:
            samples, alpha = direct_window(window, plan, width, height, bits, canvas)
            kept = slice(top - window.y0, bottom - window.y0)
            yield from padding(top - g.top)
            rows = np.empty((bottom - top, g.out_w, 3), samples.dtype)
            rows[:, : inside.start] = background  # the canvas beyond the photo, if any
            rows[:, inside.stop :] = background
            rows[:, inside] = samples[kept, first:last]
            rows_alpha = np.zeros((bottom - top, g.out_w), np.float32)
            rows_alpha[:, inside] = alpha[kept, first:last]
            del samples, alpha
            yield rows, rows_alpha
            next_row = bottom - g.top
        del window  # not held while the next one is read: at 108 MP each is ~100 MB
    yield from padding(g.out_h)


def _canvas(rows: int, columns: int, background: np.ndarray) -> np.ndarray:
    canvas = np.empty((rows, columns, 3), background.dtype)
    canvas[...] = background
    return canvas


def direct_window(
    window: Window,
    plan: Plan,
    width: int,
    height: int,
    bits: int,
    canvas: np.ndarray,
    block_columns: int = BLOCK_COLUMNS,
) -> tuple[np.ndarray, np.ndarray]:
    """The window's kept rows, whole width: (``bits``-bit samples on the background, final α).

    ``canvas`` holds the background's samples, at least as many rows as are kept and ``width`` wide.
    """
    pixels, inner = window.pixels, window.inner
    if np.iinfo(pixels.dtype).bits != bits:
        raise ValueError(f"{pixels.dtype} samples cannot go directly to a {bits}-bit output")
    guide = window_guide(pixels, plan.device)
    alpha = window_alpha(window, plan, width, height, guide)
    kept = alpha[inner]
    samples = pixels[inner][..., :3].copy()  # C-contiguous, for OpenCV to write into
    # OpenCV's masked copy: numpy's copyto(where=) or boolean indexing took 15x as long (0.2 s at 24 MP).
    clear = (kept == 0).view(np.uint8)
    samples = cv2.copyTo(canvas[: kept.shape[0]], clear, samples)
    for x0 in range(0, width, block_columns):
        box = soft_box(kept[:, x0 : x0 + block_columns], x0)
        if box is not None:
            rows, columns = box
            area = (slice(rows.start, rows.stop), slice(columns.start, columns.stop))
            samples[area] = _composed(window, plan, width, height, guide, alpha, box, bits)
    return samples, kept


def _composed(
    window: Window,
    plan: Plan,
    width: int,
    height: int,
    guide: Guide,
    alpha: np.ndarray,
    box: tuple[range, range],
    bits: int,
) -> np.ndarray:
    """The float path's samples over ``box``: colour (unmixed if the profile says so) × α on B."""
    assert plan.background is not None
    rows, columns = box
    top = window.inner.start
    a = alpha[top + rows.start : top + rows.stop, columns.start : columns.stop][..., None]
    if plan.profile.decontaminate:
        colour = decontaminated(window, plan, width, height, guide, alpha, box)
    else:
        colour = unit_colours(window.pixels[top + rows.start : top + rows.stop, columns.start : columns.stop])
    colour *= a
    composed = np.multiply(plan.background, 1.0 - a)
    composed += colour
    return quantise(composed, bits)


__all__ = ["applies", "background_samples", "direct_bands", "direct_window"]
