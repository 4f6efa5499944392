"""ResNet-18/34/50/101 (v1.5: the stride sits on the 3x3 conv) with an optional TSM residual shift.

Module names follow the usual ImageNet ResNet layout (conv1, bn1, layer1.0.conv1, layer1.0.downsample.0/1,
fc), so a locally stored ImageNet state dict loads one to one (`load_imagenet_weights`).
"""

from __future__ import annotations

import torch
from torch import nn

from src.models.temporal_shift import temporal_shift

DEPTHS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)), 50: ("bottleneck", (3, 4, 6, 3)),
          101: ("bottleneck", (3, 4, 23, 3))}


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    return nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1, shift_segments: int = 0):
        super().__init__()
        cout = width * self.expansion
        self.conv1, self.bn1 = conv_bn(cin, width, 3, stride)
        self.conv2, self.bn2 = conv_bn(width, cout, 3)
        self.downsample = (nn.Sequential(*conv_bn(cin, cout, 1, stride))
                           if stride != 1 or cin != cout else None)
        self.shift_segments = shift_segments

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.downsample is None else self.downsample(x)
        if self.shift_segments:
            x = temporal_shift(x, self.shift_segments)
        return torch.relu(skip + self.residual(x))


class Bottleneck(BasicBlock):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1, shift_segments: int = 0):
        nn.Module.__init__(self)
        cout = width * self.expansion
        self.conv1, self.bn1 = conv_bn(cin, width, 1)
        self.conv2, self.bn2 = conv_bn(width, width, 3, stride)
        self.conv3, self.bn3 = conv_bn(width, cout, 1)
        self.downsample = (nn.Sequential(*conv_bn(cin, cout, 1, stride))
                           if stride != 1 or cin != cout else None)
        self.shift_segments = shift_segments

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.bn3(self.conv3(x))


class ResNet(nn.Module):
    """Per-image ResNet trunk: (B, 3, H, W) -> pooled features (B, out_channels); `fc` is the ImageNet head.

    width: stem / first-stage width (64 = the published model; tests and CPU runs use 8-16).
    shift_segments: T > 0 turns on the TSM residual shift (SPEC §2.10) over clips of T consecutive images.
    """

    def __init__(self, depth: int = 50, width: int = 64, num_classes: int = 1000, shift_segments: int = 0):
        super().__init__()
        if depth not in DEPTHS:
            raise ValueError(f"ResNet depth {depth}: choose one of {sorted(DEPTHS)}")
        kind, counts = DEPTHS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        self.conv1, self.bn1 = conv_bn(3, width, 7, 2)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        cin = width
        for i, n in enumerate(counts):
            w = width * 2**i
            blocks = []
            for j in range(n):
                blocks.append(block(cin, w, 2 if (j == 0 and i > 0) else 1, shift_segments))
                cin = w * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        self.out_channels = cin
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(torch.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


def load_matching(model: nn.Module, state: dict, strip_prefixes: tuple[str, ...] = ("module.",)) -> dict:
    """Copy the entries of `state` whose name and shape match `model`; returns a report
    {"loaded": [...], "skipped": {name: reason}, "missing": [...]} (missing = model keys left as initialised)."""
    own = model.state_dict()
    loaded, skipped = [], {}
    merged = dict(own)
    for k, v in state.items():
        for p in strip_prefixes:
            if k.startswith(p):
                k = k[len(p):]
        if k not in own:
            skipped[k] = "not in model"
        elif tuple(own[k].shape) != tuple(v.shape):
            skipped[k] = f"shape {tuple(v.shape)} != {tuple(own[k].shape)}"
        else:
            merged[k] = v
            loaded.append(k)
    model.load_state_dict(merged, strict=True)
    return {"loaded": loaded, "skipped": skipped, "missing": sorted(set(own) - set(loaded))}


def load_imagenet_weights(model: ResNet, path: str) -> dict:
    """Load a local ImageNet ResNet state dict (or {'state_dict': ...}) by name and shape; returns the report."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    return load_matching(model, state.get("state_dict", state))
