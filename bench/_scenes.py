"""Scenes with known ground truth for ``bench/quality.py``.

Ground truth never comes from the method under test:

- **synthetic**: a textured body whose edge is sharp at the top and defocused at the
  bottom, thin hair-like strands and a semi-transparent veil, drawn at 4× supersampling,
  so α and the foreground colours are exact;
- **real**: a scikit-image photo matted offline with closed-form matting (pymatting,
  Levin et al. 2008) in a generous unknown band around the model's edge, its foreground
  colours from pymatting's multi-level estimation. The matte and foreground are then
  placed on *other* real backgrounds, so the scene is exactly ``αF + (1 − α)B`` by
  construction, whatever the matte's flaws on the original photo.

Both kinds are composited onto crops of real photos without a salient object of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
import skimage.data

SUPER = 4
SYNTHETIC_SIZE = (1200, 900)
#: Crops without a salient object of their own (a cup or a cat would rightly be cut out too).
BACKGROUNDS = (
    ("coffee", slice(220, 400), slice(0, 240)),  # wooden table
    ("hubble_deep_field", slice(0, 872), slice(0, 1000)),
    ("immunohistochemistry", slice(0, 512), slice(0, 512)),
    ("rocket", slice(0, 180), slice(0, 240)),  # sky and trees
    ("chelsea", slice(0, 120), slice(0, 160)),  # wall and blanket behind the cat
)
#: Photos matted for the real scenes: hair, fur, and a product with hard and shiny edges.
REAL_PHOTOS = ("astronaut", "chelsea", "coffee")
#: Half-width (px) of the unknown band of the closed-form trimap, around the model's edge.
TRIMAP_BAND = 10


@dataclass(frozen=True)
class Scene:
    name: str
    kind: Literal["synthetic", "real", "large"]
    fg: np.ndarray  # H×W×3 float32 in [0, 1]
    alpha: np.ndarray  # H×W float32 in [0, 1]
    background: np.ndarray  # H×W×3 float32
    #: Synthetic scenes only: boolean H×W masks of their parts (veil, strands, body edge), so the
    #: harness can tell which kind of edge a profile helps or hurts.
    parts: dict[str, np.ndarray] = field(default_factory=dict)

    def composite(self) -> np.ndarray:
        """The photo the model sees, as 8-bit RGB."""
        a = self.alpha[..., None]
        return np.rint((a * self.fg + (1 - a) * self.background) * 255).astype(np.uint8)


def background(index: int, width: int, height: int) -> np.ndarray:
    name, rows, cols = BACKGROUNDS[index % len(BACKGROUNDS)]
    image = getattr(skimage.data, name)()[rows, cols]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0


def _body(rng: np.random.Generator, w: int, h: int, defocus: float = 2.0 * SUPER) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = np.arctan2(yy - h * 0.55, xx - w * 0.5)
    radius = np.hypot((yy - h * 0.55) / (h * 0.32), (xx - w * 0.5) / (w * 0.22))
    wobble = 1 + sum(rng.uniform(-0.06, 0.06) * np.cos(k * angle + rng.uniform(0, 6)) for k in range(2, 6))
    sharp = (radius < wobble).astype(np.float32)
    # The lower part is out of focus, as in a portrait shot wide open: a soft edge a few px wide.
    defocused = cv2.GaussianBlur(sharp, (0, 0), defocus)
    lower = np.clip((yy / h - 0.55) / 0.2, 0, 1)
    return (1 - lower) * sharp + lower * defocused


def _strands(
    rng: np.random.Generator,
    body: np.ndarray,
    count: int,
    step: float = 6.0,
    widths: tuple[int, int] = (2, 5),
) -> np.ndarray:
    h, w = body.shape
    canvas = np.zeros((h, w), np.uint8)
    solid = (body > 0.5).astype(np.uint8)
    ys, xs = np.nonzero(cv2.morphologyEx(solid, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)))
    top = ys < np.percentile(ys, 45)
    for i in rng.choice(np.flatnonzero(top), count):
        x, y = float(xs[i]), float(ys[i])
        direction = np.arctan2(y - h * 0.55, x - w * 0.5) + rng.normal(0, 0.3)
        points = []
        for _ in range(int(rng.uniform(20, 50))):
            points.append((x, y))
            direction += rng.normal(0, 0.08)
            x += step * np.cos(direction)
            y += step * np.sin(direction)
        thickness = int(rng.integers(*widths))
        cv2.polylines(canvas, [np.array(points, np.int32)], False, 255, thickness, cv2.LINE_AA)
    return canvas.astype(np.float32) / 255.0


def synthetic_scene(seed: int) -> Scene:
    """Foreground and α at SYNTHETIC_SIZE, area-averaged from a 4× supersampled drawing."""
    rng = np.random.default_rng(seed)
    width, height = SYNTHETIC_SIZE
    w, h = width * SUPER, height * SUPER
    body = _body(rng, w, h)
    strands = _strands(rng, body, 160)
    veil = np.zeros((h, w), np.uint8)
    cv2.ellipse(veil, (int(w * 0.72), int(h * 0.75)), (w // 9, h // 7), 20, 0, 360, 1, -1)
    alpha_super = np.maximum(np.maximum(body, strands), 0.5 * veil)
    alpha = cv2.resize(alpha_super, (width, height), interpolation=cv2.INTER_AREA)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.array(rng.uniform([0.6, 0.3, 0.1], [0.95, 0.6, 0.35]), np.float32)
    texture = 0.08 * np.sin(xx / rng.uniform(9, 20))[..., None] * np.cos(yy / rng.uniform(9, 20))[..., None]
    fg = np.clip(base + texture + rng.normal(0, 0.02, (height, width, 3)), 0, 1).astype(np.float32)
    hair = cv2.resize(strands, (width, height), interpolation=cv2.INTER_AREA) > 0.02
    outside = cv2.resize(body, (width, height), interpolation=cv2.INTER_AREA) < 0.5
    fg[hair & outside] = (0.35, 0.2, 0.1)
    return Scene(
        f"synthetic-{seed}",
        "synthetic",
        fg,
        alpha.astype(np.float32),
        background(seed, width, height),
        _parts(veil, hair & outside),
    )


def _parts(veil_super: np.ndarray, strands: np.ndarray) -> dict[str, np.ndarray]:
    """Veil (its rim and where it overlaps the body's edge), strands outside it, and the rest."""
    h, w = strands.shape
    veil = cv2.resize(veil_super.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) > 0
    veil = cv2.dilate(veil.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
    strands = strands & ~veil
    return {"veil": veil, "strands": strands, "body edge": ~veil & ~strands}


def closed_form_truth(photo: np.ndarray, model_alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(foreground, α) of an 8-bit ``photo``: closed-form matting in a band around the model's edge."""
    from pymatting import estimate_alpha_cf, estimate_foreground_ml

    h, w = photo.shape[:2]
    alpha = cv2.resize(model_alpha, (w, h), interpolation=cv2.INTER_LINEAR)
    kernel = np.ones((2 * TRIMAP_BAND + 1,) * 2, np.uint8)
    trimap = np.full((h, w), 0.5)
    trimap[cv2.erode((alpha > 0.95).astype(np.uint8), kernel) > 0] = 1.0
    trimap[cv2.erode((alpha < 0.05).astype(np.uint8), kernel) > 0] = 0.0
    image = photo.astype(np.float64) / 255.0
    matte = np.clip(estimate_alpha_cf(image, trimap), 0, 1)
    fg = estimate_foreground_ml(image, matte)
    return fg.astype(np.float32), matte.astype(np.float32)


def real_scenes(name: str, model_alpha: np.ndarray, backgrounds: tuple[int, ...]) -> list[Scene]:
    """``name``'s matte and foreground placed on each of ``backgrounds`` (indices into BACKGROUNDS)."""
    photo = getattr(skimage.data, name)()[..., :3]
    fg, alpha = closed_form_truth(photo, model_alpha)
    h, w = alpha.shape
    return [
        Scene(f"{name}-on-{BACKGROUNDS[b % len(BACKGROUNDS)][0]}", "real", fg, alpha, background(b, w, h))
        for b in backgrounds
    ]


#: Backdrops of the large scenes: what exposed the crop pass's failure modes in the prototype.
LARGE_BACKDROPS = ("studio", "busy", "salient")
LARGE_SIZE = (4000, 3000)  # 12 MP


def large_backdrop(kind: str, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """``studio``: a smooth lit paper roll; ``busy``: brick texture at full detail; ``salient``: a
    photo with its own subject (Chelsea the cat), which a crop without context may call subject."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if kind == "studio":
        light = 0.75 - 0.25 * np.hypot((xx - 0.4 * width) / width, (yy - 0.3 * height) / height)
        grey = np.dstack([light * 0.92, light * 0.95, light])
        return np.clip(grey + rng.normal(0, 0.004, grey.shape), 0, 1).astype(np.float32)
    if kind == "busy":
        brick = skimage.data.brick().astype(np.float32) / 255.0
        tile = cv2.resize(brick, (brick.shape[1] * 2, brick.shape[0] * 2), interpolation=cv2.INTER_CUBIC)
        reps = (-(-height // tile.shape[0]), -(-width // tile.shape[1]))
        texture = np.tile(tile, reps)[:height, :width]
        tint = np.array([0.75, 0.45, 0.35], np.float32)
        return np.clip(texture[..., None] * tint * 1.4, 0, 1).astype(np.float32)
    if kind == "salient":
        photo = skimage.data.chelsea()
        return cv2.resize(photo, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0
    raise ValueError(kind)


def large_scene(seed: int, backdrop: str, size: tuple[int, int] = LARGE_SIZE) -> Scene:
    """A subject with a hair cap, strands and a 50 % veil at ``size`` (≥ 12 MP), exact α.

    Drawn at the output size with anti-aliased lines (no supersampling: 16× the pixels would
    not fit), so α is exact by construction: the photo is α·F + (1 − α)·B with this very α.
    """
    rng = np.random.default_rng(seed)
    width, height = size
    scale = width / SYNTHETIC_SIZE[0]
    body = _body(rng, width, height, defocus=2.0 * scale)
    # The hair cap: dense strands over the head's top, many leaving the body as fly-aways.
    strands = _strands(rng, body, 300, step=6.0 * scale, widths=(2, 4))
    veil = np.zeros((height, width), np.uint8)
    cv2.ellipse(veil, (int(width * 0.72), int(height * 0.75)), (width // 9, height // 7), 20, 0, 360, 1, -1)
    alpha = np.maximum(np.maximum(body, strands), 0.5 * veil).astype(np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.array(rng.uniform([0.6, 0.3, 0.1], [0.95, 0.6, 0.35]), np.float32)
    period = rng.uniform(9, 20, 2) * scale
    texture = 0.08 * np.sin(xx / period[0])[..., None] * np.cos(yy / period[1])[..., None]
    fg = np.clip(base + texture + rng.normal(0, 0.02, (height, width, 3)), 0, 1).astype(np.float32)
    hair = strands > 0.02
    fg[hair] = (0.35, 0.2, 0.1)  # the cap and its strands share the hair colour
    del texture, yy, xx
    outside = body < 0.5
    parts = _parts(veil, hair & outside)
    backdrop_rgb = large_backdrop(backdrop, width, height, rng)
    return Scene(f"{backdrop}-{seed}", "large", fg, alpha, backdrop_rgb, parts)
