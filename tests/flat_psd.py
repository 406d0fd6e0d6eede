"""A flat Photoshop file (merged image only, no layers), written byte by byte from the spec.

Small and real: what Photoshop saves for a single-layer document with "Maximize Compatibility",
without needing the corpus (tests that must name a ``.psd`` beside a ``.jpg`` use it).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np


def write_flat_psd(path: Path, rgb: np.ndarray, *, psb: bool = False) -> Path:
    """``rgb`` (H×W×3 uint8) as an uncompressed RGB PSD (or PSB, the large-document variant)."""
    height, width, _ = rgb.shape
    version = 2 if psb else 1
    header = b"8BPS" + struct.pack(">H6xHIIHH", version, 3, height, width, 8, 3)  # 3 channels, RGB
    empty_sections = struct.pack(">II", 0, 0)  # colour mode data, image resources
    layers = struct.pack(">Q" if psb else ">I", 0)  # layer and mask information: none
    planes = np.ascontiguousarray(rgb.transpose(2, 0, 1)).tobytes()  # planar R, G, B
    path.write_bytes(header + empty_sections + layers + struct.pack(">H", 0) + planes)
    return path
