"""Before/after pictures for the README's profile table (``docs/examples/*.jpg``).

    .venv/bin/python bench/examples.py        (needs the bench extra: pymatting)

Every picture is ``input | output`` from the real model at 1024 and the real finishing
code (:func:`daemon.cutout.cut_out`, what ``hotmatte process`` runs). Transparent outputs
are shown on a light checkerboard. The halo picture puts the astronaut, matted offline
(:mod:`_scenes`), on a dark starfield and compares ``raw`` and ``portrait`` on white,
zoomed into the hair, where old-background spill shows.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np
import skimage.data
from _scenes import background, closed_form_truth
from PIL import Image
from quality import model_alpha

from daemon.cutout import cut_out
from daemon.io.detect import open_image
from daemon.matting.engine import MattingEngine, load_engine
from daemon.outputs import Destination
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
    return cut_out(open_image(source, max_megapixels=50), alpha, Destination.at(out), profile).output


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


def main() -> None:
    engine = load_engine(None, "auto", 1024)
    with tempfile.TemporaryDirectory() as tmp:
        profile_examples(engine, Path(tmp))
        halo_example(engine, Path(tmp))


if __name__ == "__main__":
    main()
