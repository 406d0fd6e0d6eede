"""``RSU-4F``: the residual U-block of the deepest stages, dilated instead of pooled."""

from __future__ import annotations

import torch
from torch import nn

from daemon.matting.conv_relu import ConvReLU


class RSU4F(nn.Module):
    """Dilations 1, 2, 4, 8 on the way down and 4, 2, 1 back up; no resampling at all."""

    def __init__(self, in_ch: int, mid_ch: int, out_ch: int) -> None:
        super().__init__()
        self.rebnconvin = ConvReLU(in_ch, out_ch)
        self.rebnconv1 = ConvReLU(out_ch, mid_ch)
        self.rebnconv2 = ConvReLU(mid_ch, mid_ch, dilation=2)
        self.rebnconv3 = ConvReLU(mid_ch, mid_ch, dilation=4)
        self.rebnconv4 = ConvReLU(mid_ch, mid_ch, dilation=8)
        self.rebnconv3d = ConvReLU(mid_ch * 2, mid_ch, dilation=4)
        self.rebnconv2d = ConvReLU(mid_ch * 2, mid_ch, dilation=2)
        self.rebnconv1d = ConvReLU(mid_ch * 2, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hxin = self.rebnconvin(x)
        hx1 = self.rebnconv1(hxin)
        hx2 = self.rebnconv2(hx1)
        hx3 = self.rebnconv3(hx2)
        hx4 = self.rebnconv4(hx3)
        hx3d = self.rebnconv3d(torch.cat((hx4, hx3), 1))
        hx2d = self.rebnconv2d(torch.cat((hx3d, hx2), 1))
        hx1d = self.rebnconv1d(torch.cat((hx2d, hx1), 1))
        return hx1d + hxin
