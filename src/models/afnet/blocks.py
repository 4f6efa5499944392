"""Residual blocks of AF-ResNet: plain (ample, fusion, stage 4) and focal, Bottleneck and BasicBlock forms,
each with an optional TSM residual shift; and `gated_residual`, the per-frame gate of every focal block."""

from __future__ import annotations

import torch
from torch import nn

from src.models.layers import ResidualBlock, conv_bn
from src.models.temporal_shift import gather_shifted, select_frames, temporal_shift


def shortcut(cin: int, cout: int, stride: int) -> nn.Module | None:
    """ResNet-D shortcut: avg-pool 3x3 (padding 1, zeros counted) when strided, then 1x1 conv + BN when the
    channels change; None (identity) otherwise."""
    layers: list[nn.Module] = [nn.AvgPool2d(3, stride, 1)] if stride != 1 else []
    if cin != cout:
        layers += conv_bn(cin, cout, 1)
    return nn.Sequential(*layers) if layers else None


class Residual(ResidualBlock):
    """y = act(skip(x) + F(shift(x))) (`ResidualBlock`), F of AF-ResNet's plain and focal blocks.

    kind: "bottleneck" (1x1, 3x3 stride s, 1x1; inner width out/4) or "basic" (3x3 stride s, 3x3).
    groups: 2 for focal blocks (all convs of F). last_relu: False for the last ample / focal block of a stage.
    zero_init: the last BN's gamma starts at 0 (plain blocks, not focal ones).
    shift_segments: the TSM residual shift over clips of this many frames (0: none).
    """

    def __init__(self, kind: str, cin: int, cout: int, stride: int = 1, groups: int = 1, last_relu: bool = True,
                 shift_segments: int = 0, zero_init: bool = True):
        super().__init__()
        if kind == "bottleneck":
            mid = cout // 4
            self.conv1, self.bn1 = conv_bn(cin, mid, 1, groups=groups)
            self.conv2, self.bn2 = conv_bn(mid, mid, 3, stride, groups)
            self.conv3, self.bn3 = conv_bn(mid, cout, 1, groups=groups)
            self.convs = ["1", "2", "3"]
        else:
            self.conv1, self.bn1 = conv_bn(cin, cout, 3, stride, groups)
            self.conv2, self.bn2 = conv_bn(cout, cout, 3, groups=groups)
            self.convs = ["1", "2"]
        self.shortcut = shortcut(cin, cout, stride)
        self.relu_out, self.shift_segments = last_relu, shift_segments
        if zero_init:
            nn.init.zeros_(getattr(self, f"bn{self.convs[-1]}").weight)

    def conv_layers(self) -> list[nn.Conv2d]:
        return [getattr(self, f"conv{i}") for i in self.convs]

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """F: (B, C_in, H, W) -> (B, C_out, H/s, W/s); the frames of B are independent (no shift here)."""
        last = self.convs[-1]
        for i in self.convs:
            x = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x))
            if i != last:
                x = x.relu_()  # a fresh conv output: in place saves a pass over it
        return x

    def skip_path(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.shortcut is None else self.shortcut(x)


class FocalResidual(Residual):
    """A focal block: grouped convs (groups=2), never strided, its residual gated per frame (`gated_residual`).

    forward(x (N*T, C_in, H, W), gate, index=None, mask_mode="output") -> (N*T, C_out, H, W).
    """

    def __init__(self, kind: str, cin: int, cout: int, mask_index: int, last_relu: bool = True,
                 shift_segments: int = 0):
        super().__init__(kind, cin, cout, 1, groups=2, last_relu=last_relu, shift_segments=shift_segments,
                         zero_init=False)
        self.mask_index = mask_index
        for conv in self.conv_layers():
            conv.focal_mask_index = mask_index  # the FLOPs counter scales these by the realised ratio

    def forward(self, x: torch.Tensor, gate: torch.Tensor, index: torch.Tensor | None = None,
                mask_mode: str = "output") -> torch.Tensor:
        return gated_residual(self, x, gate, index, mask_mode)


def gated_residual(block: ResidualBlock, x: torch.Tensor, gate: torch.Tensor, index: torch.Tensor | None,
                   mask_mode: str) -> torch.Tensor:
    """A focal block's output from its skip path, residual function F, shift and activation (`ResidualBlock`).

    Masked (index None), every frame computed:
      output mode: y = act(skip(x) + m ⊙ F(shift(x)))    (the default; exactly the sliced result)
      input mode:  y = act(skip(x) + F(m ⊙ shift(x)))    (the official code; F(0) ≠ 0 on skipped frames)
    Sliced (index: the selected frames, (k,) positions on dim 0, in order): F runs on those frames only,
      gathered after the shift of the whole clip, and is added back at their positions; in input mode the
      skipped frames get skip + F(0), F(0) computed once (only when a frame is skipped), so both modes equal
      their masked forms.
    x: (N*T, C_in, H, W). gate: the mask (N*T, 1, 1, 1), times the spatial mask (N*T, 1, H, W) when on; cast
    to F's dtype. The skip path sees every frame, unshifted. A selected frame's hard gate is 1, so the sliced
    path multiplies by it only where it carries a gradient or a spatial mask.
    """
    skip = block.skip_path(x)
    if index is None:
        xs = temporal_shift(x, block.shift_segments)
        if mask_mode == "input":
            return block.activate(block.residual(xs * gate.to(xs.dtype)).add_(skip))
        r = block.residual(xs)
        return block.activate(torch.addcmul(skip, gate.to(r.dtype), r))  # skip + m ⊙ F, one pass
    sub = gather_shifted(x, index, block.shift_segments)
    sub_gate = None
    if gate.shape[-1] > 1 or (torch.is_grad_enabled() and gate.requires_grad):
        sub_gate = gate.index_select(0, index).to(sub.dtype)
    if mask_mode == "input":
        r = block.residual(sub if sub_gate is None else sub * sub_gate) if index.numel() else None
        if index.numel() == x.shape[0]:  # every frame selected (index is 0 .. B-1): no F(0) needed
            return block.activate(r.add_(skip))
        out = skip + block.residual(torch.zeros_like(x[:1]))  # skipped frames: skip + F(0)
        if r is not None:
            out = out.index_copy(0, index, r.add_(select_frames(skip, index)).to(out.dtype))
        return block.activate(out)
    if not index.numel():
        return block.activate(skip.clone())
    r = block.residual(sub)
    if sub_gate is not None:
        r = r * sub_gate
    return block.activate(skip.index_add(0, index, r.to(skip.dtype)))
