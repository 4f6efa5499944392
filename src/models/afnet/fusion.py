"""Merging the ample and focal branches at the end of an AF stage (SPEC §2.8).

Both fusions take the ample output at its own resolution and upsample it (nearest) on the fly: at an exact
2x ratio, nearest upsampling is a broadcast over 2x2 blocks and GAP(up(a)) = GAP(a), so the upsampled tensor
is never materialised (it costs as much as the blend itself on CPU).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def blend_upsampled(f: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """f + nearest_upsample(a, f's size): f (B, C, H, W), a (B, C, h, w) -> (B, C, H, W)."""
    b, c, hh, ww = f.shape
    h, w = a.shape[-2:]
    if (hh, ww) == (2 * h, 2 * w) and f.is_contiguous() and a.is_contiguous():
        return (f.view(b, c, h, 2, w, 2) + a.view(b, c, h, 1, w, 1)).view(b, c, hh, ww)
    return f + F.interpolate(a, size=(hh, ww), mode="nearest")


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

    def forward(self, a: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        if f.shape[-2] % a.shape[-2] or f.shape[-1] % a.shape[-1]:
            a = F.interpolate(a, size=f.shape[-2:], mode="nearest")  # mean(up(a)) = mean(a) needs whole blocks
        # GAP(up(a) + f) = mean(a) + GAP(f); `pool` runs at f's size, as the official GAP (FLOPs counter)
        gap = self.pool(f).flatten(1) + a.mean((2, 3))
        theta = torch.sigmoid(self.fc2(F.relu(self.fc1(gap))))[..., None, None]
        out = blend_upsampled(f * (1 - theta), a * theta)
        return out.relu_() if self.relu else out


class AddFusion(nn.Module):
    """out = act(a + f): the plain-addition ablation of Table S6."""

    def __init__(self, channels: int = 0, relu: bool = True, **_):
        super().__init__()
        self.relu = relu

    def forward(self, a: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        out = blend_upsampled(f, a)
        return out.relu_() if self.relu else out
