"""Merging the ample and focal branches at the end of an AF stage (SPEC §2.8).

Both fusions take the ample output at its own resolution and upsample it (nearest) on the fly: at an exact
2x ratio, nearest upsampling is a broadcast over 2x2 blocks and GAP(up(a)) = GAP(a), so the upsampled tensor
is never materialised (it costs as much as the blend itself on CPU).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from src.models.frame_ops import is_channels_last


def blend_upsampled(f: torch.Tensor, a: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """f + nearest_upsample(a, f's size): f (B, C, H, W), a (B, C, h, w) -> (B, C, H, W), written into f
    when `inplace` (f must then be a fresh tensor nobody else reads)."""
    b, c, hh, ww = f.shape
    h, w = a.shape[-2:]
    if (hh, ww) == (2 * h, 2 * w):
        # the 2x2 broadcast on 6-D views, on the (B, H, W, C) views when both are channels-last
        if f.is_contiguous() and a.is_contiguous():
            fv, av = f.view(b, c, h, 2, w, 2), a.view(b, c, h, 1, w, 1)
            return fv.add_(av).view_as(f) if inplace else (fv + av).view_as(f)
        if is_channels_last(f) and is_channels_last(a):
            fv, av = f.permute(0, 2, 3, 1).view(b, h, 2, w, 2, c), a.permute(0, 2, 3, 1).view(b, h, 1, w, 1, c)
            if inplace:
                fv.add_(av)
                return f
            return (fv + av).view(b, hh, ww, c).permute(0, 3, 1, 2)
    up = F.interpolate(a, size=(hh, ww), mode="nearest")
    return f.add_(up) if inplace else f + up


class DynamicFusion(nn.Module):
    """out = act(θ a + (1 - θ) f), θ = σ(W_b ReLU(W_a GAP(a + f))), channel-wise and per frame.

    a: (N*T, C, h, w) ample output, nearest-upsampled to f's (N*T, C, H, W) here. ResNet: bias-free linears
    initialised N(0, 0.01) (θ ≈ 0.5 at the start), ReLU after the blend; MobileNetV3: linears with bias and
    no activation after the blend.
    """

    def __init__(self, channels: int, reduction: int = 16, bias: bool = False, relu: bool = True):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        hidden = max(1, channels // reduction)  # tiny test widths would give 0
        self.fc1 = nn.Linear(channels, hidden, bias=bias)
        self.fc2 = nn.Linear(hidden, channels, bias=bias)
        self.relu = relu
        for fc in (self.fc1, self.fc2):
            nn.init.normal_(fc.weight, 0, 0.01)
            if fc.bias is not None:
                nn.init.zeros_(fc.bias)

    def forward(self, a: torch.Tensor, f: torch.Tensor, own_f: bool = False) -> torch.Tensor:
        """own_f: the caller hands f over; without autograd the blend is then written into f."""
        if f.shape[-2] % a.shape[-2] or f.shape[-1] % a.shape[-1]:
            a = F.interpolate(a, size=f.shape[-2:], mode="nearest")  # mean(up(a)) = mean(a) needs whole blocks
        # GAP(up(a) + f) = mean(a) + GAP(f); `pool` runs at f's size, as the official GAP (FLOPs counter)
        gap = self.pool(f).flatten(1) + a.mean((2, 3))
        theta = torch.sigmoid(self.fc2(F.relu(self.fc1(gap))))[..., None, None]
        # in place only without autograd: an in-place add on a 6-D view would record a costly CopySlices
        grad = torch.is_grad_enabled()
        f = f * (1 - theta) if grad or not own_f else f.mul_(1 - theta)
        out = blend_upsampled(f, a * theta, inplace=not grad)
        return out.relu_() if self.relu else out


class AddFusion(nn.Module):
    """out = act(a + f): the plain-addition ablation of Table S6."""

    def __init__(self, channels: int = 0, relu: bool = True, **_):
        super().__init__()
        self.relu = relu

    def forward(self, a: torch.Tensor, f: torch.Tensor, own_f: bool = False) -> torch.Tensor:
        out = blend_upsampled(f, a, inplace=own_f and not torch.is_grad_enabled())
        return out.relu_() if self.relu else out
