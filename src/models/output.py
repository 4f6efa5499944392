"""What every video model's forward returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class VideoOutput:
    """Forward result of a video classifier.

    logits: (N, K) video-level logits, the average over T of the per-frame logits (TSN consensus).
    masks: one temporal mask per focal block, each (N*T, 1, 1, 1) with values in {0, 1}
        (straight-through, so it carries gradients in training); empty for TSN/TSM.
    spatial_masks: one spatial mask per focal block, each (N*T, 1, H, W) in {0, 1}, when `rs` is set.
    """

    logits: torch.Tensor
    masks: list[torch.Tensor] = field(default_factory=list)
    spatial_masks: list[torch.Tensor] = field(default_factory=list)

    def mask_ratios(self) -> torch.Tensor:
        """(M,) float32 realised selection ratio of each mask (mean over all N*T frames of the batch), on the
        masks' device: no host synchronisation."""
        if not self.masks:
            return self.logits.new_zeros(0, dtype=torch.float32)
        return torch.cat([m.detach().reshape(1, -1) for m in self.masks]).float().mean(1)

    def spatial_mask_ratios(self) -> torch.Tensor:
        """(M,) float32 mean of each spatial mask, on the masks' device (empty without spatial masks)."""
        if not self.spatial_masks:
            return self.logits.new_zeros(0, dtype=torch.float32)
        return torch.stack([m.detach().float().mean() for m in self.spatial_masks])

    def ratios(self) -> list[float]:
        """`mask_ratios` as Python floats (one host synchronisation for all masks)."""
        return self.mask_ratios().tolist()

    def spatial_ratios(self) -> list[float]:
        return self.spatial_mask_ratios().tolist()
