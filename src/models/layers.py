"""Layers with the values of their torch.nn parents and cheaper CPU kernels or backward passes.

Each stays an instance of its nn parent, so the FLOPs counter (`flops.layer_macs`) counts it as the layer it
is, with the parent's parameters and no buffers (state dicts and official checkpoint keys are unchanged).
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
        # a kernel made under inference_mode is an inference tensor, which autograd refuses to save: one per mode
        key = (x.shape[1], x.dtype, x.device, torch.is_inference_mode_enabled())
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


def matmul_min_pixels_for(cpu_capability: str) -> int:
    """The smallest map (H·W) on which `GroupedPointwiseConv2d` trains as a batched product, per the ISA torch
    reports (`torch.backends.cpu.get_cpu_capability()`). Measured forward + backward on 12 frames, AFNet-R50's
    focal shapes, 2 threads, 2026-12-02: AVX-512 (AMD EPYC) oneDNN 7.1 against 12.4 ms at 14², 11.1 against
    12.6 at 28², 18.2 against 15.5 at 56²; AVX2 (AMD EPYC) oneDNN 31-34 ms against 19-24 at 14² and 28², 34
    against 21 and 49 against 37 at 56². Unmeasured ISAs keep the AVX-512 rule."""
    return 0 if cpu_capability == "AVX2" else 56 * 56


class GroupedPointwiseConv2d(nn.Conv2d):
    """A 1x1, stride-1 convolution with groups > 1 (the focal branch's). In training on CPU with NCHW input it
    is one batched matrix product over the input's own memory, (N, g, C_in/g, H·W) by (g, C_out/g, C_in/g)
    -> (N, C_out, H, W), no copies: oneDNN's grouped 1x1 kernels cost, forward and backward, about as much as
    dense ones of twice their MACs at 56² (AFNet-R50's first AF stage). Where the product wins depends on the
    vector ISA (`matmul_min_pixels_for`): with AVX-512 oneDNN's own kernels win on smaller maps, with AVX2 the
    product wins at every focal shape. Elsewhere (inference, channels-last, other devices) the usual
    convolution."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.matmul_min_pixels = matmul_min_pixels_for(torch.backends.cpu.get_cpu_capability())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (torch.is_grad_enabled() and x.device.type == "cpu" and x.dim() == 4 and x.is_contiguous()
                and x.shape[-2] * x.shape[-1] >= self.matmul_min_pixels):
            return super().forward(x)
        n, c, h, w = x.shape
        g = self.groups
        y = torch.matmul(self.weight.view(g, -1, c // g), x.view(n, g, c // g, h * w)).view(n, -1, h, w)
        return y if self.bias is None else y + self.bias.view(1, -1, 1, 1)


class VectorConv2d(nn.Conv2d):
    """A 1x1 convolution applied to pooled features (B, C_in, 1, 1) -> (B, C_out, 1, 1), e.g. the navigation
    heads: run as one matrix product (grouped: one batched product over the groups), the same sums as the
    convolution. A conv call on a 1x1 map costs ~60 us of oneDNN set-up for a few hundred MACs; this ~10 us.
    Other inputs (a spatial map) take the usual convolution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[-2:] != (1, 1) or self.kernel_size != (1, 1) or self.padding != (0, 0):
            return super().forward(x)  # a padded conv would see zeros around the pooled value: not a product
        n, g = x.shape[0], self.groups
        w = self.weight.view(self.out_channels, self.in_channels // g)
        if g == 1:
            return F.linear(x.reshape(n, -1), w, self.bias).view(n, -1, 1, 1)
        xg = x.reshape(n, g, -1).transpose(0, 1)  # (g, B, C_in/g)
        wg = w.view(g, -1, w.shape[1]).transpose(1, 2)  # (g, C_in/g, C_out/g)
        y = torch.bmm(xg, wg) if self.bias is None else torch.baddbmm(self.bias.view(g, 1, -1), xg, wg)
        return y.transpose(0, 1).reshape(n, -1, 1, 1)


def conv2d(cin: int, cout: int, k: int, stride: int = 1, padding: int = 0, groups: int = 1,
           bias: bool = False) -> nn.Conv2d:
    """nn.Conv2d, or `GroupedPointwiseConv2d` for a grouped 1x1 stride-1 convolution."""
    cls = GroupedPointwiseConv2d if (k, stride, padding) == (1, 1, 0) and groups > 1 else nn.Conv2d
    return cls(cin, cout, k, stride, padding, groups=groups, bias=bias)
