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


def relu_fresh(x: torch.Tensor) -> torch.Tensor:
    """ReLU of a fresh tensor: in place without autograd; out of place with it, as x may be a view (an
    in-place op on a view would make autograd record a CopySlices, a full copy in the backward pass)."""
    return F.relu(x) if torch.is_grad_enabled() else x.relu_()


def upsample_views(f: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int] | None:
    """6-D views of f (B, C, H, W) and a (B, C, H/2, W/2) whose broadcast is a's nearest 2x upsampling, and
    the channel dim of those views (1 for NCHW, 5 for channels-last); None when H, W are not exactly 2x or
    the layouts differ."""
    b, c, hh, ww = f.shape
    h, w = a.shape[-2:]
    if (hh, ww) != (2 * h, 2 * w):
        return None
    if f.is_contiguous() and a.is_contiguous():
        return f.view(b, c, h, 2, w, 2), a.view(b, c, h, 1, w, 1), 1
    if is_channels_last(f) and is_channels_last(a):
        return f.permute(0, 2, 3, 1).view(b, h, 2, w, 2, c), a.permute(0, 2, 3, 1).view(b, h, 1, w, 1, c), 5
    return None


def blend_upsampled(f: torch.Tensor, a: torch.Tensor, theta: torch.Tensor | None = None,
                    inplace: bool = False) -> torch.Tensor:
    """f + up(a), or with `theta` (B, C, 1, 1) the blend θ up(a) + (1 - θ) f, one pass over f, where up is
    nearest upsampling to f's size: f (B, C, H, W), a (B, C, h, w) -> (B, C, H, W) in f's memory format.
    `inplace` writes into f (a fresh tensor nobody else reads, and no autograd)."""
    views = upsample_views(f, a)
    if views is None:
        fv, av, cdim = f, F.interpolate(a, size=f.shape[-2:], mode="nearest"), 1
    else:
        fv, av, cdim = views
    if theta is not None:
        shape = [1] * fv.dim()
        shape[0], shape[cdim] = theta.shape[0], theta.shape[1]
        th = theta.reshape(shape)
        out = fv.lerp_(av, th) if inplace else torch.lerp(fv, av, th)
    else:
        out = fv.add_(av) if inplace else fv + av
    if inplace:
        return f
    if views is None:
        return out
    b, c, hh, ww = f.shape
    return out.reshape(f.shape) if cdim == 1 else out.reshape(b, hh, ww, c).permute(0, 3, 1, 2)


class Blend2x(torch.autograd.Function):
    """act(θ up(a) + (1 - θ) f) for an exact 2x nearest upsampling, act a ReLU or the identity, with a
    hand-written backward: the gradients of a and θ come from the 2x2 block sums of g (one pooled
    quarter-size tensor) instead of autograd's full-size broadcast products and strided reductions, and the
    ReLU runs in place on the fresh blend (about 3x cheaper on CPU than autograd's version).
    f (B, C, H, W), a (B, C, H/2, W/2), theta (B, C, 1, 1) -> (B, C, H, W)."""

    @staticmethod
    def forward(ctx, f: torch.Tensor, a: torch.Tensor, theta: torch.Tensor, relu: bool) -> torch.Tensor:
        out = blend_upsampled(f, a, theta)
        if relu:
            out.relu_()
        ctx.save_for_backward(f, a, theta, out if relu else None)
        return out

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        f, a, theta, out = ctx.saved_tensors
        if out is not None:
            g = g.masked_fill(out <= 0, 0)
        g_blocks = F.avg_pool2d(g, 2) * 4  # (B, C, H/2, W/2): what each ample position fed
        grad_theta = (g_blocks * a).sum((2, 3), keepdim=True) - (g * f).sum((2, 3), keepdim=True)
        return g * (1 - theta), g_blocks * theta, grad_theta, None


def blend(f: torch.Tensor, a: torch.Tensor, theta: torch.Tensor, relu: bool, inplace: bool = False) -> torch.Tensor:
    """act(`blend_upsampled` with θ), through `Blend2x` when autograd records it and the sizes are an exact
    2x; `inplace` (no autograd) writes into f."""
    if torch.is_grad_enabled() and upsample_views(f, a) is not None:
        return Blend2x.apply(f, a, theta, relu)
    out = blend_upsampled(f, a, theta, inplace)
    return relu_fresh(out) if relu else out


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
        return blend(f, a, theta, self.relu, inplace=own_f and not torch.is_grad_enabled())


class AddFusion(nn.Module):
    """out = act(a + f): the plain-addition ablation of Table S6."""

    def __init__(self, channels: int = 0, relu: bool = True, **_):
        super().__init__()
        self.relu = relu

    def forward(self, a: torch.Tensor, f: torch.Tensor, own_f: bool = False) -> torch.Tensor:
        out = blend_upsampled(f, a, inplace=own_f and not torch.is_grad_enabled())
        return relu_fresh(out) if self.relu else out
