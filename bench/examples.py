"""Before/after pictures for the README's profile table (``docs/examples/*.jpg``).

    .venv/bin/python bench/examples.py        (needs the bench extra: pymatting)

Every picture is ``input | output`` from the real model at 1024 and the real finishing
code (:func:`daemon.finish.cutout.cut_out`, what ``hotmatte process`` runs). Transparent outputs
are shown on a light checkerboard. The halo picture puts the astronaut, matted offline
(:mod:`_scenes`), on a dark starfield and compares ``raw`` and ``portrait`` on white,
zoomed into the hair, where old-background spill shows. The detail picture cuts a 24 MP
synthetic subject (:func:`_scenes.large_scene`, studio backdrop) with ``portrait`` without and
with the crop pass, and shows a hair edge at 100 % (``--detail-only`` makes just that one).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np
import skimage.data
from _scenes import background, closed_form_truth, large_scene
from PIL import Image
from quality import model_alpha

from daemon.finish.cutout import cut_out
from daemon.finish.outputs import Destination
from daemon.io.detect import open_image
from daemon.matting.engine import MattingEngine, load_engine
from daemon.profiles import BUILTIN_PROFILES, Profile

OUT = Path(__file__).resolve().parents[1] / "docs" / "examples"
HEIGHT = 300


def checkerboard(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.where(((yy // 12 + xx // 12) % 2)[..., None] == 0, 235, 200).astype(np.float32)


def on_display(path: Path, backdrop: np.ndarray | None = None) -> np.ndarray:
    """The output as a viewer shows it: RGBA over a checkerboard (or ``backdrop``), RGB as is."""
    image = np.asarray(Image.open(path).convert("RGBA")).astype(np.float32)
    alpha = image[..., 3:] / 255.0
    under = checkerboard(*image.shape[:2]) if backdrop is None else backdrop
    return np.rint(image[..., :3] * alpha + under * (1 - alpha)).astype(np.uint8)


def fit(image: np.ndarray, height: int = HEIGHT) -> np.ndarray:
    w = round(image.shape[1] * height / image.shape[0])
    return cv2.resize(image, (w, height), interpolation=cv2.INTER_AREA)


def strip(*images: np.ndarray) -> np.ndarray:
    gap = np.full((HEIGHT, 8, 3), 255, np.uint8)
    parts: list[np.ndarray] = []
    for image in images:
        parts += [fit(image), gap]
    return np.hstack(parts[:-1])


def cut(engine: MattingEngine, source: Path, profile: Profile, out: Path) -> Path:
    alpha = model_alpha(engine, source)
    reader = open_image(source, max_megapixels=50)
    return cut_out(reader, alpha, Destination.at(out), profile, engine=engine).output


def save(name: str, image: np.ndarray) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(OUT / f"{name}.jpg", quality=85, optimize=True)
    print(f"wrote {OUT / name}.jpg")


def profile_examples(engine: MattingEngine, tmp: Path) -> None:
    shots = {
        "portrait": "astronaut",
        "product": "coffee",
        "id_photo": "astronaut",
        "complex_background": "chelsea",
        "raw": "astronaut",
    }
    for profile_name, photo_name in shots.items():
        photo = getattr(skimage.data, photo_name)()[..., :3]
        source = tmp / f"{photo_name}.png"
        Image.fromarray(photo).save(source)
        profile = BUILTIN_PROFILES[profile_name]
        output = cut(engine, source, profile, tmp / f"{profile_name}.{profile.output_format}")
        save(profile_name, strip(photo, on_display(output)))


def halo_example(engine: MattingEngine, tmp: Path) -> None:
    photo = skimage.data.astronaut()
    source = tmp / "astronaut.png"
    Image.fromarray(photo).save(source)
    fg, alpha = closed_form_truth(photo, model_alpha(engine, source))
    stars = background(1, *alpha.shape[::-1])
    scene = np.rint((alpha[..., None] * fg + (1 - alpha[..., None]) * stars) * 255).astype(np.uint8)
    dark = tmp / "astronaut-on-stars.png"
    Image.fromarray(scene).save(dark)
    white = np.full((*alpha.shape, 3), 255.0, np.float32)
    shown = [scene]
    for name in ("raw", "portrait"):
        output = cut(engine, dark, BUILTIN_PROFILES[name], tmp / f"halo-{name}.png")
        shown.append(on_display(output, white))
    hair = (slice(10, 130), slice(150, 290))
    zoomed = [cv2.resize(image[hair], None, fx=3, fy=3, interpolation=cv2.INTER_NEAREST) for image in shown]
    save("halo", strip(*zoomed))


def detail_example(engine: MattingEngine, tmp: Path, size: tuple[int, int] = (6000, 4000)) -> None:
    """A hair edge of a 24 MP file at 100 %: the photo, ``portrait`` with ``detail: none``, with crops."""
    scene = large_scene(0, "studio", size)
    photo = scene.composite()
    source = tmp / "studio-24mp.png"
    Image.fromarray(photo).save(source, compress_level=1)
    # The window (HEIGHT rows, 1.5 × HEIGHT columns) on the body's edge with the most strands: the
    # body is what stays opaque once the strands (≤ 4 px wide) are eroded away.
    h, w = HEIGHT, HEIGHT * 3 // 2
    body = cv2.erode((scene.alpha >= 0.99).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(np.float32)
    straddles = np.abs(cv2.blur(body, (w, h)) - 0.5) < 0.15
    density = cv2.blur(scene.parts["strands"].astype(np.float32), (w, h)) * straddles
    y, x = np.unravel_index(int(np.argmax(density)), density.shape)
    top, left = int(np.clip(y - h // 2, 0, size[1] - h)), int(np.clip(x - w // 2, 0, size[0] - w))
    window = (slice(top, top + h), slice(left, left + w))
    white = np.full((h, w, 3), 255.0, np.float32)
    shown = [photo[window]]
    del scene, density, body, straddles
    for detail in ("none", "crops"):
        profile = BUILTIN_PROFILES["portrait"].model_copy(update={"detail": detail})
        output = cut(engine, source, profile, tmp / f"detail-{detail}.png")
        rgba = np.asarray(Image.open(output))[window]
        Image.fromarray(rgba).save(tmp / "window.png")
        shown.append(on_display(tmp / "window.png", white))
    save("detail", strip(*shown))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detail-only", action="store_true", help="only the crop pass's picture")
    args = parser.parse_args()
    engine = load_engine(None, "auto", 1024)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.detail_only:
            profile_examples(engine, Path(tmp))
            halo_example(engine, Path(tmp))
        detail_example(engine, Path(tmp))


if __name__ == "__main__":
    main()
