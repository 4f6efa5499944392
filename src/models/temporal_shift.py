"""Temporal shift of TSM (SPEC §2.10), applied at the start of a residual function."""

from __future__ import annotations

import torch


def temporal_shift(x: torch.Tensor, num_segments: int, fold_div: int = 8) -> torch.Tensor:
    """Shift a fold of channels one step along time, zero-padded at the clip boundaries.

    x: (N*T, C, H, W) with the T frames of each video contiguous. Channels [0, C/8) take frame t+1's
    values, channels [C/8, 2C/8) take frame t-1's, the rest are unchanged. Returns a new tensor of the
    same shape; the input is untouched (the skip path must stay unshifted).
    """
    nt, c, h, w = x.shape
    if nt % num_segments:
        raise ValueError(f"batch of {nt} frames is not a multiple of num_segments={num_segments}")
    fold = c // fold_div
    v = x.view(nt // num_segments, num_segments, c, h, w)
    # one contiguous copy, then rewrite the shifted quarter: cheaper than zero-fill + three strided copies,
    # most of all in channels-last memory where a channel slice is a strided gather
    out = v.clone()
    out[:, :-1, :fold] = v[:, 1:, :fold]
    out[:, -1, :fold] = 0
    out[:, 1:, fold : 2 * fold] = v[:, :-1, fold : 2 * fold]
    out[:, 0, fold : 2 * fold] = 0
    return out.view(nt, c, h, w)


def temporal_shift_(x: torch.Tensor, num_segments: int, fold_div: int = 8) -> torch.Tensor:
    """`temporal_shift` written into x itself (copying only the shifted quarter of the channels): for a
    block input nobody reads after the block's shortcut has consumed it, at inference (no autograd)."""
    nt, c, h, w = x.shape
    if nt % num_segments:
        raise ValueError(f"batch of {nt} frames is not a multiple of num_segments={num_segments}")
    fold = c // fold_div
    v = x.view(nt // num_segments, num_segments, c, h, w)
    v[:, :-1, :fold] = v[:, 1:, :fold].clone()  # a copy first: source and destination overlap
    v[:, -1, :fold] = 0
    v[:, 1:, fold : 2 * fold] = v[:, :-1, fold : 2 * fold].clone()
    v[:, 0, fold : 2 * fold] = 0
    return x


class TemporalShift(torch.nn.Module):
    """Module form of `temporal_shift`, so it shows in model summaries; no parameters, no MACs."""

    def __init__(self, num_segments: int, fold_div: int = 8):
        super().__init__()
        self.num_segments = num_segments
        self.fold_div = fold_div

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return temporal_shift(x, self.num_segments, self.fold_div)

    def extra_repr(self) -> str:
        return f"num_segments={self.num_segments}, fold_div={self.fold_div}"
