"""One entry point for every video model of the suite: `build_video_model(method, backbone, ...)`."""

from __future__ import annotations

from torch import nn

METHODS = ("tsn", "tsm", "afnet", "afnet_tsm", "afnet_soft")
BACKBONES = ("r18", "r34", "r50", "r101", "mbv3")
# AFNet switches and the value at which they are "off": a baseline accepts them only at these values.
AFNET_DEFAULTS = {"rs": None, "fusion": "dynamic", "mask_mode": "output", "focal_compute": "auto",
                  "eval_gumbel_noise": False, "nav_mix_frames": False}
FAST_PATHS = ("auto", "off")


def build_trunk(backbone: str, shift_segments: int, width: int = 64, width_mult: float = 1.0) -> nn.Module:
    """The per-frame 2D trunk of TSN (shift_segments=0) or TSM (shift_segments=T), without its ImageNet head:
    `features((N*T, 3, H, W)) -> (N*T, out_channels)`."""
    if backbone == "mbv3":
        from src.models.mobilenetv3 import MobileNetV3

        return MobileNetV3(num_classes=0, width_mult=width_mult, shift_segments=shift_segments)
    from src.models.resnet import ResNet

    return ResNet(int(backbone[1:]), width=width, num_classes=0, shift_segments=shift_segments)


def build_video_model(method: str, backbone: str, num_classes: int, num_segments: int, dropout: float = 0.5,
                      width: int = 64, width_mult: float = 1.0, fast_paths: str = "auto", **options) -> nn.Module:
    """TSN / TSM / AFNet / AFNet-TSM / AFNet-soft on ResNet-18/34/50/101 or MobileNetV3-Large.

    width: ResNet stem width (64 = the published model); width_mult: MobileNetV3 width multiplier. Only the
    one that fits the backbone is used. options: AFNet switches, handed to `src.models.afnet.build_afnet`.
    A TSN/TSM model accepts an AFNet switch only at its "off" value (`AFNET_DEFAULTS`: rs=None,
    fusion="dynamic", ...), so a config cannot silently ask a baseline for something it does not do;
    any other option is a TypeError. fast_paths: "auto" lets `src.models.inference.prepare_for_inference` apply
    the inference rewrites of the device (the same for every model), "off" keeps the plain model path there; it
    is stored as the model's `fast_paths` attribute. Returns an nn.Module whose forward gives a `VideoOutput`.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r}: choose one of {', '.join(BACKBONES)}")
    if fast_paths not in FAST_PATHS:
        raise ValueError(f"fast_paths={fast_paths!r}: choose one of {', '.join(FAST_PATHS)}")
    model = _build(method, backbone, num_classes, num_segments, dropout, width, width_mult, options)
    model.fast_paths = fast_paths
    return model


def _build(method: str, backbone: str, num_classes: int, num_segments: int, dropout: float, width: int,
           width_mult: float, options: dict) -> nn.Module:
    if method in ("tsn", "tsm"):
        unknown = set(options) - set(AFNET_DEFAULTS)
        if unknown:
            raise TypeError(f"{method}: unexpected options {sorted(unknown)}")
        for key, value in options.items():
            if value is not None and value != AFNET_DEFAULTS[key]:
                raise ValueError(f"{method}: {key}={value!r} only exists for AFNet models "
                                 f"(a baseline accepts {AFNET_DEFAULTS[key]!r} or None)")
        from src.models.video import VideoClassifier2D

        trunk = build_trunk(backbone, num_segments if method == "tsm" else 0, width, width_mult)
        return VideoClassifier2D(trunk, num_classes, num_segments, dropout)
    from src.models.afnet import build_afnet  # lazy: the baselines work without the AFNet package

    size = {"width_mult": width_mult} if backbone == "mbv3" else {"width": width}
    return build_afnet(backbone, num_classes, num_segments, shift=method == "afnet_tsm",
                       selection="soft" if method == "afnet_soft" else "hard", dropout=dropout, **size, **options)
