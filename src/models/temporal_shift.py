"""The TSM temporal shift, and frame gathers on a folded (N*T, C, H, W) batch in either memory format.

The shift moves a fold of channels one step along time, per video, zero-padded at the clip boundaries:
channels [0, C/8) take frame t+1's values, channels [C/8, C/4) frame t-1's, the rest stay. It sits at the
start of a block's residual function; the skip path keeps each frame's own features.
"""

from __future__ import annotations

import torch


def check_segments(x: torch.Tensor, num_segments: int) -> None:
    if x.shape[0] % num_segments:
        raise ValueError(f"batch of {x.shape[0]} frames is not a multiple of num_segments={num_segments}")


def is_channels_last(x: torch.Tensor) -> bool:
    """True when x (B, C, H, W) is stored channels-last (and not also plainly contiguous, e.g. H=W=1)."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def shifted_copy(x: torch.Tensor, num_segments: int, fold_div: int = 8, reverse: bool = False) -> torch.Tensor:
    """The shift into a new tensor, in x's memory format, without autograd; `reverse` swaps the directions of
    the two shifted folds: the shift's adjoint."""
    nt, c, h, w = x.shape
    fold = c // fold_div
    v = x.view(nt // num_segments, num_segments, c, h, w)
    out = v.clone()  # then rewrite the shifted quarter: cheaper than zero-filling and copying three parts
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
    """The shift, with its adjoint (the same shift, directions swapped) as the backward: autograd's own backward
    of the slice assignments would build a full-size gradient per assignment."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, num_segments: int, fold_div: int) -> torch.Tensor:
        ctx.args = (num_segments, fold_div)
        return shifted_copy(x, num_segments, fold_div)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        if not (g.is_contiguous() or g.is_contiguous(memory_format=torch.channels_last)):
            g = g.contiguous()  # e.g. an expanded gradient: the frame split needs a view
        return shifted_copy(g, *ctx.args, reverse=True), None, None


def temporal_shift(x: torch.Tensor, num_segments: int, fold_div: int = 8) -> torch.Tensor:
    """The shift of x (N*T, C, H, W) over clips of `num_segments` frames, as a new tensor (x is untouched);
    num_segments=0 returns x itself (no shift)."""
    if not num_segments:
        return x
    check_segments(x, num_segments)
    if torch.is_grad_enabled() and x.requires_grad:
        return _TemporalShift.apply(x, num_segments, fold_div)
    return shifted_copy(x, num_segments, fold_div)


def select_frames(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """x.index_select(0, index) in x's memory format: (B, C, H, W), (k,) -> (k, C, H, W)."""
    if not is_channels_last(x):
        return x.index_select(0, index)
    return x.permute(0, 2, 3, 1).index_select(0, index).permute(0, 3, 1, 2)


def gather_shifted(x: torch.Tensor, index: torch.Tensor, num_segments: int, fold_div: int = 8) -> torch.Tensor:
    """temporal_shift(x, num_segments).index_select(0, index), reading only the frames it needs.

    x: (N*T, C, H, W); index: (k,) frame positions -> (k, C, H, W) in x's memory format. A gathered frame takes
    channels [0, C/8) from its successor and [C/8, C/4) from its predecessor in the same video (zeros at the
    clip boundaries), whether or not those neighbours are gathered too. Three gathers, no Python loop over
    frames. num_segments=0: a plain gather.
    """
    if not num_segments:
        return select_frames(x, index)
    check_segments(x, num_segments)
    fold = x.shape[1] // fold_div
    cl = is_channels_last(x)
    v, cdim = (x.permute(0, 2, 3, 1), 3) if cl else (x, 1)  # frames on dim 0, contiguous rows
    t = index % num_segments
    parts = []
    for lo, hi, step, valid in ((0, fold, 1, t < num_segments - 1), (fold, 2 * fold, -1, t > 0)):
        src = v.narrow(cdim, lo, hi - lo).index_select(0, torch.where(valid, index + step, index))
        parts.append(torch.where(valid.view(-1, 1, 1, 1), src, 0))  # the clip boundary: nothing to take
    parts.append(v.narrow(cdim, 2 * fold, x.shape[1] - 2 * fold).index_select(0, index))
    out = torch.cat(parts, cdim)
    return out.permute(0, 3, 1, 2) if cl else out
