"""The navigation module: which frames the focal branch computes at one block."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from src.models.afnet.gumbel import hard_gumbel_softmax

SKIP_BIAS, SELECT_BIAS = 1.0, 10.0


class Navigation(nn.Module):
    """Per-frame select / skip decision from a block's ample input.

    pool (N*T, C, H, W) -> 1x1 conv C->2 (no bias) -> BN -> ReLU -> (N, 2T) -> 1x1 conv 2T->2T with bias,
    grouped per frame (groups=T, as the official code; `mix_frames=True` makes it dense, the paper's wording)
    -> logits (N, T, 2), in float32 whatever the model's dtype (the Gumbel noise and the softmax need its range).
    The bias starts at 1 (skip) / 10 (select) (`init_bias`): a fresh model selects every frame. The 9-logit
    margin makes the straight-through gradient tiny at first; short runs may start with a smaller margin.
    Spatial head (when `spatial`, this suite's design of RS): 1x1 conv C->2 on the unpooled feature,
    per-position logits, the same hard Gumbel selection, an (N*T, 1, H, W) mask.
    """

    def __init__(self, in_channels: int, num_segments: int, mix_frames: bool = False, spatial: bool = False,
                 init_bias: tuple[float, float] = (SKIP_BIAS, SELECT_BIAS)):
        super().__init__()
        t = num_segments
        self.num_segments = t
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = nn.Conv2d(in_channels, 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(2)
        self.temporal = nn.Conv2d(2 * t, 2 * t, 1, groups=1 if mix_frames else t, bias=True)
        self.spatial = nn.Conv2d(in_channels, 2, 1, bias=True) if spatial else None
        self.reset_bias(init_bias)

    @torch.no_grad()
    def reset_bias(self, init_bias: tuple[float, float] = (SKIP_BIAS, SELECT_BIAS)) -> None:
        """(skip, select) bias of the temporal logits of every frame (and of the spatial head)."""
        bias = torch.tensor([float(b) for b in init_bias], device=self.temporal.bias.device)
        self.temporal.bias.view(self.num_segments, 2).copy_(bias)
        if self.spatial is not None:
            self.spatial.bias.copy_(bias)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N*T, C, H, W) -> (N, T, 2) skip / select logits."""
        v = F.relu(self.bn(self.conv(self.pool(x))))
        v = self.temporal(v.view(-1, 2 * self.num_segments, 1, 1))
        return v.view(-1, self.num_segments, 2).float()

    def forward(self, x: torch.Tensor, tau: float, noise: bool, forced_ratio: float | None = None,
                soft: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Temporal mask (N*T, 1, 1, 1) and spatial mask (N*T, 1, H, W) or None, both float32.

        noise: Gumbel noise on (training, or the official noisy evaluation); else the argmax.
        forced_ratio: select exactly round(r*T) frames per video, those with the largest select-minus-skip
        logit (ties: the earlier frame), for FLOPs counting and benchmarks. soft: the Table S4 variant, a
        sigmoid weight per frame instead of a hard choice.
        """
        logits = self.logits(x)
        if soft:
            mask = torch.sigmoid(logits[..., 1] - logits[..., 0])
        elif forced_ratio is not None:
            k = int(round(forced_ratio * self.num_segments))
            order = torch.sort(logits[..., 1] - logits[..., 0], dim=1, descending=True, stable=True).indices
            mask = torch.zeros_like(logits[..., 0]).scatter_(1, order[:, :k], 1.0)
        else:
            mask = hard_gumbel_softmax(logits, tau, noise)[..., 1]
        spatial = None
        if self.spatial is not None:
            if forced_ratio is not None:
                spatial = torch.ones_like(x[:, :1], dtype=torch.float32)
            else:
                spatial = hard_gumbel_softmax(self.spatial(x).float(), tau, noise, dim=1)[:, 1:]
        return mask.reshape(-1, 1, 1, 1), spatial
