"""Analytic multiply-accumulate counts per video, with the official counter's conventions.

Counted: convolutions (C_in·C_out·H_out·W_out·k²/groups), linear layers (in·out per row), max/avg pooling
(k²·C·H_out·W_out, i.e. 9·C·H·W for the 3x3 pools) and global average pooling modules (C·H·W of the input).
Not counted: BN, activations, element-wise ops, interpolation, the temporal shift, functional pooling.
Convolutions tagged `focal_mask_index = i` (a focal block's residual function) are kept apart: their cost
scales with mask i's realised selection ratio, times the spatial ratio when spatial masks are on.
The paper's "GFLOPs" are these GMACs; `FlopCounterMode` reports 2 FLOPs per MAC.
A soft-selection model (`selection == "soft"`, AFNet's soft-weight variant) weights frames instead of skipping
them, so it pays every focal conv on every frame: its profile has `every_frame` set and `gmacs` ignores the
ratios (AF-ResNet-50 at 224²: 2.889 GMACs per frame, 23.11 per 8-frame video, 34.66 at 12 frames).

Typical use: profile once (one forward of one video), then `profile.gmacs(out.ratios())` per batch.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

_POOLS = (nn.MaxPool2d, nn.AvgPool2d)
_GAPS = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
_COUNTED = (nn.Conv2d, nn.Linear, *_POOLS, *_GAPS)


@dataclass
class MacsProfile:
    """GMACs per video of one model at one input size and clip length.

    static: GMACs paid whatever the masks do (everything not tagged `focal_mask_index`).
    focal: focal[i] = GMACs of the convs gated by mask i when it selects every frame (ratio 1).
    params: parameter count of the model.
    every_frame: the model computes the focal convs on every frame whatever its masks say (soft selection):
        `gmacs` then counts ratio 1 for every mask.
    """

    static: float
    focal: list[float] = field(default_factory=list)
    params: int = 0
    every_frame: bool = False

    def gmacs(self, ratios: float | list[float] = 1.0, spatial_ratios: float | list[float] | None = None) -> float:
        """GMACs per video when mask i selects a fraction ratios[i] of the frames (one float: every mask) and,
        with spatial masks, a fraction spatial_ratios[i] of the positions (both ignored when `every_frame`)."""
        r = self._per_mask(ratios, "ratios")
        if spatial_ratios is not None:
            r = [a * b for a, b in zip(r, self._per_mask(spatial_ratios, "spatial_ratios"))]
        if self.every_frame:
            r = [1.0] * len(r)
        return self.static + sum(f * x for f, x in zip(self.focal, r))

    def _per_mask(self, values: float | list[float], name: str) -> list[float]:
        n = len(self.focal)
        if isinstance(values, (int, float)):
            return [float(values)] * n
        values = [float(v) for v in values]
        if len(values) != n:
            raise ValueError(f"{len(values)} {name} for a model with {n} masks")
        return values


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return sum(p.numel() for p in model.parameters())


def layer_macs(module: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    """MACs of one call of a counted layer, from its real input / output shapes (0 for other layers)."""
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size[0] * module.kernel_size[1]
        return out.numel() * (module.in_channels // module.groups) * k
    if isinstance(module, nn.Linear):
        return out.numel() * module.in_features
    if isinstance(module, _POOLS):
        k = module.kernel_size
        return out.numel() * (k * k if isinstance(k, int) else k[0] * k[1])
    if isinstance(module, _GAPS):
        return inp.numel()
    return 0


def _count(model: nn.Module, x: torch.Tensor, pools: bool) -> dict[int | None, int]:
    """MACs of one forward of `model` on x, keyed by `focal_mask_index` (None: not gated)."""
    totals: dict[int | None, int] = {}
    counted = _COUNTED if pools else (nn.Conv2d, nn.Linear)

    def hook(module, args, out):
        macs = layer_macs(module, args[0], out)
        if macs:
            key = getattr(module, "focal_mask_index", None)
            totals[key] = totals.get(key, 0) + macs

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, counted)]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return totals


@torch.no_grad()
def profile_macs(model: nn.Module, num_segments: int, input_size: int = 224, pools: bool = True,
                 meta: bool = True) -> MacsProfile:
    """Count one video of `num_segments` frames at input_size² with every frame selected.

    Runs a copy of the model in eval mode with `set_forced_ratio(1.0)`, so `model` itself is untouched.
    With meta=True the copy first runs on the meta device (shapes only, no arithmetic), where an AF stage takes
    every frame as selected (no values to read): right here, as every mask selects everything. A model whose forward
    still needs real values (e.g. `.item()`) is then run for real on zeros, on the model's device, as with
    meta=False. Hooks read the actual output shapes, so any model built from nn.Module layers is counted.
    pools=False leaves pooling out (conv + linear only, what `torch.utils.flop_counter.FlopCounterMode` sees).
    """
    totals = None
    if meta:
        try:
            net = _prepare(copy.deepcopy(model).to("meta"))
            totals = _count(net, torch.zeros(1, num_segments, 3, input_size, input_size, device="meta"), pools)
        except Exception:  # an op without a meta kernel or a data-dependent branch: count for real
            totals = None
    if totals is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        net = _prepare(copy.deepcopy(model))
        totals = _count(net, torch.zeros(1, num_segments, 3, input_size, input_size, device=device), pools)
    n_masks = 1 + max((k for k in totals if k is not None), default=-1)
    return MacsProfile(static=totals.get(None, 0) / 1e9, focal=[totals.get(i, 0) / 1e9 for i in range(n_masks)],
                       params=count_params(model), every_frame=getattr(model, "selection", "hard") == "soft")


def _prepare(net: nn.Module) -> nn.Module:
    net.eval()
    if hasattr(net, "set_forced_ratio"):
        net.set_forced_ratio(1.0)
    return net
