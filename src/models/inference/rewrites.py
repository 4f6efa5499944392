"""Rewrites that keep a trained model's outputs (to float rounding) on every device: BN folding, and the tools
the device rewrites share (swapping submodules, convolutions that share another's parameters)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def replace_modules(model: nn.Module, make: Callable[[nn.Module], nn.Module | None]) -> int:
    """Put make(m) in place of every submodule m of `model` for which it returns a module (None: keep m).
    A module reachable under several names gets one replacement. Modules made here are not visited again.
    Returns how many submodules were replaced."""
    made: dict[int, nn.Module | None] = {}
    count = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if id(child) not in made:
                made[id(child)] = make(child)
            new = made[id(child)]
            if new is not None and new is not child:
                setattr(parent, name, new)
                count += 1
    return count


def conv_like(cls: type[nn.Conv2d], conv: nn.Conv2d) -> nn.Conv2d:
    """An instance of `cls` (an nn.Conv2d subclass with nn.Conv2d's constructor) with conv's hyper-parameters,
    sharing conv's weight and bias Parameters (no copy), and conv's other plain attributes (e.g. the FLOPs
    counter's `focal_mask_index`)."""
    new = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
              conv.groups, conv.bias is not None, conv.padding_mode, device="meta")
    new.weight, new.bias = conv.weight, conv.bias
    for key, value in vars(conv).items():
        if not key.startswith("_") and key not in vars(new):
            setattr(new, key, value)
    new.train(conv.training)
    return new


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
    """(parent, bn attribute name, conv, bn) for every BN fed directly by a conv: a `(Conv2d, BatchNorm2d)`
    pair of neighbours in an nn.Sequential, or sibling attributes `conv<i>` / `bn<i>` (`conv1`/`bn1`,
    `conv`/`bn`)."""
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
    """Merge every BatchNorm2d that directly follows a Conv2d (`conv_bn_pairs`) into the conv's weight and bias
    and put an Identity in its place, in an eval-mode `model`, in place: one pass over each activation map
    fewer per conv. The folded model is for evaluation only (no BN left to train). Returns how many."""
    if model.training:
        raise RuntimeError("fold_batchnorm needs model.eval(): training BN uses batch statistics")
    pairs = conv_bn_pairs(model)
    for parent, name, conv, bn in pairs:
        if conv.out_channels != bn.num_features or not bn.track_running_stats:
            raise ValueError(f"cannot fold {name} of {type(parent).__name__}: BN does not match its conv")
        fold_conv_bn_(conv, bn)
        setattr(parent, name, nn.Identity())
    return len(pairs)
