"""Analytic multiply-accumulate counts per video, with the official counter's conventions (SPEC §5).

Counted: convolutions (C_in·C_out·H_out·W_out·k²/groups), linear layers, max/avg pooling (k²·C·H_out·W_out,
i.e. 9·C·H·W for the 3x3 pools) and global average pooling (C·H·W). Not counted: BN, activations,
element-wise ops, interpolation, the temporal shift. Convolutions tagged `focal_mask_index = i` (a focal
block's residual function) are kept apart: their cost scales with mask i's realised selection ratio (and
the spatial ratio, when spatial masks are on). "GFLOPs" in the paper are these GMACs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

_POOLS = (nn.MaxPool2d, nn.AvgPool2d)


@dataclass
class MacsProfile:
    """GMACs per video of a model at one input size: `static` (paid whatever the masks), `focal[i]` (the convs
    gated by mask i, at ratio 1), `params` (count)."""

    static: float
    focal: list[float] = field(default_factory=list)
    params: int = 0

    def gmacs(self, ratios: float | list[float] = 1.0, spatial_ratios: float | list[float] | None = None) -> float:
        """GMACs per video when mask i selects a fraction ratios[i] of the frames (one float: every mask)."""
        n = len(self.focal)
        r = [float(ratios)] * n if isinstance(ratios, (int, float)) else list(ratios)
        if len(r) != n:
            raise ValueError(f"{len(r)} ratios for a model with {n} masks")
        if spatial_ratios is not None:
            s = [float(spatial_ratios)] * n if isinstance(spatial_ratios, (int, float)) else list(spatial_ratios)
            r = [a * b for a, b in zip(r, s, strict=True)]
        return self.static + sum(f * x for f, x in zip(self.focal, r))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _layer_macs(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size[0] * module.kernel_size[1]
        return out.numel() * (module.in_channels // module.groups) * k
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features
    if isinstance(module, _POOLS):
        k = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
        return out.numel() * k * k
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        return inp.numel()
    return 0


@torch.no_grad()
def profile_macs(model: nn.Module, num_segments: int, input_size: int = 224) -> MacsProfile:
    """Count one video of `num_segments` frames at input_size² with every frame selected (forced ratio 1).

    The model is run in eval mode on zeros and restored to its previous mode and forced ratio afterwards.
    Works for any model whose layers are nn.Modules (hooks read the real output shapes).
    """
    totals: dict[int | None, int] = {}

    def hook(module, args, out):
        macs = _layer_macs(module, args[0], out)
        if macs:
            key = getattr(module, "focal_mask_index", None)
            totals[key] = totals.get(key, 0) + macs

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear, *_POOLS, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d))]
    was_training = model.training
    forced = getattr(model, "forced_ratio", None)
    try:
        model.eval()
        if hasattr(model, "set_forced_ratio"):
            model.set_forced_ratio(1.0)
        model(torch.zeros(1, num_segments, 3, input_size, input_size))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
        if hasattr(model, "set_forced_ratio"):
            model.set_forced_ratio(forced)
    n_masks = 1 + max((k for k in totals if k is not None), default=-1)
    return MacsProfile(static=totals.get(None, 0) / 1e9, focal=[totals.get(i, 0) / 1e9 for i in range(n_masks)],
                       params=count_params(model))
