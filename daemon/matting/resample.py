"""Resampling shared by the U-blocks and the network."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def upsample_like(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinear with half-pixel centres, to the skip tensor's size (as the ONNX Resize nodes)."""
    return F.interpolate(x, size=like.shape[2:], mode="bilinear", align_corners=False)


def pool(x: torch.Tensor) -> torch.Tensor:
    # ceil_mode keeps odd sizes from losing their last row, exactly as trained.
    return F.max_pool2d(x, 2, stride=2, ceil_mode=True)
