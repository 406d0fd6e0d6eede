"""IS-Net's basic layer: a 3×3 conv (batch norm already folded in) and a ReLU."""

from __future__ import annotations

import torch
from torch import nn

#: On the CPU in bf16, the ReLU runs inside oneDNN's convolution as a post-op (what inductor
#: emits), instead of as a second pass over every activation: the ReLUs were 8.7 % of a 1024²
#: image's CPU time in the profiler, and the model took 1.065 → 0.985 s per image (least of 5
#: alternating runs, 2 cores). The α is bit-identical in bf16 (tests/matting/test_conv_relu.py);
#: in fp32 oneDNN picks another algorithm and it is not, so fp32 keeps the two passes.
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
            and x.dtype == torch.bfloat16
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
