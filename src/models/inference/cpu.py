"""CPU inference fast paths: rewrites of an eval-mode model that keep its outputs (to float rounding).

On a CPU at batch 1 a forward costs its arithmetic plus its memory traffic, and every fresh full-size tensor
also costs its page faults (glibc maps allocations past its mmap threshold, at most 32 MiB, afresh on every
call). These rewrites save passes and fresh tensors; `apply_cpu_rewrites` applies them to every model alike:

- `FrameChunked` stems: a ResNet stem (conv 7x7/2, ReLU, max-pool; per frame) runs a few frames at a time, so
  the 112² conv output of a 12-frame clip (38.5 MB at 224²) is never held whole.
- `ShortcutPool`: the ResNet-D shortcut's 3x3 average pool as a depthwise convolution (faster kernels).
- `VectorConv2d`: the navigation's 1x1 convs on pooled (B, C, 1, 1) features as matrix products (a conv
  call on a 1x1 map mostly pays oneDNN's set-up).
- `PrepackedConv2d` (`onednn`): every plain conv on a weight reordered once per input shape.
- `ShiftInPlace`: a shifted block whose input nobody reads afterwards (every block of a trunk's Sequential,
  the fusion blocks) shifts that input in its own memory once its skip path has read it (a projection skip;
  an identity skip needs the unshifted input).
- `CpuAFStage`: an AF stage in lockstep order (navigation, focal block, ample block per step), selected
  frames gathered and summed frame by frame, every sum built in a tensor the stage owns, the fusion written
  into the focal output with the ample output upsampled on the fly.
Each falls back to the plain module when autograd records, in training mode or off the CPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from src.models.afnet.af_resnet import AFResNet
from src.models.afnet.fusion import AddFusion, DynamicFusion
from src.models.afnet.navigation import Navigation
from src.models.afnet.stage import AFStage, FocalMode
from src.models.inference.onednn import prepack_convs
from src.models.inference.rewrites import conv_like, replace_modules
from src.models.layers import ResidualBlock
from src.models.resnet import ResNet
from src.models.temporal_shift import check_segments, is_channels_last, select_frames, temporal_shift

STEM_CHUNK_FRAMES = 4  # a 12.8 MB stem conv output per chunk at 224²: under glibc's 32 MiB mmap threshold


def fast(x: torch.Tensor, module: nn.Module) -> bool:
    """The CPU paths apply: a CPU input, an eval-mode module, no autograd recording."""
    return x.device.type == "cpu" and not module.training and not torch.is_grad_enabled()


# ---------------------------------------------------------------- frame gathers and sums in place

def frames_view(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> a view with frames on dim 0 and each frame contiguous: (B, H, W, C) if channels-last."""
    return x.permute(0, 2, 3, 1) if is_channels_last(x) else x


def copy_frames_(out: torch.Tensor, idx: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """out.index_copy_(0, idx, src) as block copies when both are channels-last: out (B, C, H, W), src (k, ...)."""
    if is_channels_last(out) and is_channels_last(src):
        out.permute(0, 2, 3, 1).index_copy_(0, idx, src.permute(0, 2, 3, 1))
        return out
    return out.index_copy_(0, idx, src)


def add_frames_(out: torch.Tensor, idx: torch.Tensor, src: torch.Tensor) -> torch.Tensor:
    """out.index_add_(0, idx, src) (idx without repeats) as block adds when both are channels-last."""
    if is_channels_last(out) and is_channels_last(src):
        out.permute(0, 2, 3, 1).index_add_(0, idx, src.permute(0, 2, 3, 1))
        return out
    return out.index_add_(0, idx, src)


def gather_shifted_frames(x: torch.Tensor, idx: torch.Tensor, num_segments: int, fold_div: int = 8) -> torch.Tensor:
    """`temporal_shift.gather_shifted` with the shifted channels copied frame by frame by slice copies: on a CPU
    with a handful of frames per block, 2-3x faster than the index gathers. x (N*T, C, H, W), idx (k,) ->
    (k, C, H, W) in x's memory format."""
    if not num_segments:
        return select_frames(x, idx)
    fold = x.shape[1] // fold_div
    xv = frames_view(x)
    cl = xv is not x
    out = xv.index_select(0, idx)
    channels = (lambda t, lo, hi: t[..., lo:hi]) if cl else (lambda t, lo, hi: t[:, lo:hi])
    for j, i in enumerate(idx.tolist()):
        t = i % num_segments
        for src, valid, lo in ((i + 1, t < num_segments - 1, 0), (i - 1, t > 0, fold)):
            part = channels(out[j:j + 1], lo, lo + fold)
            if valid:
                part.copy_(channels(xv[src:src + 1], lo, lo + fold))
            else:
                part.zero_()  # clip boundary: nothing to take
    return out.permute(0, 3, 1, 2) if cl else out


def temporal_shift_(x: torch.Tensor, num_segments: int, fold_div: int = 8) -> torch.Tensor:
    """`temporal_shift` written into x itself, copying only the shifted quarter of the channels."""
    check_segments(x, num_segments)
    nt, c, h, w = x.shape
    fold = c // fold_div
    v = x.view(nt // num_segments, num_segments, c, h, w)
    v[:, :-1, :fold] = v[:, 1:, :fold].clone()  # a copy first: source and destination overlap
    v[:, -1, :fold] = 0
    v[:, 1:, fold:2 * fold] = v[:, :-1, fold:2 * fold].clone()
    v[:, 0, fold:2 * fold] = 0
    return x


# ---------------------------------------------------------------- module rewrites

class FrameChunked(nn.Module):
    """module(x) for a per-frame `module` (no mixing across dim 0), run on chunks of `frames` frames of x and
    concatenated: the same values. Training mode or autograd: one call."""

    def __init__(self, module: nn.Module, frames: int = STEM_CHUNK_FRAMES):
        super().__init__()
        self.module, self.frames = module, frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not fast(x, self) or x.shape[0] <= self.frames:
            return self.module(x)
        return torch.cat([self.module(chunk) for chunk in x.split(self.frames)])


def chunk_stems(model: nn.Module, frames: int = STEM_CHUNK_FRAMES) -> int:
    """Make the stems of every ResNet and AF-ResNet in `model` `FrameChunked`; returns how many."""
    count = 0
    for m in list(model.modules()):
        if isinstance(m, AFResNet) and not isinstance(m.stem, FrameChunked):
            m.stem = FrameChunked(m.stem, frames)
            count += 1
        elif isinstance(m, ResNet) and not isinstance(m.conv1, FrameChunked):  # its stem is conv1 .. maxpool
            m.conv1 = FrameChunked(nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool), frames)
            m.bn1, m.relu, m.maxpool = nn.Identity(), nn.Identity(), nn.Identity()
            count += 1
    return count


class ShortcutPool(nn.AvgPool2d):
    """nn.AvgPool2d(3, stride, 1) (zeros counted: always a ninth of the 9 taps) as a depthwise convolution with
    a constant 1/9 kernel: the same values to float rounding, on CPU faster than avg_pool2d's kernel.
    (B, C, H, W) -> (B, C, H/s, W/s), in x's memory format."""

    def __init__(self, stride: int):
        super().__init__(3, stride, 1)
        self._kernels: dict = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # a kernel made under inference_mode is an inference tensor, which autograd refuses to save: one per mode
        key = (x.shape[1], x.dtype, x.device, torch.is_inference_mode_enabled())
        if key not in self._kernels:
            self._kernels[key] = torch.full((x.shape[1], 1, 3, 3), 1 / 9, dtype=x.dtype, device=x.device)
        return F.conv2d(x, self._kernels[key], None, self.stride, 1, groups=x.shape[1])


def as_shortcut_pool(m: nn.Module) -> nn.Module | None:
    if (type(m) is nn.AvgPool2d and m.kernel_size in (3, (3, 3)) and m.padding in (1, (1, 1)) and m.count_include_pad
            and not m.ceil_mode and m.divisor_override is None and isinstance(m.stride, int)):
        return ShortcutPool(m.stride)
    return None


class VectorConv2d(nn.Conv2d):
    """A 1x1 convolution applied to pooled features (B, C_in, 1, 1) -> (B, C_out, 1, 1), run as one matrix
    product (grouped: one batched product over the groups), the same sums as the convolution. Other inputs
    (a spatial map) take the usual convolution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[-2:] != (1, 1) or self.kernel_size != (1, 1) or self.padding != (0, 0):
            return super().forward(x)  # a padded conv would see zeros around the pooled value: not a product
        n, g = x.shape[0], self.groups
        w = self.weight.view(self.out_channels, self.in_channels // g)
        if g == 1:
            return F.linear(x.reshape(n, -1), w, self.bias).view(n, -1, 1, 1)
        xg = x.reshape(n, g, -1).transpose(0, 1)  # (g, B, C_in/g)
        wg = w.view(g, -1, w.shape[1]).transpose(1, 2)  # (g, C_in/g, C_out/g)
        y = torch.bmm(xg, wg) if self.bias is None else torch.baddbmm(self.bias.view(g, 1, -1), xg, wg)
        return y.transpose(0, 1).reshape(n, -1, 1, 1)


def navigation_vector_convs(model: nn.Module) -> int:
    """The pooled-feature convs of every `Navigation` (`conv`, `temporal`) as `VectorConv2d`s; returns how many."""
    count = 0
    for nav in [m for m in model.modules() if isinstance(m, Navigation)]:
        for name in ("conv", "temporal"):
            conv = getattr(nav, name)
            if type(conv) is nn.Conv2d:
                setattr(nav, name, conv_like(VectorConv2d, conv))
                count += 1
    return count


def forward_shifting_in_place(block: ResidualBlock, x: torch.Tensor) -> torch.Tensor:
    """block(x) for an x nobody reads afterwards: the skip path first, then, unless the skip is x itself, the
    shift written into x (`temporal_shift_`) instead of a copy."""
    skip = block.skip_path(x)
    if block.shift_segments and skip is not x:
        xs = temporal_shift_(x, block.shift_segments)
    else:
        xs = temporal_shift(x, block.shift_segments)
    y = block.residual(xs)
    return block.activate(y if skip is None else y.add_(skip))


class ShiftInPlace(nn.Module):
    """A shifted `ResidualBlock` whose input the model never reads again (`forward_shifting_in_place`)."""

    def __init__(self, block: ResidualBlock):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return forward_shifting_in_place(self.block, x) if fast(x, self) else self.block(x)


def shift_in_place(model: nn.Module) -> int:
    """Wrap in `ShiftInPlace` every shifted `ResidualBlock` inside an nn.Sequential (a trunk's chain of blocks:
    each input is the previous module's output) and every AF stage's fusion block; returns how many."""
    owners = [m for m in model.modules() if isinstance(m, nn.Sequential)]
    count = 0
    for owner in owners:
        for name, child in list(owner.named_children()):
            if isinstance(child, ResidualBlock) and child.shift_segments:
                setattr(owner, name, ShiftInPlace(child))
                count += 1
    for stage in [m for m in model.modules() if isinstance(m, AFStage)]:
        block = stage.fusion_block
        if isinstance(block, ResidualBlock) and block.shift_segments:
            stage.fusion_block = ShiftInPlace(block)
            count += 1
    return count


# ---------------------------------------------------------------- AF stages

def focal_block(focal: nn.Module) -> ResidualBlock:
    """The `ResidualBlock` behind a focal module (`FocalResidual` is one; `FocalInvertedResidual` holds one)."""
    return focal if isinstance(focal, ResidualBlock) else focal.block


def sliced_focal(block: ResidualBlock, x: torch.Tensor, mask: torch.Tensor, spatial: torch.Tensor | None,
                 mask_mode: str, own_input: bool) -> torch.Tensor:
    """`blocks.gated_residual` on the sliced path, the sums built in tensors this call owns: the skip path's
    fresh output, or x itself when `own_input` (the previous focal block's output, which nothing else reads).
    Where that skip is x and fed by a ReLU (>= 0), only the selected frames need the final ReLU."""
    gate = mask if spatial is None else mask * spatial
    idx = (mask.view(-1) > 0.5).nonzero().view(-1)
    skip = block.skip_path(x)
    r = None
    if idx.numel():
        sub = gather_shifted_frames(x, idx, block.shift_segments)
        sub_gate = None if spatial is None else gate.index_select(0, idx).to(sub.dtype)
        if sub_gate is None:
            r = block.residual(sub)  # a selected frame's gate is 1 (to rounding)
        elif mask_mode == "input":
            r = block.residual(sub * sub_gate)
        else:
            r = sub_gate * block.residual(sub)
    if mask_mode == "input":  # skipped frames: skip + F(0), F(0) computed once
        if idx.numel() == x.shape[0]:
            return block.activate(r.add_(skip))
        out = block.activate(skip + block.residual(torch.zeros_like(x[:1])))
        return out if r is None else copy_frames_(out, idx, block.activate(r.add_(select_frames(skip, idx))))
    own = skip is not x or own_input
    out = skip if own else skip.clone()  # x was read above, so it may be overwritten now
    if block.relu_out and skip is x and own_input:
        if r is not None:  # relu(skip) = skip on the skipped frames: one pass over the selected ones
            ov, rv = frames_view(out), frames_view(r)
            for j, i in enumerate(idx.tolist()):
                ov[i].add_(rv[j]).relu_()
        return out
    if r is not None:
        add_frames_(out, idx, r)
    return block.activate(out)


def upsample_views(f: torch.Tensor, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int] | None:
    """Views of f (B, C, H, W) and of a (B, C, H/2, W/2) whose broadcast is a's nearest 2x upsampling, and the
    channel dim of those views; None unless H, W are exactly twice a's and both share a memory layout.
    Channels-last: 6-D views (B, H/2, 2, W/2, 2, C) / (B, H/2, 1, W/2, 1, C), channels innermost. NCHW: a is
    first repeated along W (a half-size copy), so the views are (B, C, H/2, 2, W) / (B, C, H/2, 1, W) with
    whole rows innermost."""
    if tuple(f.shape[-2:]) != (2 * a.shape[-2], 2 * a.shape[-1]) or f.dtype != a.dtype:
        return None
    b, c, hh, ww = f.shape
    h, w = a.shape[-2:]
    if f.is_contiguous() and a.is_contiguous():
        aw = a.unsqueeze(-1).expand(b, c, h, w, 2).reshape(b, c, h, 1, ww)
        return f.view(b, c, h, 2, ww), aw, 1
    if is_channels_last(f) and is_channels_last(a):
        return f.permute(0, 2, 3, 1).view(b, h, 2, w, 2, c), a.permute(0, 2, 3, 1).view(b, h, 1, w, 1, c), 5
    return None


def fuse_into_focal(fuse: nn.Module, a: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """fuse(a, f) written into f (the focal branch's own output) with a upsampled on the fly: for an exact 2x
    ratio, up(a) is a broadcast over 2x2 blocks and GAP(up(a) + f) = GAP(a) + GAP(f), so the upsampled tensor
    is never made. Other sizes or fusions: fuse(a, f)."""
    views = upsample_views(f, a) if isinstance(fuse, (DynamicFusion, AddFusion)) else None
    if views is None:
        return fuse(a, f)
    fv, av, cdim = views
    if isinstance(fuse, DynamicFusion):
        theta = fuse.attention(f.mean((2, 3), keepdim=True) + a.mean((2, 3), keepdim=True)).to(f.dtype)
        shape = [1] * fv.dim()
        shape[0], shape[cdim] = theta.shape[0], theta.shape[1]
        fv.lerp_(av, theta.reshape(shape))
    else:
        fv.add_(av)
    return f.relu_() if fuse.relu else f


class CpuAFStage(nn.Module):
    """`AFStage` at sliced CPU inference, the same values: lockstep order (navigation i, focal block i, ample
    block i), so the first ample block, the stage input's last reader, shifts it in place; focal blocks by
    `sliced_focal`; the fusion by `fuse_into_focal`. Other modes (masked, soft, training, autograd, another
    device): the plain stage."""

    def __init__(self, stage: AFStage):
        super().__init__()
        self.stage = stage

    def forward(self, x: torch.Tensor, mode: FocalMode) -> tuple[torch.Tensor, list, list]:
        s = self.stage
        if not (mode.sliced and fast(x, self)):
            return s(x, mode)
        a = f = x
        masks, spatial = [], []
        for i, (nav, ample, focal) in enumerate(zip(s.nav, s.ample, s.focal)):
            m, sp = nav(a, mode.tau, mode.noise, mode.forced_ratio(focal.mask_index), mode.soft)
            if sp is not None:
                sp = F.interpolate(sp, size=x.shape[-2:], mode="nearest")
                spatial.append(sp)
            masks.append(m)
            f = sliced_focal(focal_block(focal), f, m, sp, mode.mask_mode, own_input=i > 0)
            a = forward_shifting_in_place(ample, a) if i == 0 and isinstance(ample, ResidualBlock) else ample(a)
        return s.fusion_block(fuse_into_focal(s.fuse, s.proj(a), f)), masks, spatial


def af_stages(model: nn.Module) -> int:
    """Every `AFStage` of `model` as a `CpuAFStage`; returns how many."""
    return replace_modules(model, lambda m: CpuAFStage(m) if type(m) is AFStage else None)


def apply_cpu_rewrites(model: nn.Module, prepack: bool = True, stem_chunk_frames: int = STEM_CHUNK_FRAMES) -> dict:
    """Every CPU fast path of this module on an eval-mode `model`, in place. prepack: `PrepackedConv2d`s
    (effective for channels-last float32 inputs); stem_chunk_frames: frames per stem chunk (0: whole clips).
    Returns how many modules each rewrite changed."""
    done = {"stems": chunk_stems(model, stem_chunk_frames) if stem_chunk_frames else 0,
            "shortcut_pools": replace_modules(model, as_shortcut_pool),
            "vector_convs": navigation_vector_convs(model),
            "prepacked_convs": prepack_convs(model) if prepack else 0,
            "shift_in_place": shift_in_place(model),
            "af_stages": af_stages(model)}
    model.train(model.training)  # the modules made here start in training mode
    return done
