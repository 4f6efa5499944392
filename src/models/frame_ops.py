"""Frame gathers and scatters on a folded (N*T, C, H, W) batch in either memory format.

In channels-last memory a frame is one contiguous (H, W, C) block, but torch's index_select / index_copy_
on the 4-D NCHW view take a slow strided path; on the permuted (N*T, H, W, C) view, which is contiguous,
they are plain block copies. These helpers pick the view and return results in the input's format.
"""

from __future__ import annotations

import torch

from src.models.temporal_shift import temporal_shift


def is_channels_last(x: torch.Tensor) -> bool:
    """True when x (B, C, H, W) is stored channels-last (and not also plainly contiguous, e.g. H=W=1)."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def frames_view(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> a view with frames on dim 0 and contiguous rows: (B, H, W, C) if channels-last."""
    return x.permute(0, 2, 3, 1) if is_channels_last(x) else x


def select_frames(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """x.index_select(0, idx) in x's memory format: (B, C, H, W), (k,) -> (k, C, H, W)."""
    if not is_channels_last(x):
        return x.index_select(0, idx)
    return x.permute(0, 2, 3, 1).index_select(0, idx).permute(0, 3, 1, 2)


def copy_frames_(out: torch.Tensor, idx: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """out.index_copy_(0, idx, src), fast when both are channels-last: out (B, C, H, W), src (k, C, H, W)."""
    if is_channels_last(out) and is_channels_last(src):
        out.permute(0, 2, 3, 1).index_copy_(0, idx, src.permute(0, 2, 3, 1))
        return out
    return out.index_copy_(0, idx, src)


def add_frames_(out: torch.Tensor, idx: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """out.index_add_(0, idx, src) (idx without repeats), fast when both are channels-last."""
    if is_channels_last(out) and is_channels_last(src):
        out.permute(0, 2, 3, 1).index_add_(0, idx, src.permute(0, 2, 3, 1))
        return out
    return out.index_add_(0, idx, src)


def frame_chunked(fn, x: torch.Tensor, frames_per_chunk: int) -> torch.Tensor:
    """fn(x) for a per-frame `fn` (no mixing across dim 0, e.g. an eval-mode stem), run on chunks of
    `frames_per_chunk` frames of x (B, ...) and concatenated: the same values. 0 (or B or fewer frames): one
    call. Why: a ResNet stem's 112² conv output is 38.5 MB for 12 frames, past glibc's largest mmap
    threshold (32 MiB), so every call maps it afresh (~9,400 page faults); chunks of a few frames are reused
    from the heap and stay in cache for the max-pool that follows."""
    if not frames_per_chunk or x.shape[0] <= frames_per_chunk:
        return fn(x)
    return torch.cat([fn(chunk) for chunk in x.split(frames_per_chunk)])


def gather_shifted(x: torch.Tensor, idx: torch.Tensor, num_segments: int, fold_div: int = 8) -> torch.Tensor:
    """temporal_shift(x, num_segments).index_select(0, idx), reading only the frames it needs.

    x: (N*T, C, H, W); idx: (B,) frame indices -> (B, C, H, W), in x's memory format. A selected frame takes
    channels [0, C/8) from its successor and [C/8, C/4) from its predecessor in the same video (zero at the
    clip boundaries), whether or not those neighbours are selected (SPEC §2.10: shift the full-T tensor,
    then gather). The shifted channels are rewritten frame by frame with plain slice copies: 2-3x faster
    than gathering them with index tensors and masking the clip boundaries (a handful of frames per block).
    """
    if x.device.type == "meta":  # shapes only (the FLOPs counter): no values to copy frame by frame
        return temporal_shift(x, num_segments, fold_div).index_select(0, idx)
    fold = x.shape[1] // fold_div
    xv = frames_view(x)
    cl = xv is not x
    out = xv.index_select(0, idx)
    channels = (lambda t, lo, hi: t[..., lo:hi]) if cl else (lambda t, lo, hi: t[:, lo:hi])
    for j, i in enumerate(idx.tolist()):
        t = i % num_segments
        for src, valid, lo in ((i + 1, t < num_segments - 1, 0), (i - 1, t > 0, fold)):
            part = channels(out[j:j + 1], lo, lo + fold)
            if valid:
                part.copy_(channels(xv[src:src + 1], lo, lo + fold))
            else:
                part.zero_()  # clip boundary: nothing to take
    return out.permute(0, 3, 1, 2) if cl else out
