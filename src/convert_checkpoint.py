"""Convert released checkpoints of the official AFNet code and of TSM's code to this suite, and AFNet back.

  python -m src.convert_checkpoint to-suite    IN OUT [--shift | --no-shift] [--num-segments T] [--dataset NAME]
  python -m src.convert_checkpoint to-official SUITE.ckpt OUT.pth.tar

to-suite reads from IN's parameter names and shapes what they tell: the format (official AFNet video model,
TSM / TSN of TSM's code), the backbone and its width, the class count, an AFNet's clip length (its navigation
is per frame) and, for TSM's checkpoints, which blocks carry the shift (TSM wraps a shifted conv as `.net`).
What the names cannot tell has no default and must be given:
- an official AF-ResNet checkpoint: `--shift` (AFNet-TSM) or `--no-shift` (AFNet) (or `--method`);
  AF-MobileNetV3 is always shifted;
- a TSN / TSM checkpoint: `--num-segments`, the clip length it was trained with (`segment8` in its name).
`--dataset` records the dataset the model was trained on, so `python -m src.eval ckpt_path=OUT` needs no
`dataset=`; `--backbone`, `--num-classes` and `--num-segments` are checked against what IN holds.
OUT records all of it (`suite_model`); `src.eval` and `src.train pretrained=OUT` rebuild the net from it. An
official AFNet model is built with `mask_mode=input` (the released models mask the residual's input).
ImageNet weights (official AF backbones, torchvision ResNet / MobileNetV3) need no conversion: pass the file to
`python -m src.train pretrained=FILE`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from src.models.checkpoints import (
    CheckpointError,
    detect_backbone,
    detect_format,
    match_into,
    read_checkpoint,
    to_official,
    unwrap_state,
)
from src.utils.files import atomic_output

AFNET_METHODS, TSM_METHODS = ("afnet", "afnet_tsm"), ("tsn", "tsm")


def save_atomic(obj, path: Path) -> None:
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)


def _count(names: set[str], pattern: str) -> int:
    """How many consecutive indices i have a name starting with pattern.format(i)."""
    i = 0
    while any(n.startswith(pattern.format(i)) for n in names):
        i += 1
    return i


def resnet_depth(kind: str, counts: tuple[int, ...], layouts: dict[int, tuple[str, tuple]], where: str) -> str:
    """'r50' etc. for a `kind` ("basic" / "bottleneck") ResNet with these stage block counts."""
    for depth, (k, c) in layouts.items():
        if k == kind and tuple(c) == tuple(counts):
            return f"r{depth}"
    raise CheckpointError(f"{where}: a {kind} ResNet with stage block counts {list(counts)} is none of this suite's")


def describe(state: dict, fmt: str, where: str) -> dict:
    """What the names and shapes of an official AFNet or TSM checkpoint tell: backbone, width / width_mult,
    num_classes, num_segments (AFNet), shift (True / False, or None where the names cannot tell) and, for
    TSM, the shifted blocks [(stage, block), ...]."""
    plain = {k.removeprefix("module.").removeprefix("base_model."): v for k, v in state.items()}
    names = set(plain)

    def shape(name: str) -> tuple:
        if name not in plain:
            raise CheckpointError(f"{where}: no parameter {name!r}, which a {fmt} checkpoint has")
        return tuple(plain[name].shape)

    if fmt == "afnet" and detect_backbone(plain) == "mbv3":
        if shape("conv_last.weight")[0] != 960:
            raise CheckpointError(f"{where}: AF-MobileNetV3 with {shape('conv_last.weight')[0]} last-conv channels; "
                                  "only the released width (960, width_mult 1.0) converts")
        return {"backbone": "mbv3", "width_mult": 1.0, "num_classes": shape("fc.3.weight")[0],
                "num_segments": shape("list_gen2.0.conv_gs.weight")[0] // 2, "shift": True}
    kind = "bottleneck" if any(n.startswith(("layer1.base_module.0.conv3.", "layer1.0.conv3.")) for n in names) \
        else "basic"
    info = {"width": shape("conv1.weight")[0], "num_classes": shape("new_fc.weight")[0]}
    if fmt == "afnet":
        from src.models.afnet.af_resnet import LAYOUTS

        counts = (*(_count(names, f"layer{s}.list_gen.{{}}.") + 1 for s in (1, 2, 3)), _count(names, "layer4.{}."))
        return {**info, "backbone": resnet_depth(kind, counts, LAYOUTS, where),
                "num_segments": shape("layer1.list_gen.0.conv_gs.weight")[0] // 2, "shift": None}
    from src.models.resnet import LAYOUTS as layouts

    counts = tuple(_count(names, f"layer{s}.{{}}.") for s in (1, 2, 3, 4))
    shifted = [(s, j) for s in range(4) for j in range(counts[s]) if f"layer{s + 1}.{j}.conv1.net.weight" in names]
    return {**info, "backbone": resnet_depth(kind, counts, layouts, where), "counts": counts, "shifted": shifted,
            "shift": bool(shifted)}


def choose_method(fmt: str, info: dict, args, where: str) -> str:
    """The method from --method / --shift / --no-shift and what the checkpoint tells; never a silent default."""
    names = ("afnet_tsm", "afnet") if fmt == "afnet" else ("tsm", "tsn")
    asked = args.method or {True: names[0], False: names[1]}.get(args.shift)
    flag = f"--method {args.method}" if args.method else {True: "--shift", False: "--no-shift"}.get(args.shift)
    if fmt == "afnet":
        if info["shift"] and asked not in (None, "afnet_tsm"):  # AF-MobileNetV3: shifted by construction
            raise CheckpointError(f"{where}: AF-MobileNetV3 is always shifted (afnet_tsm); {flag} does not apply")
        if info["shift"]:
            return "afnet_tsm"
        if asked is None:
            raise CheckpointError(f"{where}: the names of an AF-ResNet checkpoint do not tell whether it was trained "
                                  "with the temporal shift: pass --shift (AFNet-TSM: the released 12-frame models) or "
                                  "--no-shift (AFNet: the released 8-frame 'less is more' models)")
        if asked not in AFNET_METHODS:
            raise CheckpointError(f"{where}: an official AFNet checkpoint converts to afnet or afnet_tsm; {flag} "
                                  "does not apply")
        return asked
    found = "tsm" if info["shift"] else "tsn"
    if asked not in (None, found):
        raise CheckpointError(f"{where}: a {found.upper()} checkpoint ({'with' if info['shift'] else 'no'} shifted "
                              f"`.net` convs), but {flag} was given")
    return found


def to_suite(args) -> None:
    from src.models import build_video_model
    from src.models.resnet import tsm_shifted

    where = args.input
    state = unwrap_state(read_checkpoint(args.input), where)
    fmt = detect_format(state)
    if fmt not in ("afnet", "tsm"):
        hint = ("already a checkpoint of this suite" if fmt == "suite" else
                f"ImageNet weights ({fmt}): pass it to `python -m src.train pretrained={args.input}` instead")
        raise CheckpointError(f"{where}: {hint}")
    info = describe(state, fmt, where)
    method = choose_method(fmt, info, args, where)
    if fmt == "tsm":
        if args.num_segments is None:
            raise CheckpointError(f"{where}: a {method.upper()} checkpoint does not record its clip length: pass "
                                  "--num-segments (e.g. 8 for TSM's ..._segment8_... files)")
        info["num_segments"] = args.num_segments
        expected = [(s, j) for s, row in enumerate(tsm_shifted(info["counts"])) for j, on in enumerate(row) if on]
        if method == "tsm" and info["shifted"] != expected:
            raise CheckpointError(f"{where}: shifts blocks {info['shifted']}, but TSM's placement for "
                                  f"{info['backbone']} (this suite's) shifts {expected}")
    for opt, key in (("backbone", "backbone"), ("num_classes", "num_classes"), ("num_segments", "num_segments")):
        given = getattr(args, opt)
        if given is not None and given != info[key]:
            raise CheckpointError(f"{where}: --{opt.replace('_', '-')} {given}, but the checkpoint holds "
                                  f"{key}={info[key]}")
    model_cfg = {"method": method, "backbone": info["backbone"], "num_classes": info["num_classes"],
                 "num_segments": info["num_segments"]}
    model_cfg.update({"width_mult": info["width_mult"]} if "width_mult" in info else {"width": info["width"]})
    if method in AFNET_METHODS:
        model_cfg["mask_mode"] = "input"  # the released models mask the residual's input
    net = build_video_model(**model_cfg)
    take, skipped, _ = match_into(net, state, fmt)
    own = net.state_dict()
    left = [k for k in own if k not in take and not k.endswith("num_batches_tracked")]
    if skipped or left:
        problems = [f"{k} ({why})" for k, why in skipped.items()] + [f"{k} (not in the checkpoint)" for k in left]
        raise CheckpointError(f"{where}: does not fit {method}/{info['backbone']}: {len(problems)} tensors, e.g. "
                              + "; ".join(problems[:3]))
    net.load_state_dict({**own, **take}, strict=True)
    out = {"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}, "suite_model": model_cfg,
           "converted_from": str(args.input)}
    if args.dataset:
        out["suite_dataset"] = args.dataset
    save_atomic(out, Path(args.output))
    print(f"{args.input} ({fmt}) -> {args.output}: {len(take)} tensors, {model_cfg}"
          + (f", dataset {args.dataset}" if args.dataset else ""))


def to_official_cmd(args) -> None:
    ckpt = read_checkpoint(args.input)
    method = (ckpt.get("suite_model") or {}).get("method") if isinstance(ckpt, dict) else None
    if method is not None and method not in AFNET_METHODS:
        raise CheckpointError(f"{args.input}: a {method} model; only AFNet models have an official AFNet format")
    state = unwrap_state(ckpt, args.input)
    state = {k: v for k, v in state.items() if k.startswith("net.")} or state
    save_atomic({"state_dict": to_official(state)}, Path(args.output))
    print(f"{args.input} -> {args.output}: {len(state)} tensors")


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m src.convert_checkpoint", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("to-suite", help="official AFNet / TSM checkpoint -> this suite")
    a.add_argument("input")
    a.add_argument("output")
    shift = a.add_mutually_exclusive_group()
    shift.add_argument("--shift", dest="shift", action="store_const", const=True, default=None,
                       help="the AF-ResNet model was trained with the temporal shift (AFNet-TSM)")
    shift.add_argument("--no-shift", dest="shift", action="store_const", const=False,
                       help="the AF-ResNet model was trained without it (AFNet)")
    shift.add_argument("--method", choices=[*AFNET_METHODS, *TSM_METHODS], help="instead of --shift / --no-shift")
    a.add_argument("--num-segments", type=int, help="clip length (required for TSN / TSM; checked for AFNet)")
    a.add_argument("--dataset", help="the dataset it was trained on (a conf/dataset name), recorded for src.eval")
    a.add_argument("--backbone", choices=["r18", "r34", "r50", "r101", "mbv3"], help="checked against the checkpoint")
    a.add_argument("--num-classes", type=int, help="checked against the checkpoint")
    b = sub.add_parser("to-official", help="this suite's AFNet checkpoint -> the official format")
    b.add_argument("input")
    b.add_argument("output")
    return ap


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        if Path(args.output).resolve() == Path(args.input).resolve():
            raise CheckpointError(f"{args.output}: the output is the input file; give another output path")
        (to_suite if args.cmd == "to-suite" else to_official_cmd)(args)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
