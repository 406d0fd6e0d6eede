"""Face detectors for the id_photo profile, measured offline (issue 6).

    .venv/bin/python bench/faces.py [--haar-python PYTHON]     (make bench-faces)

opencv 5 has no ``CascadeClassifier``, so the opencv side runs in a second interpreter with
opencv 4, its own venv (``make bench-faces`` builds ``bench/.venv-cv4``; the project's venv
stays on opencv 5).

matplotlib there only supplies its sample photo ``grace_hopper.jpg`` (a second real face).
This script re-runs itself there with ``--worker``, which needs only cv2 4.x and numpy.

Detectors, all with the smallest face = max(24, short side // 12) of the image they scan:

- ``lbp-votes@640``: :func:`daemon.finish.faces.find_face`'s detection (scikit-image's LBP
  cascade on a grey copy of at most 640 px, scale_factor 1.2, step_ratio 1, windows left
  unmerged for pick_face to vote on), run through the daemon's own ``detect_windows``;
  ``lbp-skimage@640`` / ``@1024``: the same cascade with scikit-image's own merge (what
  the daemon did before this measurement);
- ``haar-default@640`` / ``@1024``: opencv 4's ``haarcascade_frontalface_default.xml``,
  scaleFactor 1.1, minNeighbors 5; ``haar-alt2@640``: ``haarcascade_frontalface_alt2.xml``;
- ``lbp-opencv4@640``: scikit-image's LBP file (it is opencv's ``lbpcascade_frontalface``)
  in opencv 4's engine, with the Haar parameters.

Test set, every image 1024 px on its long side (the working size):

- positives: ``skimage.data.astronaut`` and ``grace_hopper.jpg`` with face boxes set by
  hand (hairline to chin, cheek to cheek), each warped onto a 768×1024 canvas (the box
  follows the warp): face widths 60–600 px, rotations ±5°/±10°, brightness, contrast and
  gamma, JPEG q=50, greyscale, the head cut out onto other backgrounds, mirrored; apart,
  a harder "stress" group (±15°/±20°, very dark, side-lit, noise, blur, JPEG q=15); and the
  100 faces of ``skimage.data.lfw_subset`` (25 px crops upscaled to 140 px: many people,
  little detail) pasted on backgrounds, their box the tile;
- negatives: scikit-image photos without people (chelsea the cat in several variants) and
  the composites of the PSD/PSB corpus (psd-tools' test graphics: no photo of a person,
  only cartoon faces: a bunny, a smiley).

Per detector: positives with any detection, with the largest detection's centre inside the
true box, with :func:`daemon.finish.faces.pick_face`'s choice inside it (what id_photo crops on),
negatives with any detection, median ms per image (one thread; opencv also with its default
threads). Results: ``bench/results/faces.json``, Markdown tables on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from _faces_set import (
    FACE_BOXES,
    SCALES,
    WORK_SIDE,
    Box,
    Sample,
    backgrounds,
    grace_hopper,
    lfw_samples,
    negative_samples,
    photo_variants,
)

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
CORPUS = REPO.parent / "shared" / "corpus" / "psd"
#: name: (scan side, unmerged detections + vote)
LBP_DETECTORS = {
    "lbp-skimage@640": (640, False),
    "lbp-skimage@1024": (1024, False),
    "lbp-votes@640": (640, True),
}
CV4_DETECTORS = {
    "haar-default@640": ("haarcascade_frontalface_default.xml", 640),
    "haar-default@1024": ("haarcascade_frontalface_default.xml", 1024),
    "haar-alt2@640": ("haarcascade_frontalface_alt2.xml", 640),
    "lbp-opencv4@640": ("", 640),  # "": scikit-image's LBP file, path sent by the main process
}
Boxes = list[list[float]]


def min_face(shape: tuple[int, ...]) -> int:
    return max(24, min(shape[:2]) // 12)


# ---------------------------------------------------------------- opencv 4 worker: cv2 and numpy only


def run_worker(manifest_path: Path, out_path: Path) -> None:
    if not hasattr(cv2, "CascadeClassifier"):
        raise SystemExit(f"--worker needs opencv 4 (CascadeClassifier); this is {cv2.__version__}")
    manifest = json.loads(manifest_path.read_text())
    cascades = {}
    for name, (file, side) in CV4_DETECTORS.items():
        # The project's venv has opencv 5's stubs, which know no cv2.data; this runs under opencv 4.
        path = cv2.data.haarcascades + file if file else manifest["lbp_xml"]  # type: ignore[attr-defined]
        cascades[name] = (cv2.CascadeClassifier(path), side)
        if cascades[name][0].empty():
            raise SystemExit(f"cannot load {path}")

    def detect(name: str, rgb: np.ndarray) -> Boxes:
        cascade, side = cascades[name]
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        f = min(1.0, side / max(grey.shape))
        if f < 1.0:
            size = (round(grey.shape[1] * f), round(grey.shape[0] * f))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        m = min_face(grey.shape)
        found = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(m, m))
        return [[x / f, y / f, (x + w) / f, (y + h) / f] for x, y, w, h in np.asarray(found).reshape(-1, 4)]

    def timed(name: str, rgb: np.ndarray, threads: int) -> tuple[Boxes, float]:
        cv2.setNumThreads(threads)
        start = time.perf_counter()
        boxes = detect(name, rgb)
        return boxes, (time.perf_counter() - start) * 1000

    default_threads = cv2.getNumThreads()
    results: dict[str, dict[str, Any]] = {}
    for image in manifest["images"]:
        rgb = np.load(image["file"])
        results[image["name"]] = {}
        for name in cascades:
            boxes, ms = timed(name, rgb, 1)
            ms_default = timed(name, rgb, default_threads)[1]
            results[image["name"]][name] = {"boxes": boxes, "ms": ms, "ms_default_threads": ms_default}
    versions = {"opencv": cv2.__version__, "default_threads": default_threads}
    out_path.write_text(json.dumps({"versions": versions, "results": results}))


# ---------------------------------------------------------------- detection and scoring


def lbp_detect(rgb: np.ndarray, side: int, vote: bool = False) -> Boxes:
    """The LBP cascade as :mod:`daemon.finish.faces` runs it, at ``side``: every box it finds.

    Without ``vote``, scikit-image's own merge (one mean box per group of 4 windows: what the
    daemon did before this measurement, when pick_face's vote came down to "the largest box
    wins"). With ``vote``, the raw windows and pick_face's vote with MIN_VOTES: what
    :func:`daemon.finish.faces.find_face` does now.
    """
    from daemon.finish.faces import MIN_VOTES, detect_windows, pick_face

    faces = detect_windows(rgb, side, merge=not vote)
    if vote:
        chosen = pick_face(faces, MIN_VOTES)
        faces = [] if chosen is None else [chosen]
    return [[f.x, f.y, f.x + f.width, f.y + f.height] for f in faces]


def picked(boxes: Boxes) -> list[float] | None:
    from daemon.finish.faces import Face, pick_face

    face = pick_face([Face(x0, y0, x1 - x0, y1 - y0) for x0, y0, x1, y1 in boxes])
    return None if face is None else [face.x, face.y, face.x + face.width, face.y + face.height]


def centre_inside(box: list[float] | None, truth: Box) -> bool:
    return (
        box is not None
        and truth[0] <= (box[0] + box[2]) / 2 <= truth[2]
        and truth[1] <= (box[1] + box[3]) / 2 <= truth[3]
    )


def score(sample: Sample, boxes: Boxes, ms: float, ms_default_threads: float | None) -> dict[str, Any]:
    record: dict[str, Any] = {"n": len(boxes), "ms": round(ms, 1)}
    if ms_default_threads is not None:
        record["ms_default_threads"] = round(ms_default_threads, 1)
    record["boxes"] = [[round(v) for v in b] for b in boxes]
    if sample["kind"] == "positive":
        largest = max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1])) if boxes else None
        record["largest_in_box"] = centre_inside(largest, sample["box"])
        record["picked_in_box"] = centre_inside(picked(boxes), sample["box"])
        record["stray"] = sum(not centre_inside(b, sample["box"]) for b in boxes)
    return record


def run_lbp(samples: list[Sample], records: dict[str, dict[str, Any]]) -> None:
    for sample in samples:
        for name, (side, vote) in LBP_DETECTORS.items():
            start = time.perf_counter()
            boxes = lbp_detect(sample["image"], side, vote)
            records[sample["name"]][name] = score(sample, boxes, (time.perf_counter() - start) * 1000, None)


def run_cv4(
    python: str, samples: list[Sample], records: dict[str, dict[str, Any]], work: Path
) -> dict[str, Any]:
    import skimage.data

    images = []
    for i, sample in enumerate(samples):
        np.save(work / f"{i}.npy", sample["image"])
        images.append({"name": sample["name"], "file": str(work / f"{i}.npy")})
    # scikit-image's copy of opencv's LBP file misspells <featureParams>: scikit-image's parser
    # never reads it, opencv 4 refuses the file. Same model otherwise.
    lbp_xml = Path(skimage.data.lbp_frontal_face_cascade_filename()).read_text()
    (work / "lbp.xml").write_text(lbp_xml.replace("featuhreParams", "featureParams"))
    manifest = {"images": images, "lbp_xml": str(work / "lbp.xml")}
    (work / "manifest.json").write_text(json.dumps(manifest))
    subprocess.run(
        [python, __file__, "--worker", str(work / "manifest.json"), str(work / "cv4.json")], check=True
    )
    answer: dict[str, Any] = json.loads((work / "cv4.json").read_text())
    for sample in samples:
        for name, r in answer["results"][sample["name"]].items():
            records[sample["name"]][name] = score(sample, r["boxes"], r["ms"], r["ms_default_threads"])
    return dict(answer["versions"])


# ---------------------------------------------------------------- report


def rate(flags: list[bool]) -> str:
    return f"{sum(flags)}/{len(flags)}"


def summarise(samples: list[Sample], records: dict[str, dict[str, Any]], detector: str) -> dict[str, Any]:
    def get(key: str, keep: Callable[[Sample], bool]) -> list[Any]:
        return [records[s["name"]][detector][key] for s in samples if keep(s)]

    def photo(s: Sample) -> bool:
        return s["kind"] == "positive" and s["group"] not in ("lfw", "stress")

    ms = get("ms", lambda s: True)
    ms_default = [records[s["name"]][detector].get("ms_default_threads") for s in samples]
    return {
        "photo found": rate([n > 0 for n in get("n", photo)]),
        "photo largest in box": rate(get("largest_in_box", photo)),
        "photo picked in box": rate(get("picked_in_box", photo)),
        "stress largest in box": rate(get("largest_in_box", lambda s: s["group"] == "stress")),
        "lfw largest in box": rate(get("largest_in_box", lambda s: s["group"] == "lfw")),
        "positives with stray boxes": rate([n > 0 for n in get("stray", lambda s: s["kind"] == "positive")]),
        "FP skimage photos": rate([n > 0 for n in get("n", lambda s: s["group"] == "skimage-photo")]),
        "FP corpus": rate([n > 0 for n in get("n", lambda s: s["group"] == "corpus")]),
        "FP boxes": sum(get("n", lambda s: s["kind"] == "negative")),
        "median ms": round(statistics.median(ms), 1),
        "p90 ms": round(float(np.percentile(ms, 90)), 1),
        "median ms, default threads": round(statistics.median(ms_default), 1)
        if None not in ms_default
        else "-",
    }


def breakdowns(samples: list[Sample], records: dict[str, dict[str, Any]], detector: str) -> dict[str, Any]:
    def hits(group: str, suffix: str = "") -> str:
        chosen = [s for s in samples if s["group"] == group and s["name"].endswith(suffix)]
        return rate([records[s["name"]][detector]["largest_in_box"] for s in chosen])

    positives = [s for s in samples if s["kind"] == "positive"]
    groups = list(dict.fromkeys(s["group"] for s in positives))
    return {
        "by_group": {g: hits(g) for g in groups},
        "by_scale": {str(w): hits("scale", f"/scale-{w}") for w in SCALES},
        "negatives_hit": [
            s["name"] for s in samples if s["kind"] == "negative" and records[s["name"]][detector]["n"]
        ],
        "photo_misses_picked": [
            s["name"]
            for s in positives
            if s["group"] != "lfw" and not records[s["name"]][detector]["picked_in_box"]
        ],
    }


def markdown(rows: dict[str, dict[str, Any]], first: str) -> str:
    columns = list(next(iter(rows.values())))
    lines = [f"| {first} | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    return "\n".join(
        lines
        + [f"| {name} | " + " | ".join(str(v) for v in row.values()) + " |" for name, row in rows.items()]
    )


def dump(report: dict[str, Any]) -> str:
    """Indented JSON, but one line per image: the file stays readable and small."""
    head = json.dumps({k: v for k, v in report.items() if k != "images"}, indent=1, default=float)
    rows = ",\n  ".join(json.dumps(row, default=float) for row in report["images"])
    return f'{head[:-2]},\n "images": [\n  {rows}\n ]\n}}\n'


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--haar-python",
        default=str(REPO / "bench" / ".venv-cv4" / "bin" / "python"),
        help="an interpreter with opencv 4",
    )
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--out", type=Path, default=RESULTS / "faces.json")
    parser.add_argument("--worker", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return run_worker(*args.worker)
    if not Path(args.haar_python).exists():
        raise SystemExit(f"{args.haar_python} not found: make the opencv 4 venv first (see the docstring)")
    import skimage.data

    bgs = backgrounds()
    photos = {"astronaut": skimage.data.astronaut(), "grace_hopper": grace_hopper(args.haar_python)}
    samples = [
        v for name, photo in photos.items() for v in photo_variants(name, photo, FACE_BOXES[name], bgs)
    ]
    negatives, skipped = negative_samples(args.corpus)
    samples += lfw_samples(bgs) + negatives
    print(
        f"{len(samples)} images, {sum(s['kind'] == 'positive' for s in samples)} with a face", file=sys.stderr
    )

    records: dict[str, dict[str, Any]] = {s["name"]: {} for s in samples}
    run_lbp(samples, records)
    with tempfile.TemporaryDirectory() as work:
        cv4_versions = run_cv4(args.haar_python, samples, records, Path(work))
    detectors = [*LBP_DETECTORS, *CV4_DETECTORS]
    summary = {d: summarise(samples, records, d) for d in detectors}
    details = {d: breakdowns(samples, records, d) for d in detectors}
    report = {
        "environment": {
            "main_opencv": cv2.__version__,
            "scikit_image": version("scikit-image"),
            "psd_tools": version("psd-tools"),
            "worker": cv4_versions,
            "cpus": os.cpu_count(),
            "loadavg_at_end": os.getloadavg(),
            "working_side": WORK_SIDE,
        },
        "face_boxes": FACE_BOXES,
        "counts": {
            g: sum(s["group"] == g for s in samples) for g in dict.fromkeys(s["group"] for s in samples)
        },
        "corpus_used": [s["name"] for s in samples if s["group"] == "corpus"],
        "corpus_skipped": skipped,
        "summary": summary,
        "details": details,
        "images": [{"name": s["name"], "box": s.get("box"), **records[s["name"]]} for s in samples],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dump(report))
    print(
        markdown(summary, "detector"),
        markdown({d: v["by_group"] for d, v in details.items()}, "in box"),
        sep="\n\n",
    )
    print("", markdown({d: v["by_scale"] for d, v in details.items()}, "face width px"), sep="\n\n")
    print(
        "\nnegatives with a detection:",
        json.dumps({d: v["negatives_hit"] for d, v in details.items()}, indent=1),
        "\nface photos where pick_face's choice misses the face:",
        json.dumps({d: v["photo_misses_picked"] for d, v in details.items()}, indent=1),
    )
    print(f"\nwritten {args.out}")


if __name__ == "__main__":
    main()
