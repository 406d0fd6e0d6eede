"""IS-Net (DIS, Qin et al. 2022), the general-use variant, with batch norm folded into the convs."""

from __future__ import annotations

import torch
from torch import nn

from daemon.matting.resample import pool, upsample_like
from daemon.matting.rsu import RSU
from daemon.matting.rsu4f import RSU4F


class ISNet(nn.Module):
    """Input: RGB in [0, 1] minus 0.5, N×3×H×W, H and W multiples of 32. Output: α in [0, 1], N×1×H×W.

    The side heads 2–6 are kept so the published weights load completely, but
    only ``side1`` (the finest) feeds the output.
    """

    def __init__(self) -> None:
        super().__init__()
        # Stride 2 and no ReLU after it; the original's pool_in is never used.
        self.conv_in = nn.Conv2d(3, 64, 3, stride=2, padding=1)
        self.stage1 = RSU(7, 64, 32, 64)
        self.stage2 = RSU(6, 64, 32, 128)
        self.stage3 = RSU(5, 128, 64, 256)
        self.stage4 = RSU(4, 256, 128, 512)
        self.stage5 = RSU4F(512, 256, 512)
        self.stage6 = RSU4F(512, 256, 512)
        self.stage5d = RSU4F(1024, 256, 512)
        self.stage4d = RSU(4, 1024, 128, 256)
        self.stage3d = RSU(5, 512, 64, 128)
        self.stage2d = RSU(6, 256, 32, 64)
        self.stage1d = RSU(7, 128, 16, 64)
        for i, ch in enumerate((64, 64, 128, 256, 512, 512), start=1):
            self.add_module(f"side{i}", nn.Conv2d(ch, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hx1 = self.stage1(self.conv_in(x))
        hx2 = self.stage2(pool(hx1))
        hx3 = self.stage3(pool(hx2))
        hx4 = self.stage4(pool(hx3))
        hx5 = self.stage5(pool(hx4))
        hx6 = self.stage6(pool(hx5))
        hx5d = self.stage5d(torch.cat((upsample_like(hx6, hx5), hx5), 1))
        hx4d = self.stage4d(torch.cat((upsample_like(hx5d, hx4), hx4), 1))
        hx3d = self.stage3d(torch.cat((upsample_like(hx4d, hx3), hx3), 1))
        hx2d = self.stage2d(torch.cat((upsample_like(hx3d, hx2), hx2), 1))
        hx1d = self.stage1d(torch.cat((upsample_like(hx2d, hx1), hx1), 1))
        d1 = upsample_like(self.get_submodule("side1")(hx1d), x)
        return torch.sigmoid(d1)
