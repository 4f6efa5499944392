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

from src.models.frame_ops import frame_chunked
from src.models.temporal_shift import TemporalShift, temporal_shift_


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    """A bias-free k x k conv with 'same' padding and its BN."""
    return nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)


def _downsample(in_ch: int, out_ch: int, stride: int) -> nn.Module | None:
    """The standard projection shortcut (1x1 conv, stride s, + BN) when the shape changes."""
    if stride == 1 and in_ch == out_ch:
        return None
    return nn.Sequential(*conv_bn(in_ch, out_ch, 1, stride))


def shift_input(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The TSM shift of a block's residual input. The skip keeps each frame's own features, so the shift
    writes a copy, except where the block's projection shortcut has already consumed x (the block input
    is never read again inside the network) and no autograd is recording: then in place."""
    if block.shift is None:
        return x
    if block.downsample is not None and not torch.is_grad_enabled():
        return temporal_shift_(x, block.shift.num_segments, block.shift.fold_div)
    return block.shift(x)


class BasicBlock(nn.Module):
    """3x3 -> 3x3 residual block: (B, in_ch, H, W) -> (B, planes, H/stride, W/stride)."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1, shift: bool = False, num_segments: int = 8):
        super().__init__()
        self.shift = TemporalShift(num_segments) if shift else None
        self.conv1, self.bn1 = conv_bn(in_ch, planes, 3, stride)
        self.conv2, self.bn2 = conv_bn(planes, planes, 3)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_ch, planes, stride)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        x = shift_input(self, x)
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        return self.relu(self.residual(x).add_(skip))  # the residual is a fresh tensor: no new sum tensor


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride) -> 1x1 block: (B, in_ch, H, W) -> (B, 4*planes, H/stride, W/stride)."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, shift: bool = False, num_segments: int = 8):
        super().__init__()
        out_ch = planes * self.expansion
        self.shift = TemporalShift(num_segments) if shift else None
        self.conv1, self.bn1 = conv_bn(in_ch, planes, 1)
        self.conv2, self.bn2 = conv_bn(planes, planes, 3, stride)  # v1.5: the stride sits on the 3x3
        self.conv3, self.bn3 = conv_bn(planes, out_ch, 1)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _downsample(in_ch, out_ch, stride)

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        x = shift_input(self, x)
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        return self.bn3(self.conv3(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        return self.relu(self.residual(x).add_(skip))  # the residual is a fresh tensor: no new sum tensor


DEPTHS: dict[int, tuple[type[nn.Module], tuple[int, ...]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
}


def tsm_shifted(counts: tuple[int, ...]) -> list[list[bool]]:
    """Which blocks of each stage TSM shifts, for stage block counts `counts`: all of them, or every other
    block (0, 2, 4, ...) of every stage when the third stage has 23 or more blocks (TSM's `n_round = 2`)."""
    step = 2 if counts[2] >= 23 else 1
    return [[j % step == 0 for j in range(n)] for n in counts]


class ResNet(nn.Module):
    """ImageNet ResNet on (B, 3, H, W) frames -> (B, num_classes) logits; `features` gives (B, out_channels).

    depth: 18, 34, 50 or 101. width: stem / first-stage width (64 = the published model, 8-16 for tests);
    stage widths are width * (1, 2, 4, 8). shift / num_segments: TSM residual shift over clips of num_segments
    consecutive images (B = N*T), in the blocks TSM shifts (`tsm_shifted`). num_classes=0 leaves `fc` an Identity.
    zero_init_residual: the last BN of every block starts at gamma=0 (off, as the standard model).
    stem_chunk_frames: in eval mode, run the stem (conv, BN, ReLU, max-pool; per frame) on chunks of this many
    frames (`frame_chunked`; 0: all at once), set by `prepare_for_inference`.
    """

    stem_chunk_frames = 0

    def __init__(self, depth: int = 50, width: int = 64, num_classes: int = 1000, shift: bool = False,
                 num_segments: int = 8, zero_init_residual: bool = False):
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"ResNet depth {depth}: choose one of {sorted(DEPTHS)}")
        block, counts = DEPTHS[depth]
        self.depth, self.num_segments = depth, num_segments
        self.conv1, self.bn1 = conv_bn(3, width, 7, 2)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        in_ch, shifted = width, tsm_shifted(counts)
        for i, n in enumerate(counts):
            planes, stride = width * 2**i, 1 if i == 0 else 2
            blocks = []
            for j in range(n):
                blocks.append(block(in_ch, planes, stride if j == 0 else 1, shift=shift and shifted[i][j],
                                    num_segments=num_segments))
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
        x = frame_chunked(self.stem, x, 0 if self.training else self.stem_chunk_frames)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))
