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

    def ratios(self) -> list[float]:
        """Realised selection ratio of each mask: mean over all N*T frames of the batch."""
        return [float(m.detach().float().mean()) for m in self.masks]

    def spatial_ratios(self) -> list[float]:
        return [float(m.detach().float().mean()) for m in self.spatial_masks]
