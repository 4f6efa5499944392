"""Inference-only rewrites of a trained model that keep its outputs (to float rounding): BN folding and
prepacked oneDNN convolution weights.

`fold_batchnorm(model)` merges every BatchNorm2d that directly follows a Conv2d (a `(Conv2d, BatchNorm2d)`
pair inside an nn.Sequential, or sibling attributes `conv<i>` / `bn<i>`, e.g. `conv1`/`bn1`, `conv`/`bn`)
into the conv's weight and bias and replaces the BN by an Identity: one pass over each activation map fewer
per conv, which is memory traffic that a CPU pays in full. Both TSM/TSN and AFNet are folded by the same
rules, so latency comparisons stay fair. The folded model is for evaluation only (no BN left to train).

`set_stem_chunk_frames(model, n)` makes the ResNet stems (conv 7x7, ReLU, max-pool: per frame) run n frames at
a time: the same values, without the 38.5 MB conv output that a 12-frame 224² clip maps afresh on every call.

`prepack_convs(model)` makes every plain convolution keep its weight in oneDNN's blocked layout, reordered once
per input shape, for channels-last float32 CPU inputs without autograd: `F.conv2d` reorders the plain weight on
every call, a cost that grows with the weight, not with the activation (at 7² maps, stage 4 of a ResNet-50,
~30 % of the call). The outputs are the same numbers (the same oneDNN kernels run); other inputs take the usual
`F.conv2d`.
"""

from __future__ import annotations

import torch
from torch import nn

from src.models.layers import GroupedPointwiseConv2d


@torch.no_grad()
def fold_conv_bn_(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """conv <- bn(conv(.)) with bn's running statistics; conv gains a bias; conv attributes are kept."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C_out,)
    bias = bn.bias - bn.running_mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    conv.weight.mul_(scale.view(-1, *([1] * (conv.weight.dim() - 1))))
    conv.bias = nn.Parameter(bias)


def conv_bn_pairs(model: nn.Module) -> list[tuple[nn.Module, str, nn.Conv2d, nn.BatchNorm2d]]:
    """(parent, bn attribute name, conv, bn) for every BN fed directly by a conv, by the rules above."""
    pairs = []
    for parent in model.modules():
        children = dict(parent.named_children())
        if isinstance(parent, nn.Sequential):
            names = list(children)
            pairs += [(parent, b, children[a], children[b]) for a, b in zip(names, names[1:])
                      if isinstance(children[a], nn.Conv2d) and isinstance(children[b], nn.BatchNorm2d)]
            continue
        for name, bn in children.items():
            conv = children.get("conv" + name[2:]) if name.startswith("bn") else None
            if isinstance(bn, nn.BatchNorm2d) and isinstance(conv, nn.Conv2d):
                pairs.append((parent, name, conv, bn))
    return pairs


def fold_batchnorm(model: nn.Module) -> int:
    """Fold BN into the preceding convs of an eval-mode `model`, in place; returns how many were folded."""
    if model.training:
        raise RuntimeError("fold_batchnorm needs model.eval(): training BN uses batch statistics")
    pairs = conv_bn_pairs(model)
    for parent, name, conv, bn in pairs:
        if conv.out_channels != bn.num_features or not bn.track_running_stats:
            raise ValueError(f"cannot fold {name} of {type(parent).__name__}: BN does not match its conv")
        fold_conv_bn_(conv, bn)
        setattr(parent, name, nn.Identity())
    return len(pairs)


def mkldnn_prepack_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")


class PrepackedConv2d(nn.Conv2d):
    """nn.Conv2d whose weight is reordered into oneDNN's layout once per input shape (`prepack_convs`).

    forward: (B, C_in, H, W) -> (B, C_out, H', W'); channels-last float32 CPU inputs without autograd run
    oneDNN's convolution on the cached packed weight (output channels-last, as `F.conv2d` gives); any other
    input takes `F.conv2d`. The cache is dropped when the weight or bias changes (a version or storage check),
    so a later `load_state_dict` or optimiser step cannot be served stale weights (parameters created under
    `torch.inference_mode` have no version counter: for them only a new storage is seen).
    """

    def __getstate__(self) -> dict:
        """Copies and pickles leave the packed weights out (oneDNN's opaque tensors have no storage to copy);
        the copy packs its own on first use."""
        state = self.__dict__.copy()
        state.pop("_packed", None)
        return state

    def packed_weight(self, x: torch.Tensor) -> torch.Tensor:
        # inference tensors (made under torch.inference_mode) keep no version counter: their storage stands in
        stamp = tuple((p.data_ptr(), 0 if p.is_inference() else p._version)
                      for p in (self.weight, self.bias) if p is not None)
        cache = self.__dict__.setdefault("_packed", {})
        if cache.get("stamp") != stamp:
            cache.clear()
            cache["stamp"] = stamp
        key = tuple(x.shape)
        if key not in cache:
            cache[key] = torch.ops.mkldnn._reorder_convolution_weight(
                self.weight.detach(), list(self.padding), list(self.stride), list(self.dilation), self.groups,
                list(x.shape))
        return cache[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (torch.is_grad_enabled() or x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() != 4
                or self.padding_mode != "zeros" or isinstance(self.padding, str)
                or not x.is_contiguous(memory_format=torch.channels_last) or x.is_contiguous()):
            return nn.Conv2d.forward(self, x)
        bias = None if self.bias is None else self.bias.detach()
        return torch.ops.mkldnn._convolution_pointwise(
            x, self.packed_weight(x), bias, list(self.padding), list(self.stride), list(self.dilation), self.groups,
            "none", [], "")


def prepack_convs(model: nn.Module) -> int:
    """Turn every nn.Conv2d (and `GroupedPointwiseConv2d`, whose own path only serves training) of an eval-mode
    `model` into a `PrepackedConv2d`, in place; other Conv2d subclasses (e.g. `VectorConv2d`, a matrix product
    on pooled features) keep their forward. Returns how many were converted; 0 where oneDNN is missing."""
    if model.training:
        raise RuntimeError("prepack_convs needs model.eval(): the packed weights serve inference only")
    if not mkldnn_prepack_available():
        return 0
    convs = [m for m in model.modules() if type(m) in (nn.Conv2d, GroupedPointwiseConv2d)]
    for m in convs:
        m.__class__ = PrepackedConv2d
    return len(convs)


STEM_CHUNK_FRAMES = 4  # a 12.8 MB stem conv output per chunk at 224²: under glibc's 32 MiB mmap threshold


def set_stem_chunk_frames(model: nn.Module, frames: int) -> int:
    """Set `stem_chunk_frames` on every submodule that has one (the ResNet and AF-ResNet trunks); returns how
    many. The stem of those models then runs frame-chunked in eval mode (`frame_ops.frame_chunked`)."""
    owners = [m for m in model.modules() if hasattr(type(m), "stem_chunk_frames")]
    for m in owners:
        m.stem_chunk_frames = frames
    return len(owners)


def prepare_for_inference(model: nn.Module, channels_last: bool = True, fold_bn: bool = True,
                          prepack: bool = True, stem_chunk_frames: int = STEM_CHUNK_FRAMES) -> nn.Module:
    """`model` in eval mode with the CPU inference rewrites, in place: BN folded into the convs, channels-last
    memory, conv weights prepacked (the last only with channels-last), the ResNet stems run on chunks of
    `stem_chunk_frames` frames (0: whole clips). Returns the model (`.to` may rebind it).
    The same rewrites for every model, so that latencies compare fair (`make bench`, `src.eval`); the result is
    for inference only. Feed it channels-last folded clips (`channels_last_clip`)."""
    model.eval()
    set_stem_chunk_frames(model, stem_chunk_frames)
    if fold_bn:
        fold_batchnorm(model)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        if prepack:
            prepack_convs(model)
    return model


def channels_last_clip(clip: torch.Tensor) -> torch.Tensor:
    """(N, T, 3, H, W) or (N*T, 3, H, W) -> (N*T, 3, H, W) in channels-last memory, the models' folded input."""
    return (clip.flatten(0, 1) if clip.dim() == 5 else clip).contiguous(memory_format=torch.channels_last)
