"""AFNet: ample and focal branches with per-frame navigation (SPEC §2). `build_afnet` builds any variant."""

from __future__ import annotations

from torch import nn

from src.models.afnet.af_mobilenetv3 import AFMobileNetV3
from src.models.afnet.af_resnet import AFResNet

DEPTHS = {"r18": 18, "r34": 34, "r50": 50, "r101": 101}


def build_afnet(backbone: str, num_classes: int, num_segments: int, shift: bool = False, selection: str = "hard",
                **options) -> nn.Module:
    """AF-ResNet-18/34/50/101 (`AFResNet`) or AF-MobileNetV3 (`AFMobileNetV3`, always shifted).

    options: the switches of AFResNet / AFMobileNetV3 (mask_mode, focal_compute, eval_gumbel_noise,
    nav_mix_frames, fusion, rs, dropout, nav_init_bias) and the size: `width` (ResNet, 64 = the real model)
    or `width_mult` (MobileNetV3, 1.0); the one that does not fit the backbone is dropped.
    """
    if backbone == "mbv3":  # always shifted (SPEC §2.11): `shift` is ignored
        options.pop("width", None)
        return AFMobileNetV3(num_classes=num_classes, num_segments=num_segments, selection=selection, **options)
    if backbone not in DEPTHS:
        raise ValueError(f"unknown AFNet backbone {backbone!r}: choose one of {', '.join([*DEPTHS, 'mbv3'])}")
    options.pop("width_mult", None)
    return AFResNet(DEPTHS[backbone], num_classes, num_segments, shift=shift, selection=selection, **options)


__all__ = ["AFMobileNetV3", "AFResNet", "build_afnet"]
