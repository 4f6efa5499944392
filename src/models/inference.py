"""Inference-only rewrites of a trained model that keep its outputs (to float rounding): BN folding.

`fold_batchnorm(model)` merges every BatchNorm2d that directly follows a Conv2d (a `(Conv2d, BatchNorm2d)`
pair inside an nn.Sequential, or sibling attributes `conv<i>` / `bn<i>`, e.g. `conv1`/`bn1`, `conv`/`bn`)
into the conv's weight and bias and replaces the BN by an Identity: one pass over each activation map fewer
per conv, which is memory traffic that a CPU pays in full. Both TSM/TSN and AFNet are folded by the same
rules, so latency comparisons stay fair. The folded model is for evaluation only (no BN left to train).
"""

from __future__ import annotations

import torch
from torch import nn


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
