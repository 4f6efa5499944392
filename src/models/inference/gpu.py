"""GPU inference rewrites, each behind a switch of `apply_gpu_rewrites` (the defaults change nothing).

grouped_convs: how grouped (non-depthwise) convolutions run, e.g. the focal branch's groups=2 convs, for
which cuDNN may pick slow kernels:
  "native": as they are;
  "split": one dense convolution per group on its slice of the channels, concatenated (the same MACs);
  "dense": one dense convolution with the block-diagonal weight (groups x the MACs, one kernel).
All three give the same values (to float rounding). Which pays depends on the GPU, the dtype and the batch:
measure before changing the default.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from src.models.inference.rewrites import conv_like, replace_modules

GROUPED_CONVS = ("native", "split", "dense")


class SplitGroupsConv2d(nn.Conv2d):
    """A grouped nn.Conv2d run as one dense convolution per group on its channel slice, outputs concatenated:
    (B, C_in, H, W) -> (B, C_out, H', W'). Same parameters, same MACs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.groups
        cin, cout = self.in_channels // g, self.out_channels // g
        outs = [F.conv2d(x[:, i * cin:(i + 1) * cin], self.weight[i * cout:(i + 1) * cout],
                         None if self.bias is None else self.bias[i * cout:(i + 1) * cout],
                         self.stride, self.padding, self.dilation, 1) for i in range(g)]
        return torch.cat(outs, 1)


def block_diagonal(weight: torch.Tensor, groups: int) -> torch.Tensor:
    """(C_out, C_in/g, k, k) grouped weight -> (C_out, C_in, k, k) dense weight, zero off the diagonal blocks."""
    cout, cin_g = weight.shape[:2]
    dense = weight.new_zeros(cout, cin_g * groups, *weight.shape[2:])
    cout_g = cout // groups
    for i in range(groups):
        dense[i * cout_g:(i + 1) * cout_g, i * cin_g:(i + 1) * cin_g] = weight[i * cout_g:(i + 1) * cout_g]
    return dense


class DenseGroupsConv2d(nn.Conv2d):
    """A grouped nn.Conv2d run as one dense convolution with its block-diagonal weight (`block_diagonal`, built
    once per weight version): (B, C_in, H, W) -> (B, C_out, H', W'). Same parameters and values."""

    def dense_weight(self) -> torch.Tensor:
        stamp = (self.weight.data_ptr(), 0 if self.weight.is_inference() else self.weight._version,
                 self.weight.dtype, self.weight.device)
        cache = self.__dict__.get("_dense")
        if cache is None or cache[0] != stamp:
            cache = (stamp, block_diagonal(self.weight.detach(), self.groups))
            self.__dict__["_dense"] = cache
        return cache[1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and self.weight.requires_grad:
            weight = block_diagonal(self.weight, self.groups)  # gradients reach the grouped weight
        else:
            weight = self.dense_weight()
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, 1)


def rewrite_grouped_convs(model: nn.Module, how: str) -> int:
    """Every grouped, non-depthwise plain nn.Conv2d of `model` run as `how` ("split" | "dense"; "native" keeps
    them), sharing the parameters; returns how many."""
    if how not in GROUPED_CONVS:
        raise ValueError(f"grouped_convs={how!r}: choose one of {', '.join(GROUPED_CONVS)}")
    if how == "native":
        return 0
    cls = SplitGroupsConv2d if how == "split" else DenseGroupsConv2d

    def make(m: nn.Module) -> nn.Module | None:
        grouped = type(m) is nn.Conv2d and 1 < m.groups < m.in_channels
        return conv_like(cls, m) if grouped else None

    return replace_modules(model, make)


def apply_gpu_rewrites(model: nn.Module, grouped_convs: str = "native") -> dict:
    """The GPU rewrites of this module on `model`, in place; returns how many modules each changed."""
    return {"grouped_convs": rewrite_grouped_convs(model, grouped_convs)}
