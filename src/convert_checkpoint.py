"""Convert AFNet checkpoints between the official format and this suite's.

  python -m src.convert_checkpoint to-suite  OFFICIAL.pth.tar OUT.ckpt --backbone r50 [--method afnet_tsm]
                                             [--num-classes 174] [--num-segments 12]
  python -m src.convert_checkpoint to-official SUITE.ckpt OUT.pth.tar

A converted checkpoint evaluates with `python -m src.eval ckpt_path=OUT.ckpt dataset=sthv1 ...`, and
fine-tunes with `python -m src.train pretrained=OUT.ckpt ...`. Official checkpoints use input masking:
evaluate them with `model.mask_mode=input` to reproduce the released numbers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from src.files import atomic_output
from src.models.checkpoints import convert_official, to_official


def save_atomic(obj, path: Path) -> None:
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)


def to_suite(args) -> None:
    from src.models import build_video_model

    ckpt = torch.load(args.input, map_location="cpu", weights_only=False)
    state = convert_official(ckpt.get("state_dict", ckpt), args.backbone)
    num_classes = args.num_classes or state["fc.weight"].shape[0]
    num_segments = args.num_segments or state["stages.0.nav.0.temporal.weight"].shape[0] // 2
    model_cfg = {"method": args.method, "backbone": args.backbone, "num_classes": num_classes,
                 "num_segments": num_segments, "mask_mode": "input"}
    net = build_video_model(**model_cfg)
    net.load_state_dict(state, strict=True)  # every official tensor has its place, and nothing is missing
    save_atomic({"state_dict": {f"net.{k}": v for k, v in state.items()}, "suite_model": model_cfg,
                 "converted_from": str(args.input)}, Path(args.output))
    print(f"{args.input} -> {args.output}: {len(state)} tensors, {model_cfg}")


def to_official_cmd(args) -> None:
    ckpt = torch.load(args.input, map_location="cpu", weights_only=False)
    state = {k: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")} or ckpt["state_dict"]
    backbone = ckpt.get("suite_model", {}).get("backbone")
    save_atomic({"state_dict": to_official(state, backbone="mbv3" if backbone == "mbv3" else None)}, Path(args.output))
    print(f"{args.input} -> {args.output}: {len(state)} tensors")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("to-suite")
    a.add_argument("input")
    a.add_argument("output")
    a.add_argument("--backbone", required=True, choices=["r18", "r34", "r50", "r101", "mbv3"])
    a.add_argument("--method", default="afnet_tsm", choices=["afnet", "afnet_tsm"])
    a.add_argument("--num-classes", type=int)
    a.add_argument("--num-segments", type=int)
    b = sub.add_parser("to-official")
    b.add_argument("input")
    b.add_argument("output")
    args = ap.parse_args(argv)
    (to_suite if args.cmd == "to-suite" else to_official_cmd)(args)


if __name__ == "__main__":
    main()
