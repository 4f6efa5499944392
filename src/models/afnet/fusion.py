"""Merging the ample and focal branches at the end of an AF stage.

a: the projected ample output (N*T, C, h, w), nearest-upsampled here to f's size; f: the focal output
(N*T, C, H, W). The result has f's dtype (under autocast the branches and θ may come in other dtypes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def upsample_to(a: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """up(a): a nearest-upsampled to f's H, W, in f's dtype."""
    return F.interpolate(a, size=f.shape[-2:], mode="nearest").to(f.dtype)


class DynamicFusion(nn.Module):
    """out = act(θ ⊙ up(a) + (1 − θ) ⊙ f), θ = σ(W_b ReLU(W_a GAP(up(a) + f))), channel-wise and per frame.

    ResNet: bias-free linears initialised N(0, 0.01) (θ ≈ 0.5 at the start), ReLU after the blend (act);
    MobileNetV3: linears with bias and no activation after the blend.
    """

    def __init__(self, channels: int, reduction: int = 16, bias: bool = False, relu: bool = True):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)  # a module, so the FLOPs counter sees the GAP (at f's size)
        hidden = max(1, channels // reduction)  # tiny test widths would give 0
        self.fc1 = nn.Linear(channels, hidden, bias=bias)
        self.fc2 = nn.Linear(hidden, channels, bias=bias)
        self.relu = relu
        for fc in (self.fc1, self.fc2):
            nn.init.normal_(fc.weight, 0, 0.01)
            if fc.bias is not None:
                nn.init.zeros_(fc.bias)

    def attention(self, s: torch.Tensor) -> torch.Tensor:
        """θ (B, C, 1, 1) from the sum s = up(a) + f (B, C, H, W), or from its GAP (B, C, 1, 1)."""
        gap = self.pool(s).flatten(1)
        return torch.sigmoid(self.fc2(F.relu(self.fc1(gap))))[..., None, None]

    def forward(self, a: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        up = upsample_to(a, f)
        theta = self.attention(up + f).to(f.dtype)
        out = torch.lerp(f, up, theta)  # f + θ (up(a) − f) = θ up(a) + (1 − θ) f
        return F.relu(out) if self.relu else out


class AddFusion(nn.Module):
    """out = act(up(a) + f): the plain-addition ablation of Table S6."""

    def __init__(self, channels: int = 0, relu: bool = True, **_):
        super().__init__()
        self.relu = relu

    def forward(self, a: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        out = upsample_to(a, f) + f
        return F.relu(out) if self.relu else out
