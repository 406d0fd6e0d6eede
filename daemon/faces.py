"""Offline face detection for ID photos: scikit-image's LBP frontal-face cascade.

Chosen by measurement (see the report on issue 6): opencv-python-headless 5.0 has no
``CascadeClassifier`` and its ``FaceDetectorYN`` needs a model file no package ships;
scikit-image ships ``lbp_frontal_face_cascade.xml`` and finds the face of
``skimage.data.astronaut`` in 0.2 s on 512 px (2 CPU cores), with a few small false
positives that :func:`pick_face` outvotes (true faces are found at several
overlapping scales, stray hits once).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cv2
import numpy as np

from daemon.errors import NoFaceFound

#: Faces are looked for on a grey copy whose long side is at most this.
DETECT_SIDE = 640


@dataclass(frozen=True)
class Face:
    """A face box in the pixels of the image given to :func:`find_face`."""

    x: float
    y: float
    width: float
    height: float

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.width / 2, self.y + self.height / 2

    def scaled(self, factor: float) -> Face:
        return Face(self.x * factor, self.y * factor, self.width * factor, self.height * factor)


@lru_cache(maxsize=1)
def _detector() -> Any:
    # Imported here: only the id_photo profile needs scikit-image at run time.
    import skimage.data
    from skimage.feature import Cascade

    return Cascade(skimage.data.lbp_frontal_face_cascade_filename())


def _overlap(a: Face, b: Face) -> float:
    x = max(0.0, min(a.x + a.width, b.x + b.width) - max(a.x, b.x))
    y = max(0.0, min(a.y + a.height, b.y + b.height) - max(a.y, b.y))
    inter = x * y
    return inter / (a.width * a.height + b.width * b.height - inter)


def pick_face(candidates: list[Face]) -> Face:
    """The box with most overlapping detections (ties: the larger), averaged with those neighbours."""

    def votes(face: Face) -> list[Face]:
        return [other for other in candidates if _overlap(face, other) > 0.3]

    best = max(candidates, key=lambda f: (len(votes(f)), f.width))
    group = votes(best)
    return Face(*(float(np.mean([getattr(f, k) for f in group])) for k in ("x", "y", "width", "height")))


def find_face(rgb: np.ndarray) -> Face:
    """The main face in an RGB ``uint8`` image, in its pixels; :class:`NoFaceFound` if there is none."""
    h, w = rgb.shape[:2]
    factor = min(1.0, DETECT_SIDE / max(h, w))
    grey: np.ndarray = rgb[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) / 255.0
    if factor < 1.0:
        grey = cv2.resize(grey, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_AREA)
    side = min(grey.shape)
    found = _detector().detect_multi_scale(
        img=grey, scale_factor=1.2, step_ratio=1, min_size=(max(24, side // 12),) * 2, max_size=(side, side)
    )
    if not found:
        raise NoFaceFound("no face found: id_photo needs one frontal face")
    faces = [Face(d["c"], d["r"], d["width"], d["height"]) for d in found]
    return pick_face(faces).scaled(1.0 / factor)
