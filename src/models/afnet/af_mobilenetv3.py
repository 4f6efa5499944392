"""AF-MobileNetV3-Large for video: always AFNet-TSM, two AF stages, 5 navigation masks.

stem (3x3 s2, h-swish) -> `early` (head block, stage 1 with two stride-2 blocks) -> AF-2 (focal at 1/8,
ample at 1/16) -> AF-3 (focal at 1/16, ample at 1/32, fusion block stride 1) -> `late` (stages 4 and 5)
-> 1x1 conv 960 + h-swish -> GAP -> Linear 960->1280 + h-swish -> dropout -> Linear 1280->K -> mean over T.
4.51 M parameters at K=174, those of the official checkpoint.

Differences from AF-ResNet [C]: the ample branch halves the resolution but keeps the channels (no
projection before the fusion); focal blocks group their pointwise convs and their projection shortcut
(groups=2), depthwise convs unchanged; one navigation per ample block, fed by that block's input; the
dynamic fusion's linears have biases and no activation follows the blend; in every SE block (ample, focal,
fusion and late blocks) the squeeze-excite acts on the depthwise BN output before the activation
(`InvertedResidual(se_before_act=True)`), where the standard MobileNetV3 applies it after.

Decisions [I]:
- the TSM residual shift sits at the start of the residual function of every block, including blocks
  without a skip connection (there the whole output is built from the shifted input); focal blocks shift
  the full-T tensor, then mask or gather.
- every conv of a focal block's residual function (expand, depthwise, SE, project) is gated by the mask
  and tagged `focal_mask_index`; the projection shortcut is not.
- the final Linear 1280->K is the TSN head: initialised N(0, 0.001), zero bias; other linears N(0, 0.01).
- `width_mult` scales every width as `src.models.mobilenetv3` does (for tests); 1.0 is the real model.
"""

from __future__ import annotations

import torch
from torch import nn

from src.models.afnet.base import AFNet
from src.models.afnet.blocks import gated_residual
from src.models.afnet.fusion import AddFusion, DynamicFusion
from src.models.afnet.navigation import Navigation
from src.models.afnet.stage import AFStage
from src.models.mobilenetv3 import ConvBNAct, HSwish, InvertedResidual, init_weights, make_divisible

# (kernel, expansion, out channels, SE, h-swish, stride)
EARLY = [(3, 1, 16, False, False, 1), (3, 4, 24, False, False, 2), (3, 3, 24, False, False, 2)]
AF_STAGES = [  # (ample/focal blocks, fusion block); focal blocks use the same configs at stride 1
    ([(5, 3, 40, True, False, 2), (5, 3, 40, True, False, 1)], (5, 3, 40, True, False, 2)),
    ([(3, 6, 80, False, True, 2), (3, 2.5, 80, False, True, 1), (3, 2.3, 80, False, True, 1)],
     (3, 2.3, 80, False, True, 1)),
]
LATE = [(3, 6, 112, True, True, 1), (3, 6, 112, True, True, 1), (5, 6, 160, True, True, 2),
        (5, 6, 160, True, True, 1), (5, 6, 160, True, True, 1)]


class FocalInvertedResidual(nn.Module):
    """A focal MobileNetV3 block: pointwise convs and projection shortcut grouped (groups=2), stride 1, its
    residual gated per frame (`gated_residual`); the same forward contract as `blocks.FocalResidual`.

    forward(x (N*T, C_in, H, W), gate, index=None, mask_mode="output") -> (N*T, C_out, H, W).
    """

    def __init__(self, cin: int, exp: int, cout: int, kernel: int, use_se: bool, use_hs: bool, mask_index: int,
                 num_segments: int):
        super().__init__()
        self.block = InvertedResidual(cin, exp, cout, kernel, 1, use_se, use_hs, pw_groups=2,
                                      shift_segments=num_segments, proj_shortcut=True, se_before_act=True)
        self.mask_index = mask_index
        for conv in self.block.residual_convs():
            conv.focal_mask_index = mask_index  # the FLOPs counter scales these by the realised ratio

    def forward(self, x: torch.Tensor, gate: torch.Tensor, index: torch.Tensor | None = None,
                mask_mode: str = "output") -> torch.Tensor:
        return gated_residual(self.block, x, gate, index, mask_mode)


def mobilenet_af_stage(cin: int, blocks: list, fuse_cfg: tuple, width_mult: float, first_mask: int,
                       num_segments: int, fusion: str, mix_frames: bool, spatial: bool, nav_init_bias) -> AFStage:
    """An AF stage of MobileNetV3: (N*T, cin, H, W) -> (N*T, C_out, H/s, W/s); the ample branch keeps its
    channels, so the projection is an identity. The stage's `out_channels` is C_out."""
    t = num_segments
    ample, focal, nav, c = [], [], [], cin
    for i, (k, e, out, se, hs, s) in enumerate(blocks):
        cout, exp = make_divisible(out * width_mult), make_divisible(c * e)
        nav.append(Navigation(c, t, mix_frames, spatial, nav_init_bias))
        ample.append(InvertedResidual(c, exp, cout, k, s, se, hs, shift_segments=t, se_before_act=True))
        focal.append(FocalInvertedResidual(c, exp, cout, k, se, hs, first_mask + i, t))
        c = cout
    fuse = DynamicFusion(c, bias=True, relu=False) if fusion == "dynamic" else AddFusion(c, relu=False)
    k, e, out, se, hs, s = fuse_cfg
    fusion_block = InvertedResidual(c, make_divisible(c * e), make_divisible(out * width_mult), k, s, se, hs,
                                    shift_segments=t, se_before_act=True)
    stage = AFStage(ample, focal, nav, nn.Identity(), fuse, fusion_block)
    stage.out_channels = fusion_block.out_ch
    return stage


def plain_blocks(cfgs: list, cin: int, width_mult: float, num_segments: int) -> tuple[nn.Sequential, int]:
    blocks = []
    for k, e, out, se, hs, s in cfgs:
        cout = make_divisible(out * width_mult)
        blocks.append(InvertedResidual(cin, make_divisible(cin * e), cout, k, s, se, hs, shift_segments=num_segments,
                                       se_before_act=True))
        cin = cout
    return nn.Sequential(*blocks), cin


class AFMobileNetV3(AFNet):
    """AFNet-TSM on MobileNetV3-Large (see the module docstring); switches as `AFNet` (the shift is always on).

    forward: (N, T, 3, H, W) or (N*T, 3, H, W), H and W divisible by 32 -> VideoOutput(logits (N, K),
    masks: 5 of (N*T, 1, 1, 1), spatial_masks when rs is set). 4.51 M parameters at K=174.
    """

    def __init__(self, num_classes: int = 174, num_segments: int = 12, width_mult: float = 1.0,
                 selection: str = "hard", fusion: str = "dynamic", mask_mode: str = "output",
                 focal_compute: str = "auto", eval_gumbel_noise: bool = False, nav_mix_frames: bool = False,
                 rs: float | None = None, dropout: float = 0.5, nav_init_bias=(1.0, 10.0)):
        super().__init__(num_segments, selection, fusion, mask_mode, focal_compute, eval_gumbel_noise)
        t = num_segments
        c = make_divisible(16 * width_mult)
        self.stem = ConvBNAct(3, c, 3, 2, act=HSwish)
        self.early, c = plain_blocks(EARLY, c, width_mult, t)
        stages, first_mask = [], 0
        for blocks, fuse_cfg in AF_STAGES:
            stages.append(mobilenet_af_stage(c, blocks, fuse_cfg, width_mult, first_mask, t, fusion, nav_mix_frames,
                                             rs is not None, tuple(nav_init_bias)))
            c, first_mask = stages[-1].out_channels, first_mask + len(blocks)
        self.stages = nn.ModuleList(stages)
        self.num_masks = first_mask
        self.late, c = plain_blocks(LATE, c, width_mult, t)
        self.last_conv = ConvBNAct(c, 6 * c, 1, act=HSwish)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.embed = nn.Sequential(nn.Linear(6 * c, 1280), HSwish())
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1280, num_classes)
        init_weights(self)
        for nav in self.modules():
            if isinstance(nav, Navigation):
                nav.reset_bias(nav_init_bias)  # init_weights zeroes conv biases
        nn.init.normal_(self.fc.weight, 0, 0.001)

    def early_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.early(self.stem(x))

    def late_features(self, x: torch.Tensor) -> torch.Tensor:
        """The last AF stage's output -> the 1280-d embedding per frame (N*T, 1280)."""
        return self.embed(self.pool(self.last_conv(self.late(x))).flatten(1))
