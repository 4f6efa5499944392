"""oneDNN convolutions on prepacked weights: the one module of `src.models` that calls torch-private APIs
(`torch.ops.mkldnn._reorder_convolution_weight`, `torch.ops.mkldnn._convolution_pointwise`), each with a
fallback to `F.conv2d` where this torch build lacks them or refuses the call.

`F.conv2d` reorders a plain weight into oneDNN's blocked layout on every CPU call, a cost that grows with the
weight, not with the activation (on the 7x7 maps of a ResNet-50's last stage, a large part of the call).
`PrepackedConv2d` reorders it once per input shape and runs the same oneDNN kernels: the same numbers.
"""

from __future__ import annotations

import torch
from torch import nn

from src.models.inference.rewrites import conv_like, replace_modules


def prepack_available() -> bool:
    """True when this torch build has oneDNN and both private ops used here."""
    ops = getattr(torch.ops, "mkldnn", None)
    try:
        return (torch.backends.mkldnn.is_available() and hasattr(ops, "_convolution_pointwise")
                and hasattr(ops, "_reorder_convolution_weight"))
    except (AttributeError, RuntimeError):  # torch.ops resolves names lazily
        return False


class PrepackedConv2d(nn.Conv2d):
    """nn.Conv2d whose weight is reordered into oneDNN's layout once per input shape (`prepack_convs`).

    forward: (B, C_in, H, W) -> (B, C_out, H', W'); channels-last float32 CPU inputs without autograd run
    oneDNN's convolution on the cached packed weight (output channels-last, as `F.conv2d` gives); any other
    input, or a torch whose private ops refuse the call, takes `F.conv2d`. The cache is dropped when the weight
    or bias changes (a version or storage check), so a later `load_state_dict` or optimiser step is never
    served stale weights (parameters created under `torch.inference_mode` have no version counter: for them
    only a new storage is seen).
    """

    def __getstate__(self) -> dict:
        """Copies and pickles leave the packed weights out (oneDNN's opaque tensors have no storage to copy);
        the copy packs its own on first use."""
        state = self.__dict__.copy()
        state.pop("_packed", None)
        return state

    def packed_weight(self, x: torch.Tensor) -> torch.Tensor:
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

    def packs(self, x: torch.Tensor) -> bool:
        return not (torch.is_grad_enabled() or x.device.type != "cpu" or x.dtype != torch.float32 or x.dim() != 4
                    or self.weight.dtype != torch.float32 or self.padding_mode != "zeros"
                    or isinstance(self.padding, str) or self.__dict__.get("_refused")
                    or not x.is_contiguous(memory_format=torch.channels_last) or x.is_contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.packs(x):
            bias = None if self.bias is None else self.bias.detach()
            try:
                return torch.ops.mkldnn._convolution_pointwise(
                    x, self.packed_weight(x), bias, list(self.padding), list(self.stride), list(self.dilation),
                    self.groups, "none", [], "")
            except (RuntimeError, TypeError):  # another torch's signature: plain convolutions from now on
                self.__dict__["_refused"] = True
        return nn.Conv2d.forward(self, x)


def prepack_convs(model: nn.Module) -> int:
    """Put a `PrepackedConv2d` sharing the parameters in place of every plain nn.Conv2d of an eval-mode
    `model` (subclasses keep their own forward). Returns how many; 0 where oneDNN or its private ops are missing."""
    if model.training:
        raise RuntimeError("prepack_convs needs model.eval(): the packed weights serve inference only")
    if not prepack_available():
        return 0
    return replace_modules(model, lambda m: conv_like(PrepackedConv2d, m) if type(m) is nn.Conv2d else None)
