"""MobileNetV3-Large (Howard et al., 2019) from plain torch.nn, with an optional TSM residual shift.

Reusable blocks (stable API, also used by AF-MobileNetV3 in `src.models.afnet`):

- `make_divisible(v, divisor=8)`: channel rounding of the reference model.
- `HSwish`, `HSigmoid`: hard activations, x * relu6(x + 3) / 6 and relu6(x + 3) / 6.
- `SqueezeExcite(channels, squeeze_ch, act=None)`: GAP -> 1x1 conv (bias) -> ReLU -> 1x1 conv (bias) -> h-sigmoid
  scales the input; `act` (a module class) is then applied to the scaled output.
- `ConvBNAct(in_ch, out_ch, kernel, stride=1, groups=1, act=...)`: conv (no bias) -> BN -> activation.
- `InvertedResidual(in_ch, exp_ch, out_ch, kernel, stride, use_se, use_hs, pw_groups=1, shift_segments=0,
  proj_shortcut=False, se_before_act=False)`: the MobileNetV3 block, a `ResidualBlock`: y = skip(x) + F(shift(x))
  when the block has a skip connection (`has_skip`), else F(shift(x)); no activation after the sum. F is the `conv`
  Sequential (`residual(x)`), the skip the `skip` module (`skip_path(x)`), so a caller can gate F per
  frame. `residual_convs()` lists the convs of F (to tag with `focal_mask_index` for the FLOPs counter).

The TSM shift sits at the start of the residual function of every block, the skip stays unshifted.
AF-MobileNetV3 shifts in every block, and so does this suite's TSM-MobileNetV3 (its own choice: the official
AFNet code builds only the AF model on MobileNetV3).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from src.models.layers import ResidualBlock

# (kernel, expansion ratio over the input width, out channels, SE, h-swish, stride): the standard Large config.
LARGE_CONFIG: list[tuple[int, float, int, bool, bool, int]] = [
    (3, 1, 16, False, False, 1),
    (3, 4, 24, False, False, 2),
    (3, 3, 24, False, False, 1),
    (5, 3, 40, True, False, 2),
    (5, 3, 40, True, False, 1),
    (5, 3, 40, True, False, 1),
    (3, 6, 80, False, True, 2),
    (3, 2.5, 80, False, True, 1),
    (3, 2.3, 80, False, True, 1),
    (3, 2.3, 80, False, True, 1),
    (3, 6, 112, True, True, 1),
    (3, 6, 112, True, True, 1),
    (5, 6, 160, True, True, 2),
    (5, 6, 160, True, True, 1),
    (5, 6, 160, True, True, 1),
]


def make_divisible(v: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of `divisor`, never going more than 10% below `v`."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class HSwish(nn.Module):
    """x * relu6(x + 3) / 6, as one fused op."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.hardswish(x)


class HSigmoid(nn.Module):
    """relu6(x + 3) / 6, as one fused op."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.hardsigmoid(x)


class SqueezeExcite(nn.Module):
    """Channel attention: (B, C, H, W) -> (B, C, H, W), scaled by a per-image, per-channel weight in [0, 1].

    act: an activation applied after the scaling (None: none). It carries no parameters, so the state-dict
    keys are the same either way.
    """

    def __init__(self, channels: int, squeeze_ch: int, act: type[nn.Module] | None = None):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)  # a module, so the FLOPs counter sees the GAP
        self.fc1 = nn.Conv2d(channels, squeeze_ch, 1)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(squeeze_ch, channels, 1)
        self.gate = HSigmoid()
        self.post_act = act() if act is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x * self.gate(self.fc2(self.act(self.fc1(self.pool(x)))))
        return y if self.post_act is None else self.post_act(y)


class ConvBNAct(nn.Sequential):
    """Conv (no bias, 'same' padding) -> BN -> activation; `act=None` leaves the activation out."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1,
                 act: type[nn.Module] | None = nn.ReLU):
        layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, kernel, stride, (kernel - 1) // 2, groups=groups,
                                             bias=False), nn.BatchNorm2d(out_ch)]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


class InvertedResidual(ResidualBlock):
    """MobileNetV3 block: [shift] -> 1x1 expand -> kxk depthwise (stride) -> [SE] -> 1x1 project (+ skip).

    Input (B, in_ch, H, W), output (B, out_ch, H/stride, W/stride), B = N*T when the shift is on.
    in_ch, exp_ch, out_ch: absolute channel counts (the expand conv is left out when exp_ch == in_ch).
    use_se: squeeze-excite after the depthwise conv, squeeze width make_divisible(exp_ch / 4).
    use_hs: h-swish instead of ReLU as activation.
    pw_groups: groups of the two pointwise convs and of the projection shortcut (2 in AF focal blocks).
    shift_segments: residual temporal shift over clips of this many frames at the start of F (0: none).
    proj_shortcut: when the shapes differ at stride 1, add a 1x1 conv (groups=pw_groups) + BN skip
        instead of dropping the skip; the standard model has no such shortcut (False).
    se_before_act: with `use_se`, the depthwise stage is conv -> BN -> SE -> activation (the official AFNet
        MobileNetV3 blocks) instead of conv -> BN -> activation -> SE (the standard model, which ImageNet
        MobileNetV3 weights expect). The state-dict keys are the same.
    """

    def __init__(self, in_ch: int, exp_ch: int, out_ch: int, kernel: int, stride: int, use_se: bool,
                 use_hs: bool, pw_groups: int = 1, shift_segments: int = 0, proj_shortcut: bool = False,
                 se_before_act: bool = False):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride}")
        act = HSwish if use_hs else nn.ReLU
        self.shift_segments = shift_segments  # no module: TSN and TSM share state-dict keys
        layers: list[nn.Module] = []
        if exp_ch != in_ch:
            layers.append(ConvBNAct(in_ch, exp_ch, 1, groups=pw_groups, act=act))
        late_act = use_se and se_before_act  # the SE then sees the BN output and applies the activation itself
        layers.append(ConvBNAct(exp_ch, exp_ch, kernel, stride, groups=exp_ch, act=None if late_act else act))
        if use_se:
            layers.append(SqueezeExcite(exp_ch, make_divisible(exp_ch / 4), act=act if late_act else None))
        layers.append(ConvBNAct(exp_ch, out_ch, 1, groups=pw_groups, act=None))
        self.conv = nn.Sequential(*layers)

        self.skip: nn.Module | None = None
        if stride == 1 and in_ch == out_ch:
            self.skip = nn.Identity()
        elif stride == 1 and proj_shortcut:
            self.skip = ConvBNAct(in_ch, out_ch, 1, groups=pw_groups, act=None)
        self.in_ch, self.out_ch, self.stride = in_ch, out_ch, stride

    @property
    def has_skip(self) -> bool:
        return self.skip is not None

    def residual_convs(self) -> list[nn.Conv2d]:
        """The convs of the residual function (expand, depthwise, SE fc1/fc2, project), in forward order."""
        return [m for m in self.conv.modules() if isinstance(m, nn.Conv2d)]

    relu_out = False  # MobileNetV3 blocks end linearly

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """F on an already shifted input: (B, in_ch, H, W) -> (B, out_ch, H/stride, W/stride)."""
        return self.conv(x)

    def skip_path(self, x: torch.Tensor) -> torch.Tensor | None:
        return None if self.skip is None else self.skip(x)


class MobileNetV3(nn.Module):
    """MobileNetV3-Large image classifier on (B, 3, H, W) frames; 0.217 GMACs per 224² frame (1000-way).

    `features` returns the (B, 1280) embedding (last conv 960, GAP, Linear 960->1280, h-swish);
    `forward` adds Dropout + Linear 1280->num_classes (`num_classes=0` leaves `classifier` an Identity).
    width_mult scales every width except the 1280-d embedding (as the reference model, for width_mult <= 1).
    shift_segments: TSM residual shift in every block over clips of this many frames (B = N*T, frames of a
    video contiguous); 0: none.
    """

    def __init__(self, num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2,
                 shift_segments: int = 0, config: list[tuple[int, float, int, bool, bool, int]] | None = None):
        super().__init__()
        config = LARGE_CONFIG if config is None else config
        self.shift_segments = shift_segments
        stem_ch = make_divisible(16 * width_mult)
        self.stem = ConvBNAct(3, stem_ch, 3, stride=2, act=HSwish)
        blocks, in_ch = [], stem_ch
        for kernel, expansion, out, use_se, use_hs, stride in config:
            out_ch = make_divisible(out * width_mult)
            exp_ch = make_divisible(in_ch * expansion)
            blocks.append(InvertedResidual(in_ch, exp_ch, out_ch, kernel, stride, use_se, use_hs,
                                           shift_segments=shift_segments))
            in_ch = out_ch
        self.blocks = nn.Sequential(*blocks)
        last_ch = 6 * in_ch
        self.last_conv = ConvBNAct(in_ch, last_ch, 1, act=HSwish)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_channels = 1280 if width_mult <= 1.0 else make_divisible(1280 * width_mult)
        self.embed = nn.Sequential(nn.Linear(last_ch, self.out_channels), HSwish())
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(self.out_channels, num_classes)) \
            if num_classes > 0 else nn.Identity()
        init_weights(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, out_channels)."""
        x = self.last_conv(self.blocks(self.stem(x)))
        return self.embed(torch.flatten(self.pool(x), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def init_weights(model: nn.Module) -> None:
    """Kaiming-normal (fan_out) convs, BN at identity, Linear N(0, 0.01) with zero bias."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)


def mobilenet_v3_large(**kwargs) -> MobileNetV3:
    return MobileNetV3(**kwargs)
