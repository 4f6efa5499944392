"""One AF stage (ample and focal branches, navigation, fusion) and the mode object a forward threads through."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class FocalMode:
    """How one forward of an AFNet model selects frames and computes its focal branch (built once per forward).

    tau: Gumbel temperature. noise: Gumbel noise on (training, or the official noisy evaluation), else the
    argmax of the logits. forced: select exactly round(r*T) frames per video, one ratio for every mask or one
    per mask (indexed by the model-wide mask index); None: the navigation decides. soft: sigmoid weights per
    frame instead of hard choices. sliced: compute the focal blocks on the selected frames only (else masked,
    every frame computed). mask_mode: "output" (y = skip + m ⊙ F(x)) or "input" (y = skip + F(m ⊙ x)).
    """

    tau: float = 1.0
    noise: bool = False
    forced: float | tuple[float, ...] | None = None
    soft: bool = False
    sliced: bool = False
    mask_mode: str = "output"

    def forced_ratio(self, mask_index: int) -> float | None:
        return self.forced[mask_index] if isinstance(self.forced, tuple) else self.forced


def selected_frames(masks: list[torch.Tensor]) -> list[torch.Tensor]:
    """The positions of the selected frames (mask > 0.5) of each (N*T, 1, 1, 1) mask, in frame order, as (k_i,)
    index tensors on the masks' device: one host synchronisation (the counts) for all the masks together.
    On the meta device (shapes only, the FLOPs counter) every frame counts as selected."""
    sel = torch.cat([m.reshape(1, -1) for m in masks]) > 0.5  # (M, N*T)
    order = torch.sort((~sel).to(torch.uint8), dim=1, stable=True).indices  # selected frames first, in order
    counts = [sel.shape[1]] * len(masks) if sel.is_meta else sel.sum(1).tolist()
    return [order[i, :k] for i, k in enumerate(counts)]


class AFStage(nn.Module):
    """One AF stage: (N*T, C_in, H, W) -> (N*T, C_out, H/s, W/s), plus its masks.

    ample[i], focal[i], nav[i]: block i of the ample branch (all frames, half resolution), of the focal branch
    (full resolution, gated per frame by mask i) and its navigation, fed by ample block i's input. proj: the
    ample output's projection to the focal width; fuse: `DynamicFusion` / `AddFusion`; fusion_block: the plain
    block after the fusion, carrying the stage's stride.

    forward(x, mode) -> (y, masks, spatial_masks): the masks depend on the ample branch only, so it runs first
    with every navigation, then (sliced) one synchronisation gives every mask's selected frames, then the
    focal branch runs. masks: (N*T, 1, 1, 1) each; spatial_masks: (N*T, 1, H, W) at the focal resolution,
    one per mask when the navigation has a spatial head, else empty.
    """

    def __init__(self, ample: list[nn.Module], focal: list[nn.Module], nav: list[nn.Module], proj: nn.Module,
                 fuse: nn.Module, fusion_block: nn.Module):
        super().__init__()
        self.ample, self.focal, self.nav = nn.ModuleList(ample), nn.ModuleList(focal), nn.ModuleList(nav)
        self.proj, self.fuse, self.fusion_block = proj, fuse, fusion_block

    def navigate(self, x: torch.Tensor, mode: FocalMode) -> tuple[torch.Tensor, list, list]:
        """The ample branch with every navigation: (ample output, masks, spatial masks at x's resolution)."""
        a, masks, spatial = x, [], []
        for nav, ample, focal in zip(self.nav, self.ample, self.focal):
            m, s = nav(a, mode.tau, mode.noise, mode.forced_ratio(focal.mask_index), mode.soft)
            masks.append(m)
            if s is not None:
                spatial.append(F.interpolate(s, size=x.shape[-2:], mode="nearest"))
            a = ample(a)
        return a, masks, spatial

    def forward(self, x: torch.Tensor, mode: FocalMode) -> tuple[torch.Tensor, list, list]:
        a, masks, spatial = self.navigate(x, mode)
        gates = [m * s for m, s in zip(masks, spatial)] if spatial else masks
        index = selected_frames(masks) if mode.sliced else [None] * len(masks)
        f = x
        for focal, gate, idx in zip(self.focal, gates, index):
            f = focal(f, gate, idx, mode.mask_mode)
        return self.fusion_block(self.fuse(self.proj(a), f)), masks, spatial
