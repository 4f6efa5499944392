"""AFNet: ample and focal branches with per-frame navigation. `build_afnet` builds any variant.

The model of "Look More but Care Less in Video Recognition" (Zhang et al., NeurIPS 2022). In an AF stage the
ample branch sees every frame at half resolution and half width; the focal branch computes, block by block,
only the frames its navigation selects; a dynamic fusion merges the two:

    mask m = Nav(ample input)                          (hard Gumbel-Softmax, straight-through gradients)
    focal block  y = skip(x) + m ⊙ F(shift(x))         (output mask mode, the default)
                 y = skip(x) + F(m ⊙ shift(x))         (input mask mode, the official code)
    fusion       θ = σ(W_b ReLU(W_a GAP(up(a) + f))),  out = act(θ ⊙ up(a) + (1 − θ) ⊙ f)

Markers in the docstrings of this package: [C] follows the official PyTorch code of the paper (its released
implementation, not the paper's text); [I] is this suite's own decision where the paper, its supplement and the
official code disagree or are silent. The suite's decisions (each a switch, default first):

- mask mode (`mask_mode`): "output" multiplies the residual's output, y = skip(x) + m ⊙ F(x), so training
  equals sliced inference exactly [I]; "input" multiplies F's input, as the official code [C] (needed for its
  released checkpoints). In input mode a skipped frame still receives F(0), which is not zero once BN has
  running statistics or a bias; sliced inference then fills skipped frames with F(0) computed once per block
  (not at all when every frame is selected, so the FLOPs profile, counted at ratio 1, is that of output mode).
- focal computation (`focal_compute`): "auto" computes every frame, masked, in training and only the selected
  frames at evaluation ("sliced": gathered on the folded batch dim after the shift of the whole clip, run
  densely, added back at their positions) [I]; the official code always computes every frame [C].
- evaluation masks (`eval_gumbel_noise`): deterministic, the argmax of the navigation logits [I]; true gives
  the official protocol's Gumbel-noised masks, which vary from run to run [C].
- navigation W2 (`nav_mix_frames`): grouped per frame (groups=T) as the official code [C]; true makes it a
  dense 2T->2T conv, the paper's wording [I].
- ResNet-18/34 (not in the official code) [I]: BasicBlocks in both branches, the ample branch at half width
  with a strided first block, focal 3x3 convs with groups=2, navigation and fusion as for ResNet-50. Masks per
  forward: R18 3 (1+1+1), R34 10 (2+3+5), R50 10 (2+3+5), R101 27 (3+7+17: the official AF-ResNet101 stages
  have [4, 8, 18, 3] blocks, not ResNet-101's [3, 4, 23, 3]) [C].
- spatial masks (`rs`, no official code) [I]: a per-position select / skip head (1x1 conv to 2 logits) on each
  navigation input, hard Gumbel, nearest-upsampled to the focal resolution, multiplying the focal residual
  with the temporal mask; FLOPs scale the focal convs by the spatial ratio too (the sliced path skips
  frames, not positions).
- soft selection (`method: afnet_soft`, the supplement's soft-weight variant): mask = sigmoid(select − skip
  logit) per frame, no Gumbel, every frame computed (never sliced), no ratio loss [I].
- forced ratio (`set_forced_ratio`, for FLOPs counts and benchmarks): exactly round(r*T) frames per video,
  the top-k of the select-minus-skip logit, ties to the earlier frame; spatial masks are then all ones [I].
- AF-MobileNetV3 is always shifted (AFNet-TSM), as the official code [C]; see `af_mobilenetv3`.

Inference rewrites (BN folding, device fast paths, compilation) live apart, in `src.models.inference`.
"""

from __future__ import annotations

from torch import nn

from src.models.afnet.af_mobilenetv3 import AFMobileNetV3
from src.models.afnet.af_resnet import LAYOUTS, AFResNet
from src.models.afnet.base import AFNet, forced_ratios
from src.models.afnet.stage import FocalMode


def build_afnet(backbone: str, num_classes: int, num_segments: int, shift: bool = False, selection: str = "hard",
                **options) -> nn.Module:
    """AF-ResNet-18/34/50/101 (`AFResNet`, backbone "r18" ... "r101") or AF-MobileNetV3 (`AFMobileNetV3`,
    "mbv3", always shifted: `shift` is ignored).

    options: the switches of AFResNet / AFMobileNetV3 (mask_mode, focal_compute, eval_gumbel_noise,
    nav_mix_frames, fusion, rs, dropout, nav_init_bias) and the size: `width` (ResNet, 64 = the real model)
    or `width_mult` (MobileNetV3, 1.0); the one that does not fit the backbone is dropped.
    """
    if backbone == "mbv3":
        options.pop("width", None)
        return AFMobileNetV3(num_classes=num_classes, num_segments=num_segments, selection=selection, **options)
    depth = int(backbone[1:]) if backbone[:1] == "r" and backbone[1:].isdigit() else None
    if depth not in LAYOUTS:
        choices = ", ".join([*(f"r{d}" for d in LAYOUTS), "mbv3"])
        raise ValueError(f"unknown AFNet backbone {backbone!r}: choose one of {choices}")
    options.pop("width_mult", None)
    return AFResNet(depth, num_classes, num_segments, shift=shift, selection=selection, **options)


__all__ = ["AFMobileNetV3", "AFNet", "AFResNet", "FocalMode", "build_afnet", "forced_ratios"]
