"""Pooling layers with the values of their torch.nn parents and cheaper CPU kernels or backward passes.

Both stay instances of their nn parents, so the FLOPs counter (`flops.layer_macs`) counts them as the pools
they are, and neither has parameters or buffers (state dicts and official checkpoint keys are unchanged).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ShortcutPool(nn.AvgPool2d):
    """The ResNet-D shortcut's 3x3 average pool (padding 1, zeros counted: always a ninth of the 9 taps),
    computed as a depthwise convolution with a constant 1/9 kernel: the same values to float rounding, and
    on CPU 3-5x faster than avg_pool2d's kernel forward and backward in NCHW (1.5x channels-last).
    (B, C, H, W) -> (B, C, H/s, W/s), in x's memory format."""

    def __init__(self, stride: int):
        super().__init__(3, stride, 1)
        self._kernels: dict = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        key = (x.shape[1], x.dtype, x.device)
        if key not in self._kernels:
            self._kernels[key] = torch.full((x.shape[1], 1, 3, 3), 1 / 9, dtype=x.dtype, device=x.device)
        return F.conv2d(x, self._kernels[key], None, self.stride, 1, groups=x.shape[1])


class _MeanHW(torch.autograd.Function):
    """x.mean((2, 3), keepdim=True) whose gradient is the broadcast view of g / (H·W), not a full-size copy:
    where x has other consumers, autograd adds the view into their (dense) gradient in place."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.shape = x.shape
        return x.mean((2, 3), keepdim=True)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:
        return (g / (ctx.shape[2] * ctx.shape[3])).expand(ctx.shape)


def mean_hw(x: torch.Tensor) -> torch.Tensor:
    """x.mean((2, 3), keepdim=True): (B, C, H, W) -> (B, C, 1, 1), through `_MeanHW` when autograd records."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _MeanHW.apply(x)
    return x.mean((2, 3), keepdim=True)


class GlobalAvgPool(nn.AdaptiveAvgPool2d):
    """Global average pooling (B, C, H, W) -> (B, C, 1, 1) by `mean_hw`, for features that also feed other
    layers (the navigation's and the dynamic fusion's inputs): its backward saves a full-size tensor."""

    def __init__(self):
        super().__init__(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mean_hw(x)
