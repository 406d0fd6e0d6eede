"""The residual U-block ``RSU-L`` (L = 4…7): a small U-Net inside each stage."""

from __future__ import annotations

import torch
from torch import nn

from daemon.matting.conv_relu import ConvReLU
from daemon.matting.resample import pool, upsample_like


class RSU(nn.Module):
    """``RSU-<height>``: encoder of ``height - 1`` convs with pooling, a dilated bottom, a decoder.

    Attribute names (``rebnconvin``, ``rebnconv1`` … ``rebnconv1d``) follow the
    original so that ONNX node paths map straight onto module paths.
    """

    def __init__(self, height: int, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__()
        self.height = height
        self.rebnconvin = ConvReLU(in_ch, out_ch)
        self.rebnconv1 = ConvReLU(out_ch, mid_ch)
        for i in range(2, height):
            self.add_module(f"rebnconv{i}", ConvReLU(mid_ch, mid_ch))
        # Only the innermost conv is dilated in RSU-7/6/5/4.
        self.add_module(f"rebnconv{height}", ConvReLU(mid_ch, mid_ch, dilation=2))
        for i in range(height - 1, 1, -1):
            self.add_module(f"rebnconv{i}d", ConvReLU(mid_ch * 2, mid_ch))
        self.rebnconv1d = ConvReLU(mid_ch * 2, out_ch)

    def _layer(self, name: str) -> nn.Module:
        return self.get_submodule(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hxin = self.rebnconvin(x)
        h = self.rebnconv1(hxin)
        skips = [h]
        for i in range(2, self.height):
            h = self._layer(f"rebnconv{i}")(pool(h))
            skips.append(h)
        h = self._layer(f"rebnconv{self.height}")(h)
        for i in range(self.height - 1, 0, -1):
            h = self._layer(f"rebnconv{i}d")(torch.cat((h, skips[i - 1]), 1))
            if i > 1:
                h = upsample_like(h, skips[i - 2])
        return h + hxin
