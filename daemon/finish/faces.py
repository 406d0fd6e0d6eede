"""Offline face detection for ID photos: scikit-image's LBP frontal-face cascade.

Chosen by measurement (``bench/faces.py``, results in ``bench/results/faces.json``):
opencv-python-headless 5.0 has no ``CascadeClassifier`` and its ``FaceDetectorYN`` needs a
model file no package ships. On 92 variants of two real portraits (faces 60–600 px wide,
±10° rotations, lighting, JPEG 50, other backgrounds), 100 LFW faces and 132 photos and
graphics without a face, this detector with the voting below found 91/92 and 97/100 faces
with 2 false positives, in about 0.1 s per image on 2 cores. opencv 4.14's best Haar
cascade (alt2) did 92/92 and 98/100 with 2 false positives in half the time: not enough
of a gain to pin the whole project to opencv < 5 (a venv holds one ``cv2``).

scikit-image's own merge returns one averaged box per group of windows, which would leave
nothing to vote on; so its windows are kept unmerged, :func:`pick_face` takes the box most
of them overlap, and fewer than :data:`MIN_VOTES` such windows is no face (stray hits on a
cat or a printed page come from one or two windows, faces from many).
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
#: Overlapping raw detections a face needs; measured: 4 drops every stray hit, keeps the faces.
MIN_VOTES = 4


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


def pick_face(candidates: list[Face], min_votes: int = 1) -> Face | None:
    """The box with most overlapping detections (ties: the larger), averaged with those neighbours.

    ``None`` when even the best box has fewer than ``min_votes`` detections overlapping it.
    """

    def votes(face: Face) -> list[Face]:
        return [other for other in candidates if _overlap(face, other) > 0.3]

    if not candidates:
        return None
    best = max(candidates, key=lambda f: (len(votes(f)), f.width))
    group = votes(best)
    if len(group) < min_votes:
        return None
    return Face(*(float(np.mean([getattr(f, k) for f in group])) for k in ("x", "y", "width", "height")))


def detect_windows(rgb: np.ndarray, side: int = DETECT_SIDE, merge: bool = False) -> list[Face]:
    """Every cascade window that fires on ``rgb`` (RGB ``uint8``), searched at ``side`` px, in its pixels.

    ``merge``: scikit-image's own grouping instead (one mean box per group of 4 windows), which
    leaves nothing to vote on; ``bench/faces.py`` measures it against the unmerged windows.
    """
    h, w = rgb.shape[:2]
    factor = min(1.0, side / max(h, w))
    grey: np.ndarray = rgb[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32) / 255.0
    if factor < 1.0:
        grey = cv2.resize(grey, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_AREA)
    shorter = min(grey.shape)
    # min_neighbor_number 1 with an unreachable intersection score keeps every window apart.
    unmerged = {} if merge else {"min_neighbor_number": 1, "intersection_score_threshold": 1.01}
    found = _detector().detect_multi_scale(
        img=grey,
        scale_factor=1.2,
        step_ratio=1,
        min_size=(max(24, shorter // 12),) * 2,
        max_size=(shorter, shorter),
        **unmerged,
    )
    return [Face(d["c"], d["r"], d["width"], d["height"]).scaled(1.0 / factor) for d in found]


def find_face(rgb: np.ndarray) -> Face:
    """The main face in an RGB ``uint8`` image, in its pixels; :class:`NoFaceFound` if there is none."""
    face = pick_face(detect_windows(rgb), MIN_VOTES)
    if face is None:
        raise NoFaceFound("no face found: id_photo needs one frontal face")
    return face
