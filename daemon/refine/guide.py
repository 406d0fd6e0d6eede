"""The guide image of refinement: a window's colours as float32 torch blocks in [0, 1].

Refinement reads colours only near the subject's edge (the guided filter's boxes, the
decontamination's soft boxes). Converting a whole 512-row window of a 24 MP photo to a
float CHW tensor is 300 MB of writes and a fifth of a second on the CPU, most of it for
blocks nobody reads, so :class:`WindowGuide` converts each block when it is asked for.
A whole-window tensor (what the accelerator gets, in one upload) serves the same role:
both are indexed as ``guide[:, rows, columns]``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch


class Guide(Protocol):
    """Anything indexed ``[:, rows, columns]`` into a 3×h×w float32 tensor in [0, 1]."""

    def __getitem__(self, key: tuple[slice, slice, slice], /) -> torch.Tensor: ...


def to_guide_tensor(pixels: np.ndarray, device: torch.device) -> torch.Tensor:
    """``pixels`` (H×W×C integers) as one 3×H×W float32 tensor on ``device``."""
    peak = float(np.iinfo(pixels.dtype).max)
    return torch.from_numpy(pixels[..., :3].astype(np.float32)).to(device).permute(2, 0, 1) / peak


class WindowGuide:
    """``pixels`` (H×W×C integers) converted block by block, equal to :func:`to_guide_tensor`'s slices."""

    def __init__(self, pixels: np.ndarray, device: torch.device) -> None:
        self._pixels = pixels
        self._device = device

    def __getitem__(self, key: tuple[slice, slice, slice], /) -> torch.Tensor:
        channels, rows, columns = key
        if channels != slice(None):
            raise IndexError("a guide is indexed [:, rows, columns]")
        return to_guide_tensor(self._pixels[rows, columns], self._device)


__all__ = ["Guide", "WindowGuide", "to_guide_tensor"]
