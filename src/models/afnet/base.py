"""What AF-ResNet and AF-MobileNetV3 share: the switches, temperature, forced ratio, and the forward through
the early layers, the AF stages and the late layers to the TSN head."""

from __future__ import annotations

import math

import torch
from torch import nn

from src.models.afnet.stage import FocalMode
from src.models.output import VideoOutput
from src.models.video import consensus, fold_frames

CHOICES = {"selection": ("hard", "soft"), "fusion": ("dynamic", "add"), "mask_mode": ("output", "input"),
           "focal_compute": ("auto", "masked", "sliced")}


def check_choice(**switches: str) -> None:
    for key, value in switches.items():
        if value not in CHOICES[key]:
            raise ValueError(f"{key}={value!r}: choose one of {CHOICES[key]}")


def forced_ratios(ratio: float, num_segments: int, num_masks: int) -> list[float]:
    """Per-mask forced ratios whose selected frames average exactly ratio * T over the masks (to a frame):
    mask i selects k_i = R(r T (i+1)) - R(r T i) frames, R rounding half up; at T=12, r=0.4 that is
    5, 5, 4, 5, 5, ... (4.8 frames on average) where one ratio for all would select 5 (0.417)."""
    total = [math.floor(ratio * num_segments * i + 0.5) for i in range(num_masks + 1)]
    return [(total[i + 1] - total[i]) / num_segments for i in range(num_masks)]


def check_forced(ratio: float | list[float] | None, num_masks: int) -> float | list[float] | None:
    if isinstance(ratio, (list, tuple)):
        if len(ratio) != num_masks:
            raise ValueError(f"{len(ratio)} forced ratios for a model with {num_masks} masks")
        return [float(r) for r in ratio]
    return ratio


class AFNet(nn.Module):
    """Base of the AFNet models. Subclasses build `stages` (`AFStage`s), `dropout`, `fc` (the TSN head) and
    `num_masks`, and define `early_features` (frames -> the first AF stage's input) and `late_features` (the last
    AF stage's output -> per-frame features (N*T, C)).

    focal_compute: "auto" (masked in training, sliced in eval) | "masked" | "sliced".
    selection: "hard" (Gumbel) | "soft" (Table S4: sigmoid weights, every frame computed, no ratio loss).
    mask_mode: "output" | "input" (see `FocalMode`). eval_gumbel_noise: Gumbel noise in eval mode too.
    """

    fast_paths = "auto"  # see `build_video_model`

    def __init__(self, num_segments: int, selection: str = "hard", fusion: str = "dynamic",
                 mask_mode: str = "output", focal_compute: str = "auto", eval_gumbel_noise: bool = False):
        super().__init__()
        check_choice(selection=selection, fusion=fusion, mask_mode=mask_mode, focal_compute=focal_compute)
        self.num_segments, self.selection, self.mask_mode = num_segments, selection, mask_mode
        self.focal_compute, self.eval_gumbel_noise = focal_compute, eval_gumbel_noise
        self.uses_ratio_loss = selection == "hard"
        self.tau, self.forced_ratio = 1.0, None
        self.num_masks = 0

    def set_temperature(self, tau: float) -> None:
        self.tau = float(tau)

    def set_forced_ratio(self, ratio: float | list[float] | None) -> None:
        """Select exactly round(r*T) frames per video at every mask, or per mask from a list of `num_masks`
        ratios (see `forced_ratios`); None: the navigation decides."""
        self.forced_ratio = check_forced(ratio, self.num_masks)

    def focal_mode(self) -> FocalMode:
        soft = self.selection == "soft"
        sliced = not soft and (self.focal_compute == "sliced" or (self.focal_compute == "auto" and not self.training))
        forced = tuple(self.forced_ratio) if isinstance(self.forced_ratio, list) else self.forced_ratio
        return FocalMode(self.tau, self.training or self.eval_gumbel_noise, forced, soft, sliced, self.mask_mode)

    def early_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def late_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, list, list]:
        """(N*T, 3, H, W) -> per-frame features (N*T, C), masks, spatial masks."""
        mode = self.focal_mode()
        x = self.early_features(x)
        masks, spatial = [], []
        for stage in self.stages:
            x, m, s = stage(x, mode)
            masks += m
            spatial += s
        return self.late_features(x), masks, spatial

    def forward(self, x: torch.Tensor) -> VideoOutput:
        """(N, T, 3, H, W) or (N*T, 3, H, W) -> VideoOutput(logits (N, K), masks, spatial_masks)."""
        feats, masks, spatial = self.features(fold_frames(x, self.num_segments))
        logits = consensus(self.fc(self.dropout(feats)), self.num_segments)
        return VideoOutput(logits, masks, spatial)
