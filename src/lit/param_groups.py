"""Parameter groups with the LR / weight-decay multipliers of the official AFNet and TSM training code: convolution
weights x1 (decayed), their biases x2, BatchNorm x1 (not decayed), linear weights x5 and biases x10, and the
navigation modules at their own multiplier (x10 in the paper's recipes)."""

from __future__ import annotations

from torch import nn

_NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


def _is_navigation(module_name: str) -> bool:
    return any(part.startswith("nav") for part in module_name.split("."))


def param_groups(model: nn.Module, lr: float, weight_decay: float, nav_lr_mult: float = 10.0,
                 linear_weight_lr_mult: float = 5.0, linear_bias_lr_mult: float = 10.0,
                 conv_bias_lr_mult: float = 2.0) -> list[dict]:
    """Split parameters into named SGD groups.

    nav: navigation convs and BN (lr ×10, decayed) · conv_weight (×1, decayed) · conv_bias (×2, no decay)
    · norm: BN outside the navigation (×1, no decay) · linear_weight: every nn.Linear, including the dynamic
    fusion FCs (×5, decayed) · linear_bias (×10, no decay). Each parameter lands in exactly one group;
    empty groups are dropped. Raises if a trainable parameter belongs to no known layer type.
    """
    spec = {
        "nav": (nav_lr_mult, weight_decay),
        "conv_weight": (1.0, weight_decay),
        "conv_bias": (conv_bias_lr_mult, 0.0),
        "norm": (1.0, 0.0),
        "linear_weight": (linear_weight_lr_mult, weight_decay),
        "linear_bias": (linear_bias_lr_mult, 0.0),
    }
    buckets: dict[str, list] = {k: [] for k in spec}
    for mname, module in model.named_modules():
        for pname, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            if _is_navigation(mname):
                key = "nav"
            elif isinstance(module, nn.modules.conv._ConvNd):
                key = "conv_weight" if pname == "weight" else "conv_bias"
            elif isinstance(module, _NORM_TYPES):
                key = "norm"
            elif isinstance(module, nn.Linear):
                key = "linear_weight" if pname == "weight" else "linear_bias"
            else:
                raise TypeError(f"parameter {mname}.{pname} of {type(module).__name__} has no LR group")
            buckets[key].append(p)
    return [
        {"name": k, "params": ps, "lr": lr * spec[k][0], "weight_decay": spec[k][1]}
        for k, ps in buckets.items() if ps
    ]
