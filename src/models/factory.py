"""One entry point for every video model of the suite: `build_video_model(method, backbone, ...)`."""

from __future__ import annotations

from torch import nn

METHODS = ("tsn", "tsm", "afnet", "afnet_tsm", "afnet_soft")
BACKBONES = ("r18", "r34", "r50", "r101", "mbv3")
AFNET_ONLY = ("rs", "fusion", "mask_mode", "focal_compute", "eval_gumbel_noise", "nav_mix_frames")


def build_trunk(backbone: str, num_segments: int, shift: bool, width: int = 64, width_mult: float = 1.0):
    """The per-frame 2D trunk of TSN (shift=False) or TSM (shift=True)."""
    shift_segments = num_segments if shift else 0
    if backbone == "mbv3":
        from src.models.mobilenetv3 import MobileNetV3

        return MobileNetV3(width_mult=width_mult, shift_segments=shift_segments)
    from src.models.resnet import ResNet

    return ResNet(int(backbone[1:]), width=width, shift_segments=shift_segments)


def build_video_model(method: str, backbone: str, num_classes: int, num_segments: int, dropout: float = 0.5,
                      width: int = 64, width_mult: float = 1.0, **options) -> nn.Module:
    """TSN / TSM / AFNet / AFNet-TSM / AFNet-soft on ResNet-18/34/50/101 or MobileNetV3.

    options: AFNet switches (`rs`, `fusion`, `mask_mode`, `focal_compute`, `eval_gumbel_noise`,
    `nav_mix_frames`); a TSN/TSM model accepts them only when they are off (None/defaults), so a config
    cannot silently ask a baseline for something it does not do.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}: choose one of {', '.join(BACKBONES)}")
    if method in ("tsn", "tsm"):
        unknown = set(options) - set(AFNET_ONLY)
        if unknown:
            raise TypeError(f"{method}: unexpected options {sorted(unknown)}")
        if options.get("rs") is not None:
            raise ValueError(f"{method}: spatial masks (rs={options['rs']}) exist only for AFNet models")
        from src.models.video import VideoClassifier2D

        trunk = build_trunk(backbone, num_segments, method == "tsm", width, width_mult)
        return VideoClassifier2D(trunk, num_classes, num_segments, dropout)
    from src.models.afnet import build_afnet

    size = {"width_mult": width_mult} if backbone == "mbv3" else {"width": width}
    return build_afnet(backbone, num_classes, num_segments, shift=method == "afnet_tsm",
                       selection="soft" if method == "afnet_soft" else "hard", dropout=dropout, **size, **options)
