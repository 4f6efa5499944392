"""Merging the ample and focal branches at the end of an AF stage (SPEC §2.8)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DynamicFusion(nn.Module):
    """out = act(θ a + (1 - θ) f), θ = σ(W_b ReLU(W_a GAP(a + f))), channel-wise and per frame.

    a, f: (N*T, C, H, W). ResNet: bias-free linears initialised N(0, 0.01) (θ ≈ 0.5 at the start), ReLU
    after the blend; MobileNetV3: linears with bias and no activation after the blend.
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
        theta = torch.sigmoid(self.fc2(F.relu(self.fc1(self.pool(a + f).flatten(1)))))[..., None, None]
        out = f + theta * (a - f)
        return F.relu(out) if self.relu else out


class AddFusion(nn.Module):
    """out = act(a + f): the plain-addition ablation of Table S6."""

    def __init__(self, channels: int = 0, relu: bool = True, **_):
        super().__init__()
        self.relu = relu

    def forward(self, a: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        return F.relu(a + f) if self.relu else a + f
