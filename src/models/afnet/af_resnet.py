"""AF-ResNet-18/34/50/101 for video.

Stem, three AF stages, a plain stage 4, then the TSN head (dropout, new linear, average over T).
An AF stage of a ResNet stage with n blocks runs n-1 ample blocks (all frames, half resolution, half width;
the first strided), n-1 focal blocks (full resolution and width, grouped convs, each gated by its own
navigation mask), then projects and upsamples the ample output, fuses the two branches and ends with one
plain "fusion" block that carries the stage's stride (1 in the third AF stage). The decisions behind the
ResNet-18/34 and ResNet-101 layouts are listed in `src.models.afnet`.
"""

from __future__ import annotations

import torch
from torch import nn

from src.models.afnet.base import AFNet, forced_ratios  # noqa: F401  (forced_ratios: public here too)
from src.models.afnet.blocks import FocalResidual, Residual
from src.models.afnet.fusion import AddFusion, DynamicFusion
from src.models.afnet.navigation import Navigation
from src.models.afnet.stage import AFStage
from src.models.layers import conv_bn
from src.models.resnet import LAYOUTS as RESNET_LAYOUTS

# the ResNet layouts, except ResNet-101: the official AF-ResNet101 stages have [4, 8, 18, 3] blocks
LAYOUTS = {**RESNET_LAYOUTS, 101: ("bottleneck", (4, 8, 18, 3))}


def resnet_af_stage(kind: str, cin: int, cout: int, blocks: int, stride: int, first_mask: int, num_segments: int,
                    shift: bool, fusion: str, mix_frames: bool, spatial: bool, nav_init_bias) -> AFStage:
    """The AF stage of a ResNet stage of `blocks` blocks: (N*T, cin, H, W) -> (N*T, cout, H/stride, W/stride)."""
    n, half, t = blocks - 1, cout // 2, num_segments if shift else 0
    ample = [Residual(kind, cin if i == 0 else half, half, 2 if i == 0 else 1, last_relu=i < n - 1, shift_segments=t)
             for i in range(n)]
    focal = [FocalResidual(kind, cin if i == 0 else cout, cout, first_mask + i, last_relu=i < n - 1,
                           shift_segments=t) for i in range(n)]
    nav = [Navigation(cin if i == 0 else half, num_segments, mix_frames, spatial, nav_init_bias) for i in range(n)]
    fuse = DynamicFusion(cout) if fusion == "dynamic" else AddFusion(cout)
    return AFStage(ample, focal, nav, nn.Sequential(*conv_bn(half, cout, 1)), fuse,
                   Residual(kind, cout, cout, stride, shift_segments=t))


class AFResNet(AFNet):
    """AFNet on ResNet-18/34/50/101 (AFNet-TSM with `shift`); switches as `AFNet`.

    forward: (N, T, 3, H, W) or (N*T, 3, H, W) with H, W divisible by 32 -> VideoOutput(logits (N, K),
    masks: one (N*T, 1, 1, 1) per focal block, spatial_masks when rs is set).
    shift: the TSM residual shift (over the clip's num_segments frames) in every block.
    nav_init_bias: initial (skip, select) navigation bias, (1, 10) as the official code.
    """

    def __init__(self, depth: int = 50, num_classes: int = 1000, num_segments: int = 8, width: int = 64,
                 shift: bool = False, selection: str = "hard", fusion: str = "dynamic", mask_mode: str = "output",
                 focal_compute: str = "auto", eval_gumbel_noise: bool = False, nav_mix_frames: bool = False,
                 rs: float | None = None, dropout: float = 0.5, nav_init_bias=(1.0, 10.0)):
        super().__init__(num_segments, selection, fusion, mask_mode, focal_compute, eval_gumbel_noise)
        if depth not in LAYOUTS:
            raise ValueError(f"AF-ResNet depth {depth}: choose one of {sorted(LAYOUTS)}")
        kind, counts = LAYOUTS[depth]
        expansion = 4 if kind == "bottleneck" else 1
        t = num_segments if shift else 0
        self.stem = nn.Sequential(*conv_bn(3, width, 7, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        cin, first_mask, stages = width, 0, []
        for i, n in enumerate(counts[:3]):
            cout = width * 2**i * expansion
            stages.append(resnet_af_stage(kind, cin, cout, n, 2 if i < 2 else 1, first_mask, num_segments, shift,
                                          fusion, nav_mix_frames, rs is not None, tuple(nav_init_bias)))
            cin, first_mask = cout, first_mask + n - 1
        self.stages = nn.ModuleList(stages)
        cout = width * 8 * expansion
        self.stage4 = nn.Sequential(*(Residual(kind, cin if j == 0 else cout, cout, 2 if j == 0 else 1,
                                               shift_segments=t) for j in range(counts[3])))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cout, num_classes)
        self.num_masks = first_mask
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        nn.init.normal_(self.fc.weight, 0, 0.001)
        nn.init.zeros_(self.fc.bias)

    def early_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stem(x)

    def late_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last AF stage's output -> pooled stage-4 features (N*T, 8 * width * expansion)."""
        return self.pool(self.stage4(x)).flatten(1)
