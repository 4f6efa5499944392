"""AF-ResNet-18/34/50/101 for video (SPEC §2.2-2.11).

Stem, three AF stages, a plain stage 4, then the TSN head (dropout, new linear, average over T).
An AF stage of a ResNet stage with n blocks runs n-1 ample blocks (all frames, half resolution, half width;
the first strided), n-1 focal blocks (full resolution and width, grouped convs, each gated by its own
navigation mask) in lockstep, then projects and upsamples the ample output, fuses the two branches and
ends with one plain "fusion" block that carries the stage's stride (1 in the third AF stage).

Decisions where the sources are silent or disagree (SPEC "Decisions", [I]):
- mask_mode "output" (default): y = skip(x) + m ⊙ F(x), so training equals sliced inference exactly;
  "input" reproduces the official F(m ⊙ x) (for the released checkpoints).
- evaluation masks are deterministic (argmax of the navigation logits) unless eval_gumbel_noise=True.
- ResNet-18/34 (not in the official code): BasicBlocks in both branches, ample at half width with a
  strided first block, focal 3x3 convs with groups=2, navigation and fusion as for ResNet-50; masks:
  R18 3 (1+1+1), R34 10 (2+3+5), R50 10, R101 27 (3+7+17: the official AF-ResNet101 stages are
  [4, 8, 18, 3] blocks, not ResNet-101's [3, 4, 23, 3]).
- spatial masks (rs): a per-position select/skip head on each navigation input, hard Gumbel, nearest-
  upsampled to the focal resolution, multiplying the focal residual with the temporal mask; FLOPs scale the
  focal convs by the spatial ratio too (the sliced path here skips frames, not positions).
- soft selection (Table S4): mask = sigmoid(select - skip logit) per frame, no Gumbel, every frame computed
  (never sliced), `uses_ratio_loss = False`.
- forced ratio: exactly round(r*T) frames per video, top-k of the select-minus-skip logit, ties to the
  earlier frame; spatial masks are then all ones.
- sliced input mode: skipped frames get skip + F(0), F run once per block on one zero frame; a hook-based
  FLOPs counter sees that extra frame (input mode only).
- dynamic fusion upsamples the ample output on the fly (fusion.py): same values, no upsampled copy.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from src.models.afnet.blocks import FocalResidual, Residual, conv_bn
from src.models.afnet.fusion import AddFusion, DynamicFusion
from src.models.afnet.navigation import Navigation
from src.models.frame_ops import frame_chunked
from src.models.output import VideoOutput
from src.models.video import consensus, fold_frames

LAYOUTS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3)),
           101: ("bottleneck", (4, 8, 18, 3))}  # the official AF-ResNet101 layout (SPEC §2.11)


def check_choice(selection: str, fusion: str, mask_mode: str, focal_compute: str) -> None:
    for key, value, choices in (("selection", selection, ("hard", "soft")), ("fusion", fusion, ("dynamic", "add")),
                                ("mask_mode", mask_mode, ("output", "input")),
                                ("focal_compute", focal_compute, ("auto", "masked", "sliced"))):
        if value not in choices:
            raise ValueError(f"{key}={value!r}: choose one of {choices}")


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


class AFStage(nn.Module):
    """One AF stage: (N*T, C_in, H, W) -> (N*T, C_out, H/s, W/s), plus its masks."""

    def __init__(self, kind: str, cin: int, cout: int, blocks: int, stride: int, first_mask: int, num_segments: int,
                 shift: bool, fusion: str, mix_frames: bool, spatial: bool, nav_init_bias=(1.0, 10.0)):
        super().__init__()
        n, half, t = blocks - 1, cout // 2, num_segments if shift else 0
        self.ample = nn.ModuleList(
            Residual(kind, cin if i == 0 else half, half, 2 if i == 0 else 1, last_relu=i < n - 1, shift_segments=t,
                     owns_input=i == 0)  # the stage input: the focal branch has read it already (forward)
            for i in range(n))
        self.focal = nn.ModuleList(
            FocalResidual(kind, cin if i == 0 else cout, cout, first_mask + i, last_relu=i < n - 1, shift_segments=t)
            for i in range(n))
        self.nav = nn.ModuleList(Navigation(cin if i == 0 else half, num_segments, mix_frames, spatial, nav_init_bias)
                                 for i in range(n))
        self.proj = nn.Sequential(*conv_bn(half, cout, 1))
        self.fuse = DynamicFusion(cout) if fusion == "dynamic" else AddFusion(cout)
        self.fusion_block = Residual(kind, cout, cout, stride, shift_segments=t, owns_input=True)

    def forward(self, x: torch.Tensor, tau: float, noise: bool, forced: float | list[float] | None, soft: bool,
                sliced: bool, mask_mode: str):
        """forced: one ratio for every mask, or a list indexed by the model-wide mask index. Without autograd
        x may be overwritten (the first ample block shifts it in place once the focal branch has read it)."""
        a = f = x
        masks, spatial_masks = [], []
        for i, (nav, ample, focal) in enumerate(zip(self.nav, self.ample, self.focal)):
            m, s = nav(a, tau, noise, forced[focal.mask_index] if isinstance(forced, list) else forced, soft)
            if s is not None:
                s = F.interpolate(s, size=f.shape[-2:], mode="nearest")
                spatial_masks.append(s)
            masks.append(m)
            f = focal(f, m, s, sliced, mask_mode, reuse_input=i > 0)  # only the stage input is shared (with a)
            a = ample(a)
        # f is the focal blocks' own output: without autograd the fusion may overwrite it (fuse upsamples a)
        return self.fusion_block(self.fuse(self.proj(a), f, own_f=True)), masks, spatial_masks


class AFResNet(nn.Module):
    """AFNet on ResNet-18/34/50/101 (AFNet-TSM with `shift`); see the module docstring for the decisions.

    forward: (N, T, 3, H, W) or (N*T, 3, H, W) with H, W divisible by 32 -> VideoOutput(logits (N, K),
    masks: one (N*T, 1, 1, 1) per focal block, spatial_masks when rs is set).
    focal_compute: "auto" (masked in training, sliced in eval) | "masked" | "sliced".
    selection: "hard" (Gumbel) | "soft" (Table S4: sigmoid weights, all frames computed, no ratio loss).
    nav_init_bias: initial (skip, select) navigation bias, (1, 10) as the official code.
    stem_chunk_frames: in eval mode, run the stem on chunks of this many frames (`frame_chunked`; 0: all at
    once), set by `prepare_for_inference`.
    """

    stem_chunk_frames = 0

    def __init__(self, depth: int = 50, num_classes: int = 1000, num_segments: int = 8, width: int = 64,
                 shift: bool = False, selection: str = "hard", fusion: str = "dynamic", mask_mode: str = "output",
                 focal_compute: str = "auto", eval_gumbel_noise: bool = False, nav_mix_frames: bool = False,
                 rs: float | None = None, dropout: float = 0.5, nav_init_bias=(1.0, 10.0)):
        super().__init__()
        check_choice(selection, fusion, mask_mode, focal_compute)
        if depth not in LAYOUTS:
            raise ValueError(f"AF-ResNet depth {depth}: choose one of {sorted(LAYOUTS)}")
        kind, counts = LAYOUTS[depth]
        expansion = 4 if kind == "bottleneck" else 1
        self.num_segments, self.selection, self.mask_mode = num_segments, selection, mask_mode
        self.focal_compute, self.eval_gumbel_noise = focal_compute, eval_gumbel_noise
        self.uses_ratio_loss = selection == "hard"
        self.tau, self.forced_ratio = 1.0, None
        t = num_segments if shift else 0
        self.stem = nn.Sequential(*conv_bn(3, width, 7, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        cin, first_mask, stages = width, 0, []
        for i, n in enumerate(counts[:3]):
            cout = width * 2**i * expansion
            stages.append(AFStage(kind, cin, cout, n, 2 if i < 2 else 1, first_mask, num_segments, shift, fusion,
                                  nav_mix_frames, rs is not None, tuple(nav_init_bias)))
            cin, first_mask = cout, first_mask + n - 1
        self.stages = nn.ModuleList(stages)
        cout = width * 8 * expansion
        self.stage4 = nn.Sequential(*(Residual(kind, cin if j == 0 else cout, cout, 2 if j == 0 else 1,
                                               shift_segments=t, owns_input=True) for j in range(counts[3])))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(cout, num_classes)
        self.num_masks = first_mask
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        nn.init.normal_(self.fc.weight, 0, 0.001)
        nn.init.zeros_(self.fc.bias)

    def set_temperature(self, tau: float) -> None:
        self.tau = float(tau)

    def set_forced_ratio(self, ratio: float | list[float] | None) -> None:
        """Select exactly round(r*T) frames per video at every mask, or per mask from a list of
        `num_masks` ratios (see `forced_ratios`); None: the navigation decides."""
        self.forced_ratio = check_forced(ratio, self.num_masks)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, list, list]:
        """(N*T, 3, H, W) -> pooled features (N*T, C), masks, spatial masks."""
        sliced = self.focal_compute == "sliced" or (self.focal_compute == "auto" and not self.training)
        soft = self.selection == "soft"
        if soft:
            sliced = False  # every frame is computed, weighted
        noise = self.training or self.eval_gumbel_noise
        x = frame_chunked(self.stem, x, 0 if self.training else self.stem_chunk_frames)
        masks, spatial = [], []
        for stage in self.stages:
            x, m, s = stage(x, self.tau, noise, self.forced_ratio, soft, sliced, self.mask_mode)
            masks += m
            spatial += s
        return self.pool(self.stage4(x)).flatten(1), masks, spatial

    def forward(self, x: torch.Tensor) -> VideoOutput:
        feats, masks, spatial = self.features(fold_frames(x, self.num_segments))
        logits = consensus(self.fc(self.dropout(feats)), self.num_segments)
        return VideoOutput(logits, masks, spatial)
