"""Edge-quality harness: every profile against ``raw`` on subjects with exactly known alpha.

Ground truth never comes from the method under test: synthetic subjects (a textured
body with soft edges, thin hair-like strands and a semi-transparent veil) are
rendered at 4× supersampling, so their α and foreground colours are known exactly,
and composited onto real photos shipped with scikit-image. The real model (1024²)
cuts each one out once; every profile then finishes the same alpha.

Metrics (on α in [0, 1], images 1200×900):
- SAD: Σ|α - α*| / 1000;  MSE: mean (α - α*)² × 1000;
- Grad: Σ (|∇α| - |∇α*|)² / 1000 with Gaussian derivatives (σ = 1.4);
- Edge colour: mean |C - C*| (0–255) over the edge band (0 < α* < 1, grown by 2 px), where
  C is the output composited onto white and C* the true foreground composited onto white:
  the visible halo.

Profiles that crop (product, id_photo) are measured with ``crop: none`` so every pixel can
be compared. Run: ``.venv/bin/python bench/quality.py [--images N]``.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np
import skimage.data
from PIL import Image
from scipy import ndimage  # type: ignore[import-untyped]

from daemon.cutout import cut_out, mask_path_for
from daemon.io.detect import open_image
from daemon.matting.engine import load_engine, prepare
from daemon.profiles import BUILTIN_PROFILES, Profile

WIDTH, HEIGHT, SUPER = 1200, 900, 4
#: Crops without a salient object of their own (a cup or a cat would rightly be cut out too).
BACKGROUNDS = (
    ("coffee", slice(220, 400), slice(0, 240)),  # wooden table
    ("hubble_deep_field", slice(0, 872), slice(0, 1000)),
    ("immunohistochemistry", slice(0, 512), slice(0, 512)),
    ("rocket", slice(0, 180), slice(0, 240)),  # sky and trees
    ("chelsea", slice(0, 120), slice(0, 160)),  # wall and blanket behind the cat
)


def _body(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = np.arctan2(yy - h * 0.55, xx - w * 0.5)
    radius = np.hypot((yy - h * 0.55) / (h * 0.32), (xx - w * 0.5) / (w * 0.22))
    wobble = 1 + sum(rng.uniform(-0.06, 0.06) * np.cos(k * angle + rng.uniform(0, 6)) for k in range(2, 6))
    return (radius < wobble).astype(np.uint8)


def _strands(rng: np.random.Generator, body: np.ndarray, count: int) -> np.ndarray:
    h, w = body.shape
    canvas = np.zeros((h, w), np.uint8)
    ys, xs = np.nonzero(cv2.morphologyEx(body, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)))
    top = ys < np.percentile(ys, 45)
    picks = rng.choice(np.flatnonzero(top), count)
    for i in picks:
        x, y = float(xs[i]), float(ys[i])
        direction = np.arctan2(y - h * 0.55, x - w * 0.5) + rng.normal(0, 0.3)
        points = []
        for _ in range(int(rng.uniform(20, 50))):
            points.append((x, y))
            direction += rng.normal(0, 0.08)
            x += 6 * np.cos(direction)
            y += 6 * np.sin(direction)
        cv2.polylines(
            canvas,
            [np.array(points, np.int32)],
            False,
            255,
            thickness=int(rng.integers(2, 5)),
            lineType=cv2.LINE_AA,
        )
    return canvas.astype(np.float32) / 255.0


def synthetic_subject(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(foreground RGB float32, α float32) at WIDTH×HEIGHT, from a 4× supersampled drawing."""
    rng = np.random.default_rng(seed)
    w, h = WIDTH * SUPER, HEIGHT * SUPER
    body = _body(rng, w, h)
    strands = _strands(rng, body, 160)
    veil = np.zeros((h, w), np.uint8)
    cv2.ellipse(veil, (int(w * 0.72), int(h * 0.75)), (w // 9, h // 7), 20, 0, 360, 1, -1)
    alpha_super = np.maximum(np.maximum(body.astype(np.float32), strands), 0.5 * veil)
    alpha = cv2.resize(alpha_super, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    base = np.array(rng.uniform([0.6, 0.3, 0.1], [0.95, 0.6, 0.35]), np.float32)
    texture = 0.08 * np.sin(xx / rng.uniform(9, 20))[..., None] * np.cos(yy / rng.uniform(9, 20))[..., None]
    fg = np.clip(base + texture + rng.normal(0, 0.02, (HEIGHT, WIDTH, 3)), 0, 1).astype(np.float32)
    hair = cv2.resize(strands, (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA) > 0.02
    fg[hair & (cv2.resize(body, (WIDTH, HEIGHT), interpolation=cv2.INTER_NEAREST) == 0)] = (0.35, 0.2, 0.1)
    return fg, alpha.astype(np.float32)


def background(index: int) -> np.ndarray:
    name, rows, cols = BACKGROUNDS[index % len(BACKGROUNDS)]
    image = getattr(skimage.data, name)()[rows, cols]
    return cv2.resize(image, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255.0


def gradient_error(alpha: np.ndarray, truth: np.ndarray) -> float:
    def magnitude(a: np.ndarray) -> np.ndarray:
        return np.hypot(
            ndimage.gaussian_filter(a, 1.4, order=(0, 1)), ndimage.gaussian_filter(a, 1.4, order=(1, 0))
        )

    return float(((magnitude(alpha) - magnitude(truth)) ** 2).sum() / 1000)


def metrics(
    out_rgb: np.ndarray, alpha: np.ndarray, fg: np.ndarray, truth: np.ndarray, opaque: bool
) -> dict[str, float]:
    on_white = out_rgb if opaque else out_rgb * alpha[..., None] + (1 - alpha[..., None])
    ideal = fg * truth[..., None] + (1 - truth[..., None])
    band = cv2.dilate(((truth > 0) & (truth < 1)).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    weight = truth[band][:, None]
    # The halo alone: colour spill visible on white with the profile's own α, |α̂ (C − F*)|.
    spill = np.abs(alpha[..., None] * ((out_rgb if not opaque else _unmix(out_rgb, alpha)) - fg))
    return {
        "Halo": float(spill[band].mean() * 255),
        "FgError": float((np.abs(out_rgb - fg)[band] * weight).sum() / (3 * weight.sum()) * 255)
        if not opaque
        else float("nan"),
        "SAD": float(np.abs(alpha - truth).sum() / 1000),
        "MSE": float(((alpha - truth) ** 2).mean() * 1000),
        "Grad": gradient_error(alpha, truth),
        "EdgeColour": float(np.abs(on_white - ideal)[band].mean() * 255),
    }


def _unmix(on_white: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """The subject colour C behind an opaque-on-white output: C = (out - (1 - α)) / α."""
    safe = np.maximum(alpha, 1e-3)[..., None]
    return np.clip((on_white - (1 - alpha[..., None])) / safe, 0, 1)


def bench_profiles() -> dict[str, Profile]:
    chosen = {}
    for name, profile in BUILTIN_PROFILES.items():
        chosen[name] = profile.model_copy(update={"crop": "none", "canvas": "none", "save_mask": True})
    chosen["portrait (no decontaminate)"] = chosen["portrait"].model_copy(update={"decontaminate": False})
    chosen["raw"] = BUILTIN_PROFILES["raw"].model_copy(update={"save_mask": True, "alpha_threshold": 0})
    return chosen


def run(images: int) -> dict[str, list[dict[str, float]]]:
    engine = load_engine(None, "auto", 1024)
    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(images):
            fg, truth = synthetic_subject(seed=i)
            composite = truth[..., None] * fg + (1 - truth[..., None]) * background(i)
            source = Path(tmp) / f"scene{i}.png"
            Image.fromarray(np.rint(composite * 255).astype(np.uint8)).save(source)
            reader = open_image(source, max_megapixels=50)
            alpha_model = engine.predict([prepare(reader.proxy(2 * engine.size), engine.size)])[0]
            for name, profile in bench_profiles().items():
                out = cut_out(
                    open_image(source, max_megapixels=50), alpha_model, Path(tmp) / f"{i}-{name}.png", profile
                )
                pixels = np.asarray(Image.open(out.output)).astype(np.float32) / 255.0
                mask = (
                    np.asarray(Image.open(mask_path_for(out.output)).convert("L")).astype(np.float32) / 255.0
                )
                row = metrics(pixels[..., :3], mask, fg, truth, not profile.transparent)
                row["confidence"] = out.confidence
                results.setdefault(name, []).append(row)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5)
    args = parser.parse_args()
    results = run(args.images)
    keys = ("SAD", "MSE", "Grad", "EdgeColour", "Halo", "FgError", "confidence")
    raw = {k: float(np.mean([r[k] for r in results["raw"]])) for k in keys}
    print(f"{args.images} synthetic scenes, {WIDTH}x{HEIGHT}, model at 1024; mean over scenes")
    print(f"| profile | {' | '.join(keys)} | EdgeColour vs raw | Halo vs raw | SAD vs raw |")
    print("|---" * (len(keys) + 4) + "|")
    for name, rows in results.items():
        mean = {k: float(np.mean([r[k] for r in rows])) for k in keys}
        cells = " | ".join(f"{mean[k]:.3f}" for k in keys)
        print(
            f"| {name} | {cells} | {100 * (mean['EdgeColour'] / raw['EdgeColour'] - 1):+.1f} % "
            f"| {100 * (mean['Halo'] / raw['Halo'] - 1):+.1f} % "
            f"| {100 * (mean['SAD'] / raw['SAD'] - 1):+.1f} % |"
        )


if __name__ == "__main__":
    main()
