"""Clip transforms on tensors, as the official TSN/AFNet pipeline: frames resized to 240x320 (H x W), a
multi-scale crop (sizes 240 x {1, .875, .75, .66}, 13 fixed offsets) resized to 224 in training, a centre crop
at evaluation, a horizontal flip except for direction-sensitive datasets, ImageNet mean / std. A clip is uint8
(T, H, W, 3) on input and float (T, 3, h, w), normalised, on output; the same crop and flip apply to every frame
of the clip.

Speed: the geometry (resize, crop, flip) runs on uint8 in channels-last memory, where torch's bilinear
resampling is ~10x faster than on float, and the clip becomes float once, in the normalisation.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
SCALES = (1.0, 0.875, 0.75, 0.66)


def channels_first(clip: torch.Tensor) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> (T, 3, H, W) view (channels-last memory, no copy)."""
    return clip.permute(0, 3, 1, 2)


def to_float(clip: torch.Tensor) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float (T, 3, H, W) in [0, 255]."""
    return channels_first(clip).float()


def resize(clip: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(T, 3, H, W) uint8 or float -> (T, 3, *size), bilinear, antialiased when shrinking (aspect ignored)."""
    if tuple(clip.shape[-2:]) == tuple(size):
        return clip
    return F.interpolate(clip, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)


def normalise(clip: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) in [0, 255] (uint8 or float) -> float32 ImageNet-normalised, contiguous."""
    scale = (1.0 / (255.0 * STD)).view(3, 1, 1)
    shift = (MEAN / STD).view(3, 1, 1)
    # Channels-first contiguous *before* the arithmetic: broadcasting a (3, 1, 1) factor over channels-last
    # memory (innermost dim of 3) is ~10x slower than over contiguous planes, and the uint8 copy is 4x smaller
    # than the float one. Same operations in the same order, so the values are unchanged.
    if clip.dtype == torch.uint8:
        return clip.contiguous().float().mul_(scale).sub_(shift)
    return clip.contiguous() * scale - shift


def crop_sizes(h: int, w: int, crop: int) -> list[tuple[int, int]]:
    """(crop_h, crop_w) candidates: scales of min(H, W), sizes within 3 px of `crop` snapped to it, and
    width / height scale indices at most one apart."""
    base = min(h, w)
    sizes = [int(base * s) for s in SCALES]
    sizes = [crop if abs(s - crop) < 3 else s for s in sizes]
    return [(sizes[j], sizes[i]) for i in range(len(sizes)) for j in range(len(sizes)) if abs(i - j) <= 1]


def fixed_offsets(h: int, w: int, ch: int, cw: int) -> list[tuple[int, int]]:
    """The 13 (top, left) crop positions: 4 corners, centre, 4 edge centres, 4 quarter points."""
    hs, ws = (h - ch) // 4, (w - cw) // 4
    grid = [(0, 0), (0, 4), (4, 0), (4, 4), (2, 2), (2, 0), (2, 4), (4, 2), (0, 2), (1, 1), (1, 3), (3, 1), (3, 3)]
    return [(a * hs, b * ws) for a, b in grid]


def multiscale_crop(clip: torch.Tensor, crop: int, rng: np.random.Generator) -> torch.Tensor:
    """Random scale pair and one of the 13 fixed offsets, then resize to crop x crop. (T,3,H,W) -> (T,3,c,c)."""
    h, w = clip.shape[-2:]
    ch, cw = crop_sizes(h, w, crop)[int(rng.integers(len(crop_sizes(h, w, crop))))]
    offs = fixed_offsets(h, w, ch, cw)
    top, left = offs[int(rng.integers(len(offs)))]
    return resize(clip[..., top: top + ch, left: left + cw], (crop, crop))


def centre_crop(clip: torch.Tensor, crop: int) -> torch.Tensor:
    h, w = clip.shape[-2:]
    top, left = (h - crop) // 2, (w - crop) // 2
    return clip[..., top: top + crop, left: left + crop]


def three_crops(clip: torch.Tensor, crop: int) -> list[torch.Tensor]:
    """Crops at the start, centre and end of the longer side (centred on the shorter one)."""
    h, w = clip.shape[-2:]
    if w >= h:
        top = (h - crop) // 2
        return [clip[..., top: top + crop, x: x + crop] for x in (0, (w - crop) // 2, w - crop)]
    left = (w - crop) // 2
    return [clip[..., y: y + crop, left: left + crop] for y in (0, (h - crop) // 2, h - crop)]


def train_transform(clip: torch.Tensor, scale_size, crop: int, flip: bool, rng: np.random.Generator):
    """uint8 (T,H,W,3) -> float (T,3,crop,crop): resize to scale_size, multi-scale crop, flip (p=0.5 if allowed)."""
    x = multiscale_crop(resize(channels_first(clip), scale_size), crop, rng)
    if flip and rng.random() < 0.5:
        x = x.flip(-1)
    return normalise(x)


def eval_transform(clip: torch.Tensor, scale_size, crop: int, num_crops: int = 1) -> torch.Tensor:
    """uint8 (T,H,W,3) -> (T,3,crop,crop) centre crop, or (num_crops=3) a (3,T,3,crop,crop) stack."""
    x = resize(channels_first(clip), scale_size)
    if num_crops == 1:
        return normalise(centre_crop(x, crop))
    if num_crops == 3:
        return torch.stack([normalise(c) for c in three_crops(x, crop)])
    raise ValueError(f"test_num_crops={num_crops}: use 1 or 3")


def build_train_transform(scale_size=(240, 320), crop_size: int = 224, flip: bool = True):
    """The training clip transform as a callable `(uint8 clip (T,H,W,3), rng) -> float (T,3,crop,crop)`."""
    scale_size = tuple(scale_size)

    def transform(clip: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        return train_transform(clip, scale_size, crop_size, flip, rng)

    return transform


def build_eval_transform(scale_size=(240, 320), crop_size: int = 224, num_crops: int = 1):
    """The evaluation protocol's spatial part as a callable `uint8 clip (T,H,W,3) -> float (T,3,crop,crop)`
    (num_crops 1) or `(3,T,3,crop,crop)` (num_crops 3); the temporal part (clips) is the sampler's."""
    scale_size = tuple(scale_size)
    if num_crops not in (1, 3):
        raise ValueError(f"test_num_crops={num_crops}: use 1 or 3")

    def transform(clip: torch.Tensor) -> torch.Tensor:
        return eval_transform(clip, scale_size, crop_size, num_crops)

    return transform
