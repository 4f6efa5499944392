"""Merging the ample and focal branches at the end of an AF stage (SPEC §2.8).

Both fusions take the ample output at its own resolution and upsample it (nearest) on the fly: at an exact
2x ratio, nearest upsampling is a broadcast over 2x2 blocks (after a repeat along W in NCHW) and
GAP(up(a)) = GAP(a), so the full upsampled tensor is never materialised (it costs as much as the blend
itself on CPU).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from src.models.frame_ops import is_channels_last
from src.models.layers import GlobalAvgPool, mean_hw


def relu_fresh(x: torch.Tensor) -> torch.Tensor:
    """ReLU of a fresh tensor: in place without autograd; out of place with it, as x may be a view (an
    in-place op on a view would make autograd record a CopySlices, a full copy in the backward pass)."""
    return F.relu(x) if torch.is_grad_enabled() else x.relu_()


def is_exact_2x(f: torch.Tensor, a: torch.Tensor) -> bool:
    """f (B, C, H, W) is exactly twice a (B, C, H/2, W/2) in H and W, in the same memory layout."""
    if tuple(f.shape[-2:]) != (2 * a.shape[-2], 2 * a.shape[-1]):
        return False
    return (f.is_contiguous() and a.is_contiguous()) or (is_channels_last(f) and is_channels_last(a))


def upsample_views(f: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int] | None:
    """Views of f (B, C, H, W) and of a (B, C, H/2, W/2) whose broadcast is a's nearest 2x upsampling, and
    the channel dim of those views; None unless `is_exact_2x`.
    Channels-last: 6-D views (B, H/2, 2, W/2, 2, C) / (B, H/2, 1, W/2, 1, C), channels innermost. NCHW: a is
    first repeated along W (a half-size copy), so the views are (B, C, H/2, 2, W) / (B, C, H/2, 1, W) with
    whole rows innermost; a 6-D NCHW broadcast would leave pairs innermost, 2x slower on CPU than the copy."""
    if not is_exact_2x(f, a):
        return None
    b, c, hh, ww = f.shape
    h, w = a.shape[-2:]
    if f.is_contiguous():
        aw = a.unsqueeze(-1).expand(b, c, h, w, 2).reshape(b, c, h, 1, ww)
        return f.view(b, c, h, 2, ww), aw, 1
    return f.permute(0, 2, 3, 1).view(b, h, 2, w, 2, c), a.permute(0, 2, 3, 1).view(b, h, 1, w, 1, c), 5


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


def block_sums_2x2(g: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, H/2, W/2) sums of the 2x2 blocks: rows first (whole rows stay contiguous), then
    column pairs; on CPU ~8x faster than avg_pool2d(g, 2) * 4 in NCHW, any memory format."""
    rows = g[:, :, 0::2] + g[:, :, 1::2]
    return rows[..., 0::2] + rows[..., 1::2]


def channel_dots(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B, C, 1, 1) per-frame, per-channel inner products over H, W of a, b (B, C, H, W). On CPU frame by
    frame: a product temporary the size of one frame, not of the batch (which, past ~32 MB, costs more in
    fresh pages than the arithmetic)."""
    if a.device.type != "cpu":
        return (a * b).sum((2, 3), keepdim=True)
    return torch.stack([(x * y).sum((1, 2)) for x, y in zip(a, b)]).view(a.shape[0], a.shape[1], 1, 1)


class Blend2x(torch.autograd.Function):
    """act(θ up(a) + (1 - θ) f) for an exact 2x nearest upsampling, act a ReLU or the identity, with a
    hand-written backward: the gradients of a and θ come from the 2x2 block sums of g (one quarter-size
    tensor) instead of autograd's full-size broadcast products and strided reductions; the
    ReLU runs in place on the fresh blend, its backward is one threshold pass whose fresh output then
    becomes f's gradient in place (one full-size tensor in the backward instead of three).
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
        own = out is not None
        if own:
            g = torch.ops.aten.threshold_backward(g, out, 0)  # g where out > 0, else 0: a fresh tensor
        g_blocks = block_sums_2x2(g)  # (B, C, H/2, W/2): what each ample position fed
        grad_theta = (g_blocks * a).sum((2, 3), keepdim=True) - channel_dots(g, f)
        grad_f = g.mul_(1 - theta) if own else g * (1 - theta)
        return grad_f, g_blocks * theta, grad_theta, None


def blend(f: torch.Tensor, a: torch.Tensor, theta: torch.Tensor, relu: bool, inplace: bool = False) -> torch.Tensor:
    """act(`blend_upsampled` with θ), through `Blend2x` when autograd records it and the sizes are an exact
    2x; `inplace` (no autograd) writes into f."""
    if torch.is_grad_enabled() and is_exact_2x(f, a):
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
        self.pool = GlobalAvgPool()
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
        gap = self.pool(f).flatten(1) + mean_hw(a).flatten(1)
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
