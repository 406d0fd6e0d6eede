"""Edge-quality harness: every built-in profile against ``raw``, on scenes with known α and colours.

    .venv/bin/python bench/quality.py [--synthetic N] [--no-real]     (make bench-quality)
    .venv/bin/python bench/quality.py --large [--size 4000x3000] [--quick]   (the crop pass)
        [--backdrops studio,busy] [--profiles portrait]   (a part of it: prints, saves nothing)

Scenes (:mod:`_scenes`): N synthetic subjects with exact α and foreground, and three real
photos matted offline by closed-form matting, each placed on two other real backgrounds.
The real model (1024²) cuts each scene out once; every profile then finishes that same
α through :func:`daemon.finish.cutout.cut_out`, exactly as ``hotmatte process`` would.

Metrics, on α in [0, 1] (``α̂`` the profile's, ``α*`` the truth; ``C`` its colours, ``F*``
the true foreground), over the **edge band**: pixels within 2 px of where α* changes (the
soft edge, strands and the veil's rim, not the veil's flat inside):

- ``SAD`` Σ|α̂ − α*| / 1000 and ``MSE`` mean (α̂ − α*)² × 1000, over the whole image;
- ``Grad``: Σ (|∇α̂| − |∇α*|)² / 1000, Gaussian derivatives with σ = 1.4;
- ``Halo``: mean α̂·|C − F*| (0–255): the colour error that compositing onto white shows
  at the profile's own α, i.e. what decontamination is for (old background spilling in);
- ``EdgeColour``: mean |C·α̂ + (1 − α̂) − (F*·α* + 1 − α*)|: the full error on white,
  α errors (missed strands, a veil judged opaque) included;
- ``FgError``: |C − F*| weighted by α*·α̂: foreground colour error where both show the subject;
- ``Halo[part]`` (synthetic scenes): Halo over the band pixels of one part: the veil (its rim
  and where it crosses the body's edge), the strands, and the body's edge (sharp and defocused),
  so a profile's gain or loss can be traced to the kind of edge.

``--large``: scenes at ≥ 12 MP (:func:`_scenes.large_scene`: a hair cap, strands and a 50 %
veil, exact α) on three backdrops (plain studio, busy brick, a photo with its own subject),
every profile with ``detail: none`` and ``detail: crops``; α only, per part of the edge band
(``MSE[part]``, × 1000), ``Grad`` over the image, ``IoU`` of α > 0.5 and ``haze``: mean α̂ × 1000
over the true background within 2 % of the long side of the subject. ``--quick``: raw and
portrait only. The default scenes (1200×900 synthetic, 512-px real) are too small for crops
(their shorter side is under the model's 1024 px), so there ``detail`` changes nothing.

The real scenes' truth comes from closed-form matting: it favours methods that, like it,
assume colour-line models in small windows (the guided filter); the synthetic scenes do not.

Opaque outputs (product, id_photo) are unmixed from white to get ``C``. Profiles that crop
are measured with ``crop: none`` so every pixel can be compared. Results:
``bench/results/quality.json`` and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import skimage.data
from _scenes import LARGE_BACKDROPS, REAL_PHOTOS, Scene, large_scene, real_scenes, synthetic_scene
from PIL import Image
from scipy import ndimage  # type: ignore[import-untyped]

from daemon.finish.cutout import CutoutResult, cut_out, mask_path_for
from daemon.finish.outputs import Destination
from daemon.io.detect import open_image
from daemon.matting.engine import MattingEngine, load_engine, prepare
from daemon.pipeline.stages import proxy_side
from daemon.profiles import BUILTIN_PROFILES, Profile

RESULTS = Path(__file__).resolve().parent / "results"
KEYS = ("SAD", "MSE", "Grad", "Halo", "EdgeColour", "FgError")
PARTS = ("Halo[veil]", "Halo[strands]", "Halo[body edge]")
VERSUS_RAW = ("Halo", "EdgeColour", "SAD", "Grad")


def edge_band(truth: np.ndarray) -> np.ndarray:
    soft = (truth > 0.01) & (truth < 0.99)
    local_range = cv2.dilate(truth, np.ones((3, 3))) - cv2.erode(truth, np.ones((3, 3)))
    changing = (soft & (local_range > 0.02)) | (local_range > 0.5)
    return cv2.dilate(changing.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)


def gradient_error(alpha: np.ndarray, truth: np.ndarray) -> float:
    def magnitude(a: np.ndarray) -> np.ndarray:
        return np.hypot(
            ndimage.gaussian_filter(a, 1.4, order=(0, 1)), ndimage.gaussian_filter(a, 1.4, order=(1, 0))
        )

    return float(((magnitude(alpha) - magnitude(truth)) ** 2).sum() / 1000)


def metrics(colour: np.ndarray, alpha: np.ndarray, scene: Scene, opaque: bool) -> dict[str, float]:
    """``colour`` is the file's RGB in [0, 1]: on white if ``opaque``, else unpremultiplied."""
    a, truth, fg = alpha[..., None], scene.alpha, scene.fg
    on_white = colour if opaque else colour * a + (1 - a)
    if opaque:  # C = (out − (1 − α)) / α where α > 0
        colour = np.clip((colour - (1 - a)) / np.maximum(a, 1e-3), 0, 1)
    ideal = fg * truth[..., None] + (1 - truth[..., None])
    band = edge_band(truth)
    both = (truth * alpha)[band]
    spill = alpha * np.abs(colour - fg).mean(axis=2)
    colour_error = np.abs(colour - fg).mean(axis=2)[band]
    return {
        "SAD": float(np.abs(alpha - truth).sum() / 1000),
        "MSE": float(((alpha - truth) ** 2).mean() * 1000),
        "Grad": gradient_error(alpha, truth),
        "Halo": float(spill[band].mean() * 255),
        "EdgeColour": float(np.abs(on_white - ideal).mean(axis=2)[band].mean() * 255),
        "FgError": float((both * colour_error).sum() / max(both.sum(), 1e-6) * 255),
        **{f"Halo[{part}]": float(spill[band & mask].mean() * 255) for part, mask in scene.parts.items()},
    }


def bench_profiles() -> dict[str, Profile]:
    chosen = {
        name: profile.model_copy(update={"crop": "none", "canvas": "none", "save_mask": True})
        for name, profile in BUILTIN_PROFILES.items()
    }
    chosen["portrait, no decontamination"] = chosen["portrait"].model_copy(update={"decontaminate": False})
    return chosen


def model_alpha(engine: MattingEngine, path: Path) -> np.ndarray:
    """The model's α for ``path``, from the same proxy the pipeline would decode."""
    reader = open_image(path, max_megapixels=50)
    side = proxy_side(*reader.info.oriented_size, engine.size)
    return engine.predict([prepare(reader.proxy(side), engine.size)])[0]


def build_scenes(engine: MattingEngine, synthetic: int, real: bool, tmp: Path) -> list[Scene]:
    scenes = [synthetic_scene(seed) for seed in range(synthetic)]
    if real:
        for i, name in enumerate(REAL_PHOTOS):
            photo = tmp / f"{name}.png"
            Image.fromarray(getattr(skimage.data, name)()[..., :3]).save(photo)
            scenes += real_scenes(name, model_alpha(engine, photo), backgrounds=(i + 1, i + 3))
    return scenes


def measure_scene(engine: MattingEngine, scene: Scene, tmp: Path) -> dict[str, dict[str, float]]:
    source = tmp / f"{scene.name}.png"
    Image.fromarray(scene.composite()).save(source)
    alpha = model_alpha(engine, source)
    rows = {}
    for name, profile in bench_profiles().items():
        result = cut_out(
            open_image(source, max_megapixels=50),
            alpha,
            Destination.at(tmp / f"{scene.name}-out.png"),
            profile,
        )
        pixels = np.asarray(Image.open(result.output)).astype(np.float32) / 255.0
        mask = np.asarray(Image.open(mask_path_for(result.output)).convert("L")).astype(np.float32) / 255.0
        rows[name] = metrics(pixels[..., :3], mask, scene, not profile.transparent)
        rows[name]["confidence"] = result.confidence
    return rows


def summarise(per_scene: dict[str, dict[str, dict[str, float]]], names: list[str]) -> dict[str, Any]:
    first = per_scene[names[0]]
    keys = [k for k in (*KEYS, *PARTS, "confidence") if k in first["raw"]]
    mean = {p: {k: float(np.mean([per_scene[s][p][k] for s in names])) for k in keys} for p in first}
    for row in mean.values():
        for key in (*VERSUS_RAW, *PARTS):
            if key in row:
                row[f"{key} vs raw %"] = round(100 * (row[key] / mean["raw"][key] - 1), 1)
    return mean


def print_table(title: str, summary: dict[str, Any], columns: tuple[str, ...]) -> None:
    print(f"\n{title}\n\n| profile | " + " | ".join(columns) + " |\n|" + "---|" * (len(columns) + 1))
    for name, row in summary.items():
        cells = (f"{row[c]:+.1f} %" if c.endswith("%") else f"{row[c]:.3f}" for c in columns)
        print(f"| {name} | " + " | ".join(cells) + " |")


def print_confidence(per_scene: dict[str, dict[str, dict[str, float]]]) -> None:
    """Does the score that routes files to review follow the cut's real error? (model's α, as ``raw``)"""
    print("\nconfidence against the cut's error (raw)\n")
    print("| scene | confidence | SAD | MSE |\n|---|---|---|---|")
    for name, rows in sorted(per_scene.items(), key=lambda item: item[1]["raw"]["confidence"]):
        raw = rows["raw"]
        print(f"| {name} | {raw['confidence']:.3f} | {raw['SAD']:.2f} | {raw['MSE']:.1f} |")


LARGE_KEYS = ("MSE[band]", "MSE[subject edge]", "MSE[strands]", "MSE[veil]", "Grad", "IoU", "haze")


def large_profiles(quick: bool, only: Sequence[str] = ()) -> dict[str, Profile]:
    """Every built-in profile (α only: no colour work, no crop) with detail none and crops.

    ``only``: just these profiles (no ``raw`` and no unguided variant unless named).
    """
    names = tuple(only) or (("raw", "portrait") if quick else tuple(BUILTIN_PROFILES))
    chosen: dict[str, Profile] = {}
    for name in names:
        base = BUILTIN_PROFILES[name].model_copy(
            update={
                "crop": "none",
                "canvas": "none",
                "save_mask": True,
                "background": "transparent",
                "decontaminate": False,
                "output_format": "png",
                "shadow": None,
            }
        )
        chosen[f"{name}, none"] = base.model_copy(update={"detail": "none"})
        if name != "raw":  # raw stays the model's own output
            chosen[f"{name}, crops"] = base.model_copy(update={"detail": "crops"})
        if name == "portrait" and not only:
            unguided = {"detail": "crops", "refine": "none"}
            chosen["portrait, crops, no guided"] = base.model_copy(update=unguided)
    return chosen


def large_metrics(alpha: np.ndarray, scene: Scene) -> dict[str, float]:
    truth = scene.alpha
    band = edge_band(truth)
    error = (alpha - truth) ** 2
    parts = {"subject edge": scene.parts["body edge"], **{p: scene.parts[p] for p in ("strands", "veil")}}
    reach = max(3, round(0.02 * max(truth.shape)))
    near = cv2.dilate((truth > 0).astype(np.uint8), np.ones((2 * reach + 1,) * 2, np.uint8)).astype(bool)
    ring = near & (truth == 0)
    subject, found = truth > 0.5, alpha > 0.5
    return {
        "MSE[band]": float(error[band].mean() * 1000),
        **{f"MSE[{name}]": float(error[band & mask].mean() * 1000) for name, mask in parts.items()},
        "Grad": gradient_error(alpha, truth),
        "IoU": float((subject & found).sum() / max(1, (subject | found).sum())),
        "haze": float(alpha[ring].mean() * 1000),
    }


def measure_large(
    engine: MattingEngine, scene: Scene, tmp: Path, quick: bool, only: Sequence[str] = ()
) -> dict[str, dict[str, float]]:
    source = tmp / f"{scene.name}.png"
    Image.fromarray(scene.composite()).save(source, compress_level=1)
    alpha = model_alpha(engine, source)
    rows = {}
    for name, profile in large_profiles(quick, only).items():
        started = time.perf_counter()
        reader = open_image(source, max_megapixels=120)
        target = Destination.at(tmp / f"{scene.name}-out.png")
        result: CutoutResult = cut_out(reader, alpha, target, profile, engine=engine)
        seconds = time.perf_counter() - started
        mask = np.asarray(Image.open(mask_path_for(result.output)).convert("L")).astype(np.float32) / 255.0
        rows[name] = large_metrics(mask, scene)
        rows[name].update(
            seconds=seconds, crops=result.crops[0], rejected=result.crops[1], confidence=result.confidence
        )
        print(f"{scene.name} {name}: " + ", ".join(f"{k} {v:.4g}" for k, v in rows[name].items()), flush=True)
    return rows


def large_main(
    size: tuple[int, int],
    quick: bool,
    seeds: int,
    backdrops: Sequence[str] = LARGE_BACKDROPS,
    only: Sequence[str] = (),
) -> None:
    """Run the large scenes; a run limited to some backdrops or profiles prints, but saves nothing
    (bench/results/quality_large.json stays the full harness's)."""
    full = tuple(backdrops) == LARGE_BACKDROPS and not only
    engine = load_engine(None, "auto", 1024)
    per_scene: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for backdrop in backdrops:
            for seed in range(seeds):
                scene = large_scene(seed, backdrop, size)
                per_scene[scene.name] = measure_large(engine, scene, Path(tmp), quick, only)
                del scene
                if full:  # saved after every scene: a run this slow (tens of minutes) keeps what it has
                    RESULTS.mkdir(exist_ok=True)
                    partial = {"size": size, "per_scene": per_scene, "complete": False}
                    (RESULTS / "quality_large.json").write_text(json.dumps(partial, indent=1) + "\n")
    summary: dict[str, Any] = {}
    for backdrop in backdrops:
        names = [n for n in per_scene if n.startswith(f"{backdrop}-")]
        profiles = per_scene[names[0]]
        summary[backdrop] = {
            p: {k: float(np.mean([per_scene[n][p][k] for n in names])) for k in profiles[p]} for p in profiles
        }
        columns = (*LARGE_KEYS, "crops", "rejected", "seconds")
        title = f"{backdrop} backdrop, {size[0]}x{size[1]}, {len(names)} scene(s), model at 1024"
        print_table(title, summary[backdrop], columns)
    if not full:
        print(json.dumps({"size": size, "summary": summary}, indent=1))
        return
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "quality_large.json").write_text(
        json.dumps({"size": size, "summary": summary, "per_scene": per_scene}, indent=1) + "\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic", type=int, default=5, help="number of synthetic scenes")
    parser.add_argument("--no-real", action="store_true", help="skip the closed-form real-photo scenes")
    parser.add_argument("--large", action="store_true", help="the ≥ 12 MP scenes: detail none against crops")
    parser.add_argument("--size", default="4000x3000", help="--large scenes' size, WxH")
    parser.add_argument("--seeds", type=int, default=1, help="--large scenes per backdrop")
    parser.add_argument("--quick", action="store_true", help="--large: raw and portrait only")
    parser.add_argument(
        "--backdrops",
        default=",".join(LARGE_BACKDROPS),
        help="--large: comma-separated backdrops (a partial run saves no results)",
    )
    parser.add_argument(
        "--profiles",
        default="",
        help="--large: comma-separated profiles only (a partial run saves nothing)",
    )
    args = parser.parse_args()
    if args.large:
        width, height = map(int, args.size.split("x"))
        backdrops = tuple(b for b in args.backdrops.split(",") if b)
        only = tuple(p for p in args.profiles.split(",") if p)
        unknown = (set(backdrops) - set(LARGE_BACKDROPS)) | (set(only) - set(BUILTIN_PROFILES))
        if unknown:
            parser.error(f"unknown backdrop or profile: {', '.join(sorted(unknown))}")
        large_main((width, height), args.quick, args.seeds, backdrops, only)
        return
    engine = load_engine(None, "auto", 1024)
    with tempfile.TemporaryDirectory() as tmp:
        scenes = build_scenes(engine, args.synthetic, not args.no_real, Path(tmp))
        per_scene = {scene.name: measure_scene(engine, scene, Path(tmp)) for scene in scenes}
    groups = {
        kind: [s.name for s in scenes if s.kind == kind]
        for kind in ("synthetic", "real")
        if any(s.kind == kind for s in scenes)
    }
    report = {kind: summarise(per_scene, names) for kind, names in groups.items()}
    main_columns = (*KEYS, "confidence", *(f"{k} vs raw %" for k in VERSUS_RAW))
    for kind, names in groups.items():
        title = f"{kind}: {len(names)} scenes, model at 1024, mean over scenes"
        print_table(title, report[kind], main_columns)
    if "synthetic" in report:
        print_table(
            "synthetic, Halo by part", report["synthetic"], (*PARTS, *(f"{k} vs raw %" for k in PARTS))
        )
    print_confidence(per_scene)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "quality.json").write_text(
        json.dumps({"summary": report, "per_scene": per_scene}, indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
