"""Residual blocks of AF-ResNet (SPEC §2.3, §2.11): plain (ample, fusion, stage 4) and focal, Bottleneck and
BasicBlock forms, each with an optional TSM residual shift."""

from __future__ import annotations

import torch
from torch import nn

from src.models.frame_ops import add_frames_, copy_frames_, frames_view, gather_shifted, is_channels_last, select_frames
from src.models.layers import ShortcutPool, conv2d
from src.models.temporal_shift import temporal_shift, temporal_shift_


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    return conv2d(cin, cout, k, stride, k // 2, groups), nn.BatchNorm2d(cout)


def shortcut(cin: int, cout: int, stride: int, pool: bool) -> nn.Module | None:
    """ResNet-D shortcut: avg-pool 3x3/2 when strided (`pool`), then 1x1 conv + BN when channels change."""
    layers = [ShortcutPool(stride)] if stride != 1 and pool else []
    if cin != cout:
        layers += conv_bn(cin, cout, 1, 1 if pool else stride)
    return nn.Sequential(*layers) if layers else None


class Residual(nn.Module):
    """y = act(skip(x) + F(shift(x))): the shift moves channels along time inside F only (SPEC §2.10).

    kind: "bottleneck" (1x1, 3x3 stride s, 1x1; inner width out/4) or "basic" (3x3 stride s, 3x3).
    groups: 2 for focal blocks (all convs of F). last_relu: False for the last ample / focal block of a stage.
    zero_init: the last BN's gamma starts at 0 (plain blocks, not focal ones, SPEC §2.9).
    owns_input: the model never reads this block's input again (fusion blocks, the first ample block of an
      AF stage, which runs after the focal branch has read the stage input, the first block of stage 4):
      with a projection shortcut and no autograd, the shift is then done in place after the shortcut.
    """

    def __init__(self, kind: str, cin: int, cout: int, stride: int = 1, groups: int = 1, last_relu: bool = True,
                 shift_segments: int = 0, zero_init: bool = True, owns_input: bool = False):
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
        self.shortcut = shortcut(cin, cout, stride, pool=True)
        self.last_relu, self.shift_segments = last_relu, shift_segments
        self.shift_in_place = owns_input and self.shortcut is not None
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

    def skip(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.shortcut is None else self.shortcut(x)

    def shifted(self, x: torch.Tensor) -> torch.Tensor:
        if not self.shift_segments:
            return x
        if self.shift_in_place and not torch.is_grad_enabled():
            return temporal_shift_(x, self.shift_segments)
        return temporal_shift(x, self.shift_segments)

    def finish(self, y: torch.Tensor) -> torch.Tensor:
        return y.relu_() if self.last_relu else y  # y is always a fresh sum (F's own output)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.skip(x)  # before the shift, which may overwrite x
        return self.finish(self.residual(self.shifted(x)).add_(skip))  # F's output is fresh: sum into it


class FocalResidual(Residual):
    """A focal block: grouped convs (groups=2), never strided, its residual gated per frame by a mask.

    forward(x, mask, spatial, sliced, mask_mode, reuse_input):
      masked, output mode: y = skip(x) + m ⊙ F(shift(x))   (default; exact twin of the sliced path)
      masked, input mode:  y = skip(x) + F(m ⊙ shift(x))   (the official code; F(0) ≠ 0 for skipped frames)
      sliced: F runs on the selected frames only (gathered on the folded batch dim, after the shift) and is
        scattered back; in input mode the skipped frames get F(0), computed once per call, so both modes stay
        exactly equal to their masked twins. The skip path always sees every frame, unshifted.
    x: (N*T, C, H, W); mask: (N*T, 1, 1, 1) in {0, 1} (or soft weights); spatial: (N*T, 1, H, W) or None.
    """

    def __init__(self, kind: str, cin: int, cout: int, mask_index: int, last_relu: bool = True,
                 shift_segments: int = 0):
        super().__init__(kind, cin, cout, 1, groups=2, last_relu=last_relu, shift_segments=shift_segments,
                         zero_init=False)
        self.mask_index = mask_index
        for conv in self.conv_layers():
            conv.focal_mask_index = mask_index  # the FLOPs counter scales these by the realised ratio

    def forward(self, x: torch.Tensor, mask: torch.Tensor, spatial: torch.Tensor | None = None,
                sliced: bool = False, mask_mode: str = "output", reuse_input: bool = False) -> torch.Tensor:
        """reuse_input: x is the previous focal block's output (a ReLU's, so >= 0), which nothing else reads."""
        return gated_residual(x, self.skip(x), self.residual, mask, spatial, sliced, mask_mode,
                              self.shift_segments, self.last_relu, reuse_input,
                              skip_nonneg=reuse_input and self.shortcut is None)


class FrameGatedAdd(torch.autograd.Function):
    """skip + m ⊙ F with a per-frame gate m (B, 1, 1, 1): one fused pass forward (addcmul), and in the
    backward dL/dm as one dot product per frame instead of a full-size g ⊙ F temporary and a sum."""

    @staticmethod
    def forward(ctx, skip: torch.Tensor, gate: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(gate, f if ctx.needs_input_grad[1] else None)
        return torch.addcmul(skip, gate, f)

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        gate, f = ctx.saved_tensors
        grad_gate = grad_f = None
        if ctx.needs_input_grad[1]:
            grad_gate = frame_dots(g, f).view(gate.shape)
        if ctx.needs_input_grad[2]:
            grad_f = g * gate
        return g, grad_gate, grad_f


class HardGatedAddInto(torch.autograd.Function):
    """act(skip + m ⊙ F) for a hard per-frame gate m (B, 1, 1, 1) of zeros and ones, written into F's own memory
    (a fresh residual output that nothing else reads), act a ReLU or the identity.

    Autograd of the plain expression makes three full-size tensors per focal block (the sum forward, g ⊙ m
    and the ReLU's gradient backward); on CPU each costs its fresh pages (~9,400 per 12-frame 56² map at
    stage 1), more than its arithmetic. Here: none forward and, when every frame is selected, only the
    ReLU's gradient backward, which (as for a plain residual add) is the gradient of both skip and F. F's
    values stay recoverable for dL/dm: on a selected frame F = out - skip wherever out > 0, and the gradient
    is 0 elsewhere; the (few) skipped frames' F are copied before the write.
    skip, f: (B, C, H, W); gate: (B, 1, 1, 1), every value exactly 0 or 1."""

    @staticmethod
    def forward(ctx, skip: torch.Tensor, gate: torch.Tensor, f: torch.Tensor, relu: bool) -> torch.Tensor:
        off = (gate.view(-1) == 0).nonzero().view(-1)
        need_gate = ctx.needs_input_grad[1]
        kept = select_frames(f, off) if need_gate and off.numel() else None  # F of the skipped frames
        out = f.add_(skip)
        if off.numel():  # skipped frames: out = skip, frame by frame (each one contiguous block)
            ov, sv = frames_view(out), frames_view(skip)
            for i in off.tolist():
                ov[i].copy_(sv[i])
        if relu:
            out.relu_()
        ctx.mark_dirty(f)
        ctx.relu = relu
        ctx.save_for_backward(gate, out, skip if need_gate else None, kept, off)
        return out

    @staticmethod
    def backward(ctx, g: torch.Tensor):
        gate, out, skip, kept, off = ctx.saved_tensors
        g = torch.ops.aten.threshold_backward(g, out, 0) if ctx.relu else g  # the gradient of the sum
        grad_gate = grad_f = None
        if ctx.needs_input_grad[1]:  # selected frames: <g, out - skip>; skipped frames: <g, F kept>
            dots = frame_dots(g, out) - frame_dots(g, skip)
            if off.numel():
                dots[off] = frame_dots(select_frames(g, off), kept)
            grad_gate = dots.view(gate.shape)
        if ctx.needs_input_grad[2]:
            grad_f = g if not off.numel() else g * gate
        return g, grad_gate, grad_f, None


def frame_dots(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) per-frame inner products of a, b (B, C, H, W). On CPU one BLAS dot per frame (~5x faster than a
    product tensor and a sum, which also allocates a full-size temporary); elsewhere the fused reduction."""
    if a.device.type != "cpu":
        return (a * b).sum((1, 2, 3))
    if is_channels_last(a) == is_channels_last(b):
        a, b = frames_view(a), frames_view(b)  # the same element order in both, each frame contiguous
    return torch.stack([torch.dot(x.reshape(-1), y.reshape(-1)) for x, y in zip(a, b)])


def is_hard_frame_gate(gate: torch.Tensor) -> bool:
    """gate (B, 1, 1, 1) holds only zeros and ones (hard selection), checked on CPU only (a GPU check would
    wait for the device)."""
    return gate.device.type == "cpu" and gate.shape[1:] == (1, 1, 1) and bool(((gate == 0) | (gate == 1)).all())


def frame_gated_add(skip: torch.Tensor, gate: torch.Tensor, f: torch.Tensor, relu: bool = False,
                    own_f: bool = False) -> torch.Tensor:
    """act(skip + gate ⊙ f), act a ReLU when `relu`: skip, f (B, C, H, W); gate (B, 1, 1, 1) per frame or
    (B, 1, H, W) with spatial masks. own_f: the caller hands f over (a fresh tensor nothing else reads); with
    autograd and a hard CPU gate the result is then built in f's memory (`HardGatedAddInto`)."""
    act = torch.relu_ if relu else (lambda y: y)  # only ever applied to fresh sums
    if not torch.is_grad_enabled() or gate.shape[1:] != (1, 1, 1):
        return act(torch.addcmul(skip, gate, f))
    if own_f and f.requires_grad and not f.is_leaf and is_hard_frame_gate(gate):
        return HardGatedAddInto.apply(skip, gate, f, relu)
    return act(FrameGatedAdd.apply(skip, gate, f))


def gated_residual(x: torch.Tensor, skip: torch.Tensor, residual, mask: torch.Tensor,
                   spatial: torch.Tensor | None, sliced: bool, mask_mode: str, shift_segments: int = 0,
                   relu: bool = True, reuse_input: bool = False, skip_nonneg: bool = False) -> torch.Tensor:
    """A focal block's output: act(skip + the residual function gated per frame).

    x: (B, C_in, H, W) block input; skip: (B, C_out, H, W) from the unshifted input; residual: a callable on
    any sub-batch whose frames are independent (the shift is done here, over `shift_segments` frames when
    non-zero); mask: (B, 1, 1, 1); spatial: (B, 1, H, W) or None; relu: the final activation.
    Sliced: the selected frames are gathered on dim 0 (shifted as if the whole clip were shifted), run
    through `residual` and added to skip at their positions (or, in input mode, written over
    act(skip + F(0))). Without autograd the sum is built in skip's own memory when skip is a fresh
    shortcut output, or is x and the caller hands x over (`reuse_input`): on CPU a fresh full-size tensor
    costs more than the adds themselves. skip_nonneg: skip >= 0 already (an identity shortcut fed by a
    ReLU), so in output mode the final ReLU only has to touch the selected frames.
    """
    gate = mask if spatial is None else mask * spatial
    act = torch.relu_ if relu else (lambda y: y)  # only ever applied to fresh sums
    if not sliced:
        xs = temporal_shift(x, shift_segments) if shift_segments else x
        if mask_mode == "input":
            return act(skip + residual(xs * gate))
        return frame_gated_add(skip, gate, residual(xs), relu, own_f=True)
    idx = (mask.view(-1) > 0.5).nonzero().view(-1)
    r = None
    if idx.numel():
        sub_in = gather_shifted(x, idx, shift_segments) if shift_segments else select_frames(x, idx)
        sub_gate = gate.index_select(0, idx)
        if spatial is None and not (torch.is_grad_enabled() and sub_gate.requires_grad):
            r = residual(sub_in)  # a selected frame's gate is 1 (to rounding) and no gradient needs it
        elif mask_mode == "input":
            r = residual(sub_in * sub_gate)
        else:
            r = sub_gate * residual(sub_in)
    if mask_mode == "input":  # skipped frames: skip + F(0), F(0) computed once
        out = act(skip + residual(torch.zeros_like(x[:1])))
        return out if r is None else copy_frames_(out, idx, act(r.add_(select_frames(skip, idx))))
    own = not torch.is_grad_enabled() and (skip is not x or reuse_input)
    out = skip if own else skip.clone()  # x is read above, so it may be overwritten now
    if relu and skip_nonneg and not torch.is_grad_enabled():
        if r is not None:  # relu(skip) = skip on the skipped frames: one pass over the selected ones
            ov, rv = frames_view(out), frames_view(r)
            for j, i in enumerate(idx.tolist()):
                ov[i].add_(rv[j]).relu_()
        return out
    if r is not None:
        add_frames_(out, idx, r)
    return act(out)
