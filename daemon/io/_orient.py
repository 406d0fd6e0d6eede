"""EXIF orientation (1–8) applied to whole images and to bands of the oriented image.

Conventions follow the EXIF/TIFF Orientation tag, as Pillow's ``ImageOps.exif_transpose``
does: 2 mirrors left-right, 3 turns 180°, 4 mirrors top-bottom, 5 transposes, 6 turns
90° clockwise, 7 transverses, 8 turns 90° counter-clockwise.

A band of rows ``[y0, y1)`` of the *oriented* image comes from one rectangular window of
the *stored* image; :func:`stored_window` says which, and :func:`orient` turns that window
into the band. For 1–4 the window is a run of stored rows; for 5–8 it is a run of stored
columns spanning every stored row, which is why readers need column access for those.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

VALID_ORIENTATIONS = range(1, 9)
TRANSPOSING = frozenset({5, 6, 7, 8})


def normalise_orientation(value: object) -> int:
    """The tag value as 1–8; anything missing or out of range is treated as 1 (as viewers do)."""
    try:
        orientation = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 1
    return orientation if orientation in VALID_ORIENTATIONS else 1


def orient(stored: np.ndarray, orientation: int) -> np.ndarray:
    """The image (or window) as displayed. May return a view; callers copy when they keep it."""
    if orientation == 1:
        return stored
    if orientation == 2:
        return stored[:, ::-1]
    if orientation == 3:
        return stored[::-1, ::-1]
    if orientation == 4:
        return stored[::-1]
    if orientation == 5:
        return stored.swapaxes(0, 1)
    if orientation == 6:
        return np.rot90(stored, -1)
    if orientation == 7:
        return stored[::-1, ::-1].swapaxes(0, 1)
    if orientation == 8:
        return np.rot90(stored, 1)
    raise ValueError(f"orientation {orientation} is not 1-8")


#: OpenCV's own operation per orientation (flip code, rotation, transpose), for oriented_copy.
_CV2_ORIENT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: cv2.flip(a, 1),
    3: lambda a: cv2.rotate(a, cv2.ROTATE_180),
    4: lambda a: cv2.flip(a, 0),
    5: lambda a: cv2.transpose(a),
    6: lambda a: cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE),
    7: lambda a: cv2.transpose(cv2.rotate(a, cv2.ROTATE_180)),
    8: lambda a: cv2.rotate(a, cv2.ROTATE_90_COUNTERCLOCKWISE),
}


def oriented_copy(stored: np.ndarray, orientation: int) -> np.ndarray:
    """``orient(stored, orientation)`` as a C-contiguous array of its own (or ``stored`` if upright).

    OpenCV rotates and transposes in cache-sized blocks: numpy's copy of a rotated view walks
    memory column by column (0.085 s against 0.018 s for a 12 MP RGB image). Arrays OpenCV
    cannot take (more than 4 channels, other dtypes) go through numpy.
    """
    if orientation == 1:
        return np.ascontiguousarray(stored)
    view = orient(stored, orientation)  # checks the orientation
    channels = 1 if stored.ndim == 2 else stored.shape[2]
    if stored.ndim in (2, 3) and channels <= 4 and stored.dtype in (np.uint8, np.uint16, np.float32):
        turned = np.asarray(_CV2_ORIENT[orientation](np.ascontiguousarray(stored)))
        if turned.ndim == 2 and stored.ndim == 3:  # OpenCV drops a single channel's axis
            turned = turned[:, :, None]
        return turned
    return np.ascontiguousarray(view)


def oriented_shape(stored_height: int, stored_width: int, orientation: int) -> tuple[int, int]:
    """(height, width) as displayed."""
    if orientation in TRANSPOSING:
        return stored_width, stored_height
    return stored_height, stored_width


def stored_window(
    y0: int, y1: int, stored_height: int, stored_width: int, orientation: int
) -> tuple[int, int, int, int]:
    """Stored ``(row0, row1, col0, col1)`` holding oriented rows ``[y0, y1)``.

    ``orient(stored[row0:row1, col0:col1], orientation)`` is exactly that band.
    """
    if orientation in (1, 2):
        return y0, y1, 0, stored_width
    if orientation in (3, 4):
        return stored_height - y1, stored_height - y0, 0, stored_width
    if orientation in (5, 6):
        return 0, stored_height, y0, y1
    if orientation in (7, 8):
        return 0, stored_height, stored_width - y1, stored_width - y0
    raise ValueError(f"orientation {orientation} is not 1-8")
