"""The per-band work of a profile: refine, clean up and decontaminate α, then compose the output.

:func:`plan_finish` makes every whole-image decision once, on low-resolution data;
:func:`process_window` turns one haloed window of the original into premultiplied rows;
:func:`compose_output` puts output rows on their background and quantises them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
import torch

from daemon.errors import ConfigError
from daemon.finish import masks
from daemon.finish.bands import Window, resize_block, resize_rows
from daemon.finish.faces import find_face
from daemon.finish.framing import Geometry, choose_geometry, shadow_map
from daemon.io._types import ImageReader
from daemon.io.raster import shrink_to
from daemon.matting.engine import choose_device
from daemon.profiles import Profile, background_kind, background_path, background_rgb, pixel_scale
from daemon.refine.crops import DetailMap
from daemon.refine.edges import EdgeRefiner
from daemon.refine.foreground import FULL_RES_ITERATIONS, estimate_multilevel, keep_opaque_colours, sweep
from daemon.refine.guide import Guide, WindowGuide, to_guide_tensor
from daemon.refine.guided import MAX_STEP, align, scaled

#: Long side of the working copy used for whole-image decisions and coarse foreground colours.
WORK_SIDE = 1024
#: Columns per full-resolution decontamination block. Whole-window temporaries (~100 MB each) are
#: fresh zeroed pages every time; narrow blocks mean many small torch operations, each of which
#: waits for torch's worker threads, slow when the CPU is busy. On an 800×12000 window with 40 %
#: soft α: 512 columns 0.2 s idle / 3–4 s busy, 1024 0.3 s / 2–3 s, the whole width 2.2 s and +1 GB.
BLOCK_COLUMNS = 1024
#: Rows × columns of the CPU's decontamination tiles. The sweep streams a dozen 6-channel float
#: arrays per iteration: over a whole 512 × 1024 soft box they spill the 2 MB L2 and it ran at
#: 207 ns per pixel; at 64 × 256 (with its 3-pixel halo) at 97–114; and tiles without soft α,
#: most of a box around a curved edge, are not swept at all.
SWEEP_TILE = (64, 256)
#: Final α this close to 0 or 1 is snapped there (half a step of 8-bit output).
SNAP = 0.5 / 255


@dataclass(frozen=True)
class LowRes:
    """The whole image at working resolution, and the decisions taken on it."""

    proxy: np.ndarray  # RGB uint8
    alpha: np.ndarray  # float32, thresholded, proxy size
    fg: np.ndarray | None  # coarse foreground colours (H×W×3, [0, 1]) when decontaminating
    bg: np.ndarray | None
    shadow: np.ndarray | None


@dataclass(frozen=True)
class Plan:
    profile: Profile
    alpha: np.ndarray  # the model's cleaned α on its own grid
    low: LowRes
    geometry: Geometry
    guided: EdgeRefiner | None
    erode: float
    feather: float
    halo: int
    band_rows: int
    background: np.ndarray | None  # RGB [0, 1]: a 3-vector for a colour, H×W×3 for an image
    exact_colours: bool
    device: torch.device
    detail: DetailMap | None = None  # the crops' edge detail, added to the upsampled α first

    @property
    def channels(self) -> int:
        return 5 if self.low.shadow is not None else 4


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(1, 2, 0).cpu().numpy()


def _load_background(profile: Profile) -> np.ndarray | None:
    kind = background_kind(profile.background)
    if kind == "transparent":
        return None
    if kind == "colour":
        return np.array(background_rgb(profile.background), np.float32)
    path = background_path(profile.background)
    try:
        stat = path.stat()
    except OSError as exc:
        raise ConfigError([f"profile {profile.name}: background image {path}: {exc.strerror}"]) from None
    return _read_background(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4)
def _read_background(path: str, mtime_ns: int, size: int) -> np.ndarray:
    """Decoded once per version of the file (mtime and size are the cache key), not once per input."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ConfigError([f"background image {path} cannot be read"])
    background = cv2.cvtColor(image, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    background.flags.writeable = False  # shared between files
    return background


def _working_copy(reader: ImageReader, given: np.ndarray | None) -> np.ndarray:
    """The image at WORK_SIDE: shrunk from the model's proxy when that is big enough, else decoded."""
    if given is not None and max(given.shape[:2]) >= min(WORK_SIDE, max(reader.info.oriented_size)):
        return shrink_to(given, WORK_SIDE)
    return reader.proxy(WORK_SIDE)


def _low_res(
    reader: ImageReader, alpha: np.ndarray, profile: Profile, device: torch.device, given: np.ndarray | None
) -> LowRes:
    width, height = reader.info.oriented_size
    proxy = _working_copy(reader, given)
    ph, pw = proxy.shape[:2]
    interpolation = cv2.INTER_AREA if pw < alpha.shape[1] else cv2.INTER_LINEAR
    alpha_low = masks.apply_threshold(
        cv2.resize(alpha, (pw, ph), interpolation=interpolation), profile.alpha_threshold
    )
    fg = bg = None
    if profile.decontaminate:
        image = to_guide_tensor(proxy, device)
        fg_t, bg_t = estimate_multilevel(image, torch.from_numpy(alpha_low).to(device))
        fg, bg = _hwc(fg_t), _hwc(bg_t)
    shadow = None
    if profile.shadow is not None and not profile.transparent:
        shadow = shadow_map(alpha_low, profile.shadow, width / pw, pixel_scale(width, height))
    return LowRes(proxy, alpha_low, fg, bg, shadow)


def plan_finish(
    reader: ImageReader,
    alpha: np.ndarray,
    profile: Profile,
    band_rows: int,
    device: torch.device | None = None,
    proxy: np.ndarray | None = None,
    detail: DetailMap | None = None,
) -> Plan:
    """Every whole-image decision; refinement runs on ``device`` (the model's; ``None``: auto).

    ``proxy``, the model's input image if still at hand, spares decoding a working copy;
    ``detail``, the crop pass's result for ``alpha`` (:mod:`daemon.refine.crops`), if any.
    """
    if band_rows % MAX_STEP:
        raise ValueError(f"band rows must be a multiple of {MAX_STEP}")
    width, height = reader.info.oriented_size
    scale = pixel_scale(width, height)
    device = device or choose_device("auto")
    low = _low_res(reader, alpha, profile, device, proxy)
    face = find_face(low.proxy).scaled(width / low.proxy.shape[1]) if profile.crop == "face" else None
    geometry = choose_geometry(profile, width, height, low.alpha, face)
    guided = (
        EdgeRefiner(scaled(profile.refine_radius, profile.refine_eps, scale))
        if profile.refine == "guided"
        else None
    )
    erode, feather = profile.erode * scale, profile.feather * scale
    halo = (
        (guided.halo if guided else 0)
        + masks.erode_halo(erode)
        + masks.feather_halo(feather)
        + (FULL_RES_ITERATIONS if profile.decontaminate else 0)
    )
    exact = profile.transparent and not profile.decontaminate and geometry.is_identity(width, height)
    return Plan(
        profile,
        alpha,
        low,
        geometry,
        guided,
        erode,
        feather,
        align(halo, MAX_STEP),
        band_rows,
        _load_background(profile),
        exact,
        device,
        detail,
    )


def window_alpha(window: Window, plan: Plan, width: int, height: int, rgb: Guide | None) -> np.ndarray:
    """Final α over the whole window: upsampled, refined, thresholded, eroded, feathered."""
    alpha = resize_rows(plan.alpha, width, height, window.top, window.bottom).astype(np.float32)
    if plan.detail is not None:
        alpha = plan.detail.apply(alpha, window.top, width)
    if plan.guided is not None and rgb is not None:
        alpha = plan.guided(rgb, torch.from_numpy(alpha).to(plan.device)).cpu().numpy()
    alpha = masks.apply_threshold(alpha, plan.profile.alpha_threshold)
    alpha = masks.feather(masks.erode(alpha, plan.erode), plan.feather)
    # Filters leave a faint haze (α 0.999 / 0.001) over flat areas: snap it to opaque / clear, so
    # what an 8-bit file shows as opaque keeps the photo's colours exactly.
    alpha[alpha > 1.0 - SNAP] = 1.0
    alpha[alpha < SNAP] = 0.0
    return alpha


def scale_alpha(alpha: np.ndarray, dtype: np.dtype[np.generic]) -> np.ndarray:
    peak = np.iinfo(dtype).max  # type: ignore[type-var]
    return np.rint(alpha * peak).astype(dtype)


def compose_raw_band(rgb: np.ndarray, alpha: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Original colours with the model's alpha (an existing alpha channel is replaced).

    ``out``, if given, is an RGBA array of ``rgb``'s rows, width and dtype to fill (and return).
    """
    # α is scaled, rounded half to even and saturated in one OpenCV pass (as scale_alpha does for
    # α ≥ 0), then interleaved with the colours by one mixChannels into a fresh array: numpy's
    # strided ``out[..., 3] = …`` after a cvtColor took twice as long (24 MP RGBA16: 0.17 → 0.08 s).
    peak = float(np.iinfo(rgb.dtype).max)
    if rgb.dtype == np.uint8:
        scaled = cv2.convertScaleAbs(alpha, alpha=peak)
    else:
        depth = cv2.CV_16U if rgb.dtype == np.uint16 else None
        if depth is None:
            raise ValueError(f"samples of {rgb.dtype} cannot be composed")
        scaled = cv2.addWeighted(alpha, peak, alpha, 0.0, 0.0, dtype=depth)
    if out is None:
        out = np.empty((*rgb.shape[:2], 4), rgb.dtype)
    colour = np.ascontiguousarray(rgb)
    if colour.shape[2] == 3:
        # cvtColor's SIMD widening to RGBA, then α alone: half of mixChannels' time for all four
        # channels (12 MP: 15 against 30 ms).
        cv2.cvtColor(colour, cv2.COLOR_RGB2RGBA, dst=out)
        cv2.mixChannels([scaled], [out], [0, 3])
    else:
        cv2.mixChannels([colour, scaled], [out], [0, 0, 1, 1, 2, 2, rgb.shape[2], 3])
    return out


def process_window(
    window: Window, plan: Plan, width: int, height: int, block_columns: int = BLOCK_COLUMNS
) -> np.ndarray:
    """The window's kept rows: premultiplied float32 (RGB·α, α[, shadow]), or integer RGBA if exact.

    Decontamination runs on blocks of ``block_columns`` columns (the result does not depend on it).
    """
    pixels, inner = window.pixels, window.inner
    needs_rgb = plan.guided is not None or plan.profile.decontaminate or not plan.exact_colours
    rgb = window_guide(pixels, plan.device) if needs_rgb else None
    alpha = window_alpha(window, plan, width, height, rgb)
    if plan.exact_colours:
        return compose_raw_band(pixels[inner], alpha[inner])
    assert rgb is not None
    kept = alpha[inner]
    out = np.empty((*kept.shape, plan.channels), np.float32)
    colour = out[..., :3]
    if plan.device.type == "cpu":
        # Read from the pixels directly: permuting a CHW float copy back to HWC was a strided 24 MP pass.
        unit_colours(pixels[inner], out=colour)
    else:
        colour[...] = _hwc(rgb[:, inner, :])
    if plan.profile.decontaminate:
        for x0 in range(0, width, block_columns):
            box = soft_box(kept[:, x0 : x0 + block_columns], x0)
            # Only 0 < α < 1 needs F: where α is 1 F is the photo's colour (keep_opaque_colours), where
            # α is 0 it is multiplied away. Outside the model's uncertain band most blocks have neither.
            if box is not None:
                rows, columns = box
                colour[rows.start : rows.stop, columns.start : columns.stop] = decontaminated(
                    window, plan, width, height, rgb, alpha, box
                )
    colour *= kept[..., None]
    out[..., 3] = kept
    if plan.low.shadow is not None:
        out[..., 4] = resize_rows(plan.low.shadow, width, height, window.y0, window.y1)
    return out


def unit_colours(pixels: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The RGB of integer ``pixels`` (H×W×C) as float32 in [0, 1], HWC: the guide's values (a
    correctly rounded division either way), without its CHW layout."""
    peak = np.float32(np.iinfo(pixels.dtype).max)
    return np.divide(pixels[..., :3], peak, out=out, dtype=np.float32)


def window_guide(pixels: np.ndarray, device: torch.device) -> Guide:
    """The window's colours for refinement: converted per block on the CPU, uploaded whole elsewhere."""
    return WindowGuide(pixels, device) if device.type == "cpu" else to_guide_tensor(pixels, device)


def soft_box(alpha: np.ndarray, left: int) -> tuple[range, range] | None:
    """The bounding box (rows, columns offset by ``left``) of the pixels where 0 < α < 1, if any."""
    soft = (alpha > 0) & (alpha < 1)
    rows, columns = np.flatnonzero(soft.any(axis=1)), np.flatnonzero(soft.any(axis=0))
    if not len(rows):
        return None
    return range(rows[0], rows[-1] + 1), range(left + columns[0], left + columns[-1] + 1)


def decontaminated(
    window: Window,
    plan: Plan,
    width: int,
    height: int,
    rgb: Guide,
    alpha: np.ndarray,
    box: tuple[range, range],
) -> np.ndarray:
    """Subject colours (H×W×3) over ``box`` (kept rows, columns) from the full-resolution sweeps.

    On the CPU the box is swept tile by tile, each tile only over its own soft pixels' box
    (:data:`SWEEP_TILE`); elsewhere the photo's colours stand, which is what the sweep gives
    where α is 1 (:func:`keep_opaque_colours`) and is multiplied away where α is 0.
    """
    kept_rows, columns = box
    top = window.inner.start
    colour = unit_colours(
        window.pixels[top + kept_rows.start : top + kept_rows.stop, columns.start : columns.stop]
    )
    tile_rows, tile_columns = SWEEP_TILE if plan.device.type == "cpu" else (len(kept_rows), len(columns))
    for r0 in range(kept_rows.start, kept_rows.stop, tile_rows):
        band = alpha[top + r0 : top + min(r0 + tile_rows, kept_rows.stop)]
        for c0 in range(columns.start, columns.stop, tile_columns):
            soft = soft_box(band[:, c0 : min(c0 + tile_columns, columns.stop)], c0)
            if soft is None:
                continue
            rows, cols = range(r0 + soft[0].start, r0 + soft[0].stop), soft[1]
            at = (
                slice(rows.start - kept_rows.start, rows.stop - kept_rows.start),
                slice(cols.start - columns.start, cols.stop - columns.start),
            )
            colour[at] = _swept(window, plan, width, height, rgb, alpha, (rows, cols))
    return colour


def _swept(
    window: Window,
    plan: Plan,
    width: int,
    height: int,
    rgb: Guide,
    alpha: np.ndarray,
    box: tuple[range, range],
) -> np.ndarray:
    """:func:`decontaminated` over one ``box``, swept whole.

    The sweeps read 4-neighbours only, so :data:`FULL_RES_ITERATIONS` rows and columns of
    halo around the box give exactly what sweeping the whole window gives there.
    """
    assert plan.low.fg is not None and plan.low.bg is not None
    n, (kept_rows, columns) = FULL_RES_ITERATIONS, box
    rows = range(window.inner.start + kept_rows.start, window.inner.start + kept_rows.stop)
    # Clipped at the window's edges, where the whole-window sweep has its own border.
    y = range(max(0, rows.start - n), min(alpha.shape[0], rows.stop + n))
    x = range(max(0, columns.start - n), min(width, columns.stop + n))
    a = torch.from_numpy(np.ascontiguousarray(alpha[y.start : y.stop, x.start : x.stop])).to(plan.device)
    image = rgb[:, y.start : y.stop, x.start : x.stop].contiguous()
    place = (width, height, range(window.top + y.start, window.top + y.stop), x)
    fg0, bg0 = (_to_chw(resize_block(low, *place), plan.device) for low in (plan.low.fg, plan.low.bg))
    fg, _ = sweep(image, a, fg0, bg0, n)
    fg = keep_opaque_colours(image, a, fg)
    top, left = rows.start - y.start, columns.start - x.start
    return _hwc(fg[:, top : top + len(rows), left : left + len(columns)])


def _to_chw(hwc: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(hwc).to(device).permute(2, 0, 1).contiguous()


def compose_output(band: np.ndarray, plan: Plan, y: int, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(pixels for the writer, α in [0, 1]) for output rows starting at ``y``."""
    if plan.exact_colours:
        return band, band[..., 3].astype(np.float32) / np.iinfo(band.dtype).max
    premultiplied, alpha = band[..., :3], band[..., 3:4]
    # One float buffer filled in place: a 512-row band of a 12000 px file is ~100 MB per temporary.
    out = np.empty((*band.shape[:2], 4 if plan.background is None else 3), np.float32)
    colour = out[..., :3]
    if plan.background is None:
        colour.fill(0.0)
        np.divide(premultiplied, alpha, out=colour, where=alpha > 0)
        out[..., 3:] = alpha
    else:
        background = plan.background
        if background.ndim == 3:
            g = plan.geometry
            background = resize_rows(background, g.out_w, g.out_h, y, y + band.shape[0])
        if band.shape[2] > 4:
            background = background * (1.0 - band[..., 4:5])
        np.multiply(background, 1.0 - alpha, out=colour)
        colour += premultiplied
    return quantise(out, bits), alpha[..., 0]


def quantise(out: np.ndarray, bits: int) -> np.ndarray:
    """Composed float samples (H×W×C, contiguous; overwritten) as ``bits``-bit integers, rounded."""
    if bits == 8 and out.shape[2] <= 4:
        # One OpenCV pass scales, rounds half to even and saturates to 0..255, as the numpy passes
        # below do; it takes |x| first, so anything below 0 is raised to 0 before.
        np.maximum(out, 0.0, out=out)
        return cv2.convertScaleAbs(out.reshape(out.shape[0], -1), alpha=255.0).reshape(out.shape)
    dtype = np.uint8 if bits == 8 else np.uint16
    np.clip(out, 0.0, 1.0, out=out)
    out *= np.iinfo(dtype).max
    return np.rint(out, out=out).astype(dtype)
