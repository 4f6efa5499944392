"""Params and GMACs per video: `python -m src.flops model=afnet_tsm backbone=r50 num_segments=12 rt=0.4`.

Same overrides as training (conf/flops.yaml composes conf/train.yaml), plus `ratio=` to count at a given
realised selection ratio (default: rt) and `input_size=`. Prints a table; the last line is one JSON object.
"""

from __future__ import annotations

import json
import sys


def count(cfg) -> dict:
    """Build the configured net and count it; returns the figures printed by the CLI."""
    from src.models.macs import profile_macs
    from src.utils.config import check_number, validate
    from src.utils.runs import build_net, net_config

    validate(cfg)
    check_number("input_size", cfg.input_size, True, 1, None, "the input side in pixels")
    if cfg.ratio is not None:
        check_number("ratio", cfg.ratio, False, 0.0, 1.0, "the realised focal selection ratio")
    if cfg.spatial_ratio is not None:
        check_number("spatial_ratio", cfg.spatial_ratio, False, 0.0, 1.0, "the spatial selection ratio",
                     low_open=True)
    net = build_net(net_config(cfg, num_classes=cfg.dataset.num_classes))
    profile = profile_macs(net, cfg.num_segments, input_size=cfg.input_size)
    has_masks = bool(profile.focal)
    ratio = cfg.ratio if cfg.ratio is not None else (cfg.rt if has_masks else 1.0)
    ratio = 1.0 if profile.every_frame else ratio  # soft selection weights every frame: all are computed
    spatial = [cfg.spatial_ratio] * len(profile.focal) if cfg.spatial_ratio is not None and has_masks else None
    gmacs = profile.gmacs(float(ratio), spatial)
    return {
        "model": cfg.model.method, "backbone": cfg.backbone.name, "num_segments": cfg.num_segments,
        "num_classes": cfg.dataset.num_classes, "input_size": cfg.input_size,
        "params": profile.params, "ratio": float(ratio) if has_masks else None,
        "spatial_ratio": cfg.spatial_ratio if has_masks else None, "num_masks": len(profile.focal),
        "gmacs_per_video": gmacs, "gmacs_per_frame": gmacs / cfg.num_segments,
        "gmacs_static": profile.static, "gmacs_focal_full": sum(profile.focal),
    }


def print_table(r: dict) -> None:
    rows = [
        ("model", f"{r['model']} / {r['backbone']}, {r['num_segments']} frames, {r['input_size']}², "
                  f"{r['num_classes']} classes"),
        ("params", f"{r['params']:,} ({r['params'] / 1e6:.2f} M)"),
    ]
    if r["num_masks"]:
        rows += [("masks", str(r["num_masks"])), ("realised ratio", f"{r['ratio']:.3f}"),
                 ("GMACs always paid", f"{r['gmacs_static']:.3f}"),
                 ("GMACs focal at r=1", f"{r['gmacs_focal_full']:.3f}")]
    rows += [("GMACs per video", f"{r['gmacs_per_video']:.3f}"), ("GMACs per frame", f"{r['gmacs_per_frame']:.4f}")]
    w = max(len(k) for k, _ in rows)
    print("\n".join(f"{k:<{w}}  {v}" for k, v in rows))


def main(argv: list[str] | None = None) -> dict:
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from src.utils.config import ConfigError, one_line
    from src.utils.runs import compose

    argv = sys.argv[1:] if argv is None else list(argv)
    if {"-h", "--help"} & set(argv):
        print(__doc__.strip() + "\n\nKeys: python -m src.flops --cfg job prints the composed config.")
        sys.exit(0)
    if "--cfg" in argv:
        from omegaconf import OmegaConf

        print(OmegaConf.to_yaml(compose("flops", [a for a in argv if a not in ("--cfg", "job")])))
        sys.exit(0)
    try:
        cfg = compose("flops", argv)
        result = count(cfg)
    except (HydraException, OmegaConfBaseException, ConfigError) as e:
        print(f"config error: {one_line(e)}", file=sys.stderr)
        sys.exit(2)
    print_table(result)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
