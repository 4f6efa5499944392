"""ResNet-18/34/50/101 (v1.5: stride on the 3x3 conv) from plain torch.nn, with an optional TSM residual shift.

Module names follow the standard ImageNet ResNet (conv1, bn1, layer1.0.conv1, layer1.0.downsample.0/1, fc),
so a standard (torchvision-format) state dict loads 1:1 (`src.models.checkpoints.load_pretrained`).
ResNet-50 at width 64: 25,557,032 parameters (1000-way) and 4.089 GMACs per 224² frame.

TSM's shift placement (`tsm_shifted`): every residual block, except where the third stage has 23 or more
blocks (ResNet-101): there TSM's code shifts every other block (0, 2, 4, ...) of each of the four stages.
"""

from __future__ import annotations

import torch
from torch import nn

from src.models.layers import ResidualBlock, conv_bn


def _downsample(in_ch: int, out_ch: int, stride: int) -> nn.Module | None:
    """The standard projection shortcut (1x1 conv, stride s, + BN) when the shape changes."""
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(*conv_bn(in_ch, out_ch, 1, stride))


class BasicBlock(ResidualBlock):
    """3x3 -> 3x3 residual block: (B, in_ch, H, W) -> (B, planes, H/stride, W/stride)."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1, shift_segments: int = 0):
        super().__init__()
        self.shift_segments = shift_segments
        self.conv1, self.bn1 = conv_bn(in_ch, planes, 3, stride)
        self.conv2, self.bn2 = conv_bn(planes, planes, 3)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_ch, planes, stride)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))

    def skip_path(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.downsample is None else self.downsample(x)


class Bottleneck(ResidualBlock):
    """1x1 -> 3x3 (stride) -> 1x1 block: (B, in_ch, H, W) -> (B, 4*planes, H/stride, W/stride)."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, shift_segments: int = 0):
        super().__init__()
        out_ch = planes * self.expansion
        self.shift_segments = shift_segments
        self.conv1, self.bn1 = conv_bn(in_ch, planes, 1)
        self.conv2, self.bn2 = conv_bn(planes, planes, 3, stride)  # v1.5: the stride sits on the 3x3
        self.conv3, self.bn3 = conv_bn(planes, out_ch, 1)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_ch, out_ch, stride)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        return self.bn3(self.conv3(x))

    def skip_path(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.downsample is None else self.downsample(x)


# block kind and blocks per stage of the standard ResNets (AF-ResNet reads the same table)
LAYOUTS: dict[int, tuple[str, tuple[int, ...]]] = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}
BLOCKS: dict[str, type[ResidualBlock]] = {"basic": BasicBlock, "bottleneck": Bottleneck}


def tsm_shifted(counts: tuple[int, ...]) -> list[list[bool]]:
    """Which blocks of each stage TSM shifts, for stage block counts `counts`: all of them, or every other
    block (0, 2, 4, ...) of every stage when the third stage has 23 or more blocks (TSM's `n_round = 2`)."""
    step = 2 if counts[2] >= 23 else 1
    return [[j % step == 0 for j in range(n)] for n in counts]


class ResNet(nn.Module):
    """ImageNet ResNet on (B, 3, H, W) frames -> (B, num_classes) logits; `features` gives (B, out_channels).

    depth: 18, 34, 50 or 101. width: stem / first-stage width (64 = the published model, 8-16 for tests);
    stage widths are width * (1, 2, 4, 8). shift_segments: TSM residual shift over clips of this many
    consecutive images (B = N*T), in the blocks TSM shifts (`tsm_shifted`); 0: no shift (TSN).
    num_classes=0 leaves `fc` an Identity.
    zero_init_residual: the last BN of every block starts at gamma=0 (off, as the standard model).
    """

    def __init__(self, depth: int = 50, width: int = 64, num_classes: int = 1000, shift_segments: int = 0,
                 zero_init_residual: bool = False):
        super().__init__()
        if depth not in LAYOUTS:
            raise ValueError(f"ResNet depth {depth}: choose one of {sorted(LAYOUTS)}")
        kind, counts = LAYOUTS[depth]
        block = BLOCKS[kind]
        self.depth, self.shift_segments = depth, shift_segments
        self.conv1, self.bn1 = conv_bn(3, width, 7, 2)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_ch, shifted = width, tsm_shifted(counts)
        for i, n in enumerate(counts):
            planes, stride = width * 2**i, 1 if i == 0 else 2
            blocks = []
            for j in range(n):
                blocks.append(block(in_ch, planes, stride if j == 0 else 1,
                                    shift_segments=shift_segments if shifted[i][j] else 0))
                in_ch = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.out_channels = in_ch
        self.fc = nn.Linear(in_ch, num_classes) if num_classes > 0 else nn.Identity()

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (Bottleneck, BasicBlock)):
                    nn.init.zeros_((m.bn3 if isinstance(m, Bottleneck) else m.bn2).weight)

    def stem(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, width, H/4, W/4): conv 7x7/2, BN, ReLU, max-pool 3x3/2."""
        return self.maxpool(self.relu(self.bn1(self.conv1(x))))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, out_channels) after global average pooling."""
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
