"""Temporal shift of TSM (SPEC §2.10), applied at the start of a residual function."""

from __future__ import annotations

import torch


def check_segments(x: torch.Tensor, num_segments: int) -> None:
    if x.shape[0] % num_segments:
        raise ValueError(f"batch of {x.shape[0]} frames is not a multiple of num_segments={num_segments}")


def shifted_copy(x: torch.Tensor, num_segments: int, fold_div: int = 8, reverse: bool = False) -> torch.Tensor:
    """The shift of `temporal_shift` into a new tensor, without autograd; `reverse` swaps the directions of the
    two shifted folds (channels [0, C/8) then take frame t-1's values, [C/8, C/4) frame t+1's): its adjoint."""
    nt, c, h, w = x.shape
    fold = c // fold_div
    v = x.view(nt // num_segments, num_segments, c, h, w)
    # one contiguous copy, then rewrite the shifted quarter: cheaper than zero-fill + three strided copies,
    # most of all in channels-last memory where a channel slice is a strided gather
    out = v.clone()
    for lo, from_next in ((0, not reverse), (fold, reverse)):
        dst = out[:, :, lo:lo + fold]
        if from_next:
            dst[:, :-1] = v[:, 1:, lo:lo + fold]
            dst[:, -1] = 0
        else:
            dst[:, 1:] = v[:, :-1, lo:lo + fold]
            dst[:, 0] = 0
    return out.view(nt, c, h, w)


class _TemporalShift(torch.autograd.Function):
    """The shift with its adjoint as the backward (the same shift, directions swapped): autograd's own backward
    of the slice assignments materialises a full-size gradient per assignment (~30x the forward's cost)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, num_segments: int, fold_div: int) -> torch.Tensor:
        ctx.args = (num_segments, fold_div)
        return shifted_copy(x, num_segments, fold_div)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        if not (g.is_contiguous() or g.is_contiguous(memory_format=torch.channels_last)):
            g = g.contiguous()  # e.g. an expanded gradient: the frame split below needs a view
        return shifted_copy(g, *ctx.args, reverse=True), None, None


def temporal_shift(x: torch.Tensor, num_segments: int, fold_div: int = 8) -> torch.Tensor:
    """Shift a fold of channels one step along time, zero-padded at the clip boundaries.

    x: (N*T, C, H, W) with the T frames of each video contiguous. Channels [0, C/8) take frame t+1's
    values, channels [C/8, 2C/8) take frame t-1's, the rest are unchanged. Returns a new tensor of the
    same shape; the input is untouched (the skip path must stay unshifted).
    """
    check_segments(x, num_segments)
    if torch.is_grad_enabled() and x.requires_grad:
        return _TemporalShift.apply(x, num_segments, fold_div)
    return shifted_copy(x, num_segments, fold_div)


def temporal_shift_(x: torch.Tensor, num_segments: int, fold_div: int = 8) -> torch.Tensor:
    """`temporal_shift` written into x itself (copying only the shifted quarter of the channels): for a
    block input nobody reads after the block's shortcut has consumed it, at inference (no autograd)."""
    check_segments(x, num_segments)
    nt, c, h, w = x.shape
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
