"""IS-Net's basic layer: a 3×3 conv (batch norm already folded in) and a ReLU."""

from __future__ import annotations

import torch
from torch import nn

#: On the CPU the ReLU runs inside oneDNN's convolution as a post-op (what inductor emits),
#: instead of as a second pass over every activation: the ReLUs were 8.7 % of a 1024² bf16
#: image's CPU time in the profiler. Per 1024² image, 2 cores, least of alternating runs: bf16
#: (AMX) 1.065 → 0.985 s, α bit-identical; fp32 (AVX-512, no AMX) 1.59 → 1.39 s, where oneDNN
#: picks another algorithm and α moves by at most 2e-7 (tests/matting/test_conv_relu.py).
FUSE_ON_CPU = hasattr(torch.ops.mkldnn, "_convolution_pointwise") and torch.backends.mkldnn.is_available()  # type: ignore[no-untyped-call]


class ConvReLU(nn.Module):
    """The original's ``REBNCONV``; the attribute name ``conv_s1`` matches the ONNX node path."""

    def __init__(self, in_ch: int, out_ch: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv_s1 = nn.Conv2d(in_ch, out_ch, 3, padding=dilation, dilation=dilation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = self.conv_s1
        if (
            FUSE_ON_CPU
            and x.dtype in (torch.bfloat16, torch.float32)
            and x.device.type == "cpu"
            and conv.weight.dtype == x.dtype
        ):
            fused: torch.Tensor = torch.ops.mkldnn._convolution_pointwise(
                x,
                conv.weight,
                conv.bias,
                conv.padding,
                conv.stride,
                conv.dilation,
                conv.groups,
                "relu",
                [],
                "",
            )
            return fused
        return torch.relu(conv(x))
