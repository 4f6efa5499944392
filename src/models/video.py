"""TSN / TSM video classifier: a per-frame 2D trunk, a new classifier, average consensus over T."""

from __future__ import annotations

import torch
from torch import nn

from src.models.output import VideoOutput


def new_classifier(in_features: int, num_classes: int, dropout: float) -> nn.Sequential:
    """Dropout, then Linear initialised N(0, 0.001) with zero bias (the TSN fine-tuning head)."""
    fc = nn.Linear(in_features, num_classes)
    nn.init.normal_(fc.weight, 0, 0.001)
    nn.init.zeros_(fc.bias)
    return nn.Sequential(nn.Dropout(dropout), fc)


def fold_frames(x: torch.Tensor, num_segments: int) -> torch.Tensor:
    """(N, T, 3, H, W) -> (N*T, 3, H, W); an already folded (N*T, 3, H, W) batch passes through."""
    if x.dim() == 5:
        if x.shape[1] != num_segments:
            raise ValueError(f"clip has {x.shape[1]} frames, the model was built for num_segments={num_segments}")
        return x.flatten(0, 1)
    return x


def consensus(frame_logits: torch.Tensor, num_segments: int) -> torch.Tensor:
    """(N*T, K) per-frame logits -> (N, K) video logits, averaged over T (no softmax before)."""
    return frame_logits.view(-1, num_segments, frame_logits.shape[-1]).mean(1)


class VideoClassifier2D(nn.Module):
    """TSN (shift off) or TSM (trunk built with the residual shift).

    trunk: `features((N*T, 3, H, W)) -> (N*T, C)` and attribute `out_channels` = C (`ResNet`, `MobileNetV3`).
    head: Dropout(dropout) -> new Linear(C, num_classes), weights N(0, 0.001), bias 0.
    forward: (N, T, 3, H, W) or (N*T, 3, H, W) -> VideoOutput(logits (N, K)), the mean over T of the
        per-frame logits, no masks.
    """

    uses_ratio_loss = False
    fast_paths = "auto"  # see `build_video_model`

    def __init__(self, trunk: nn.Module, num_classes: int, num_segments: int, dropout: float = 0.5):
        super().__init__()
        self.trunk = trunk
        self.num_segments = num_segments
        self.head = new_classifier(trunk.out_channels, num_classes, dropout)

    def set_temperature(self, tau: float) -> None:
        """No navigation: nothing to do."""

    def set_forced_ratio(self, ratio: float | None) -> None:
        """No navigation: nothing to do."""

    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(N, T, 3, H, W) or (N*T, 3, H, W) -> per-frame logits (N*T, K)."""
        x = fold_frames(x, self.num_segments)
        if x.shape[0] % self.num_segments:
            raise ValueError(f"batch of {x.shape[0]} frames is not a multiple of num_segments={self.num_segments}")
        return self.head(self.trunk.features(x))

    def forward(self, x: torch.Tensor) -> VideoOutput:
        return VideoOutput(consensus(self.frame_logits(x), self.num_segments))
