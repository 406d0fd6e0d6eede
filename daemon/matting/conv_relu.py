"""IS-Net's basic layer: a 3×3 conv (batch norm already folded in) and a ReLU."""

from __future__ import annotations

import torch
from torch import nn


class ConvReLU(nn.Module):
    """The original's ``REBNCONV``; the attribute name ``conv_s1`` matches the ONNX node path."""

    def __init__(self, in_ch: int, out_ch: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv_s1 = nn.Conv2d(in_ch, out_ch, 3, padding=dilation, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv_s1(x))
