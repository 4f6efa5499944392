"""Classify one video with a trained checkpoint and draw the frames AFNet looked at.

    python -m src.demo VIDEO ckpt_path=PATH [device=auto|cpu|cuda] [out=PNG] [topk=5] [training overrides]

VIDEO: a video file (anything PyAV decodes: mp4, webm, avi, ...), a folder of frame images (read in natural
name order), or `builtin` (the first validation video of the built-in dataset). ckpt_path: a checkpoint of
`src.train` or `src.convert_checkpoint`, or `newest` (the newest run of the default `python -m src.train`).
The clip is sampled and cropped as the checkpoint's test protocol does (`test_protocol=...` changes it); the
net runs in evaluation mode (deterministic masks). Prints the top-k classes with probabilities (names from the
run's classes file, else indices), the realised selection ratio and the GFLOPs per clip, and writes one PNG:
the T sampled frames in a row, then one row per focal block with the frames it selected in colour and the
skipped ones dark. Other key=value arguments override the run's training config (e.g. `data_root=/data`).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

USAGE = __doc__
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DEMO_KEYS = {"ckpt_path": None, "device": "auto", "out": None, "topk": 5}


class DemoError(ValueError):
    """Bad demo input: the message names the argument or file."""


@dataclass
class Prediction:
    """What the demo found: top-k (name, probability), frame indices (1-based) of the first view, the realised
    ratio of each focal block on that view, the mean ratio over all views, GMACs per clip, views read."""

    top: list[tuple[str, float]]
    indices: list[int]
    block_masks: list[list[bool]]
    ratio: float | None
    gflops: float
    views: int


# ---- arguments ---------------------------------------------------------------------------------------------
def parse_args(argv: list[str]) -> tuple[str, dict, list[str]]:
    """(video, demo options, training-config overrides) from the command line."""
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        raise SystemExit(0 if argv else 2)
    video, opts, overrides = None, dict(DEMO_KEYS), []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            if video is not None:
                raise DemoError(f"argument {arg!r}: one video only (key=value for options)")
            video = arg
        elif key in opts:
            opts[key] = value
        else:
            overrides.append(arg)
    if video is None:
        raise DemoError("no video given: python -m src.demo VIDEO ckpt_path=PATH")
    if not opts["ckpt_path"]:
        raise DemoError("ckpt_path=PATH is required (a .ckpt of src.train, or `newest`)")
    try:
        opts["topk"] = int(opts["topk"])
    except ValueError as e:
        raise DemoError(f"topk={opts['topk']!r}: expected an integer") from e
    return video, opts, overrides


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DemoError(f"device={name}: no CUDA device here (device=cpu runs on the CPU)")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise DemoError(f"device={name!r}: expected auto, cpu or cuda[:N]") from e


def builtin_video(cfg) -> Path:
    """The first validation video of the built-in dataset (its mp4 files) under the run's data_root."""
    root = Path(str(cfg.data_root)) / "synthetic"
    listing = root / "val_videos.txt"
    if not listing.is_file():
        raise DemoError(f"builtin: {listing} not found; the built-in dataset is made by `make train` "
                        f"(or `python -m src.data.synthetic --root {root}`)")
    first = listing.read_text().split()[0]
    return root / "videos" / first


# ---- reading a clip ----------------------------------------------------------------------------------------
def natural_key(path: Path) -> list:
    """Sort key that puts frame_2 before frame_10."""
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", path.name)]


def frame_files(folder: Path) -> list[Path]:
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)
    if not files:
        raise DemoError(f"{folder}: no frame images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    return files


def count_video_frames(path: Path) -> int:
    """Frames of the video or frame folder at `path` (DemoError naming it when unreadable)."""
    from src.data.readers import SampleReadError, count_frames

    if path.is_dir():
        return len(frame_files(path))
    if not path.is_file():
        raise DemoError(f"{path}: no such video file or frame folder")
    try:
        return count_frames(path)
    except SampleReadError as e:
        raise DemoError(str(e)) from e


def read_frames(path: Path, indices: list[int]) -> torch.Tensor:
    """uint8 (len(indices), H, W, 3) of 1-based frame indices of a video file or frame folder."""
    from src.data.readers import SampleReadError, VideoFileReader, decode_rgb

    try:
        if path.is_dir():
            files = frame_files(path)
            frames = {i: decode_rgb(files[i - 1].read_bytes()) for i in sorted(set(indices))}
            sizes = {f.shape for f in frames.values()}
            if len(sizes) > 1:
                raise DemoError(f"{path}: frames of different sizes {sorted(sizes)}")
            return torch.from_numpy(np.stack([frames[i] for i in indices]))
        return VideoFileReader(path.parent).read(path.name, indices)
    except (SampleReadError, OSError, ValueError) as e:
        raise DemoError(f"{path}: {e}") from e


def clip_views(cfg, path: Path) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """The checkpoint's test protocol applied to one video: (views (V, T, 3, crop, crop) normalised,
    the first clip's centre crops uint8 (T, 3, crop, crop) for display, that clip's frame indices)."""
    from src.data import sampling, transforms

    ds = cfg.dataset
    t = int(cfg.num_segments)
    sampler, num_clips = ds.get("test_sampler", "uniform"), int(ds.get("test_num_clips", 1))
    num_crops, crop = int(ds.get("test_num_crops", 1)), int(ds.crop_size)
    scale = tuple(ds.get("scale_size") or (ds.get("resize_size", crop),) * 2)
    clips = sampling.eval_clips_indices(sampler, count_video_frames(path), t, num_clips)
    views = []
    for idx in clips:
        x = transforms.eval_transform(read_frames(path, idx), scale, crop, num_crops)
        views.extend(x.unbind(0) if num_crops > 1 else [x])
    shown = transforms.centre_crop(transforms.resize(transforms.channels_first(read_frames(path, clips[0])), scale),
                                   crop)
    return torch.stack(views), shown, clips[0]


# ---- prediction --------------------------------------------------------------------------------------------
def class_names(cfg) -> list[str] | None:
    from src.data.lists import ListFormatError, read_classes

    path = cfg.dataset.get("classes_file")
    if not path or not Path(str(path)).is_file():
        return None
    try:
        return read_classes(path, cfg.dataset.num_classes)
    except ListFormatError:
        return None


@torch.no_grad()
def predict(cfg, net, views: torch.Tensor, indices: list[int], device: torch.device, topk: int = 5) -> Prediction:
    """Run the eval-mode `net` on views (V, T, 3, H, W): mean logits over the views, top-k, masks, GFLOPs."""
    from src.models.macs import profile_macs

    v, t = views.shape[:2]
    out = net(views.to(device))
    probs = torch.softmax(out.logits.float().mean(0), dim=0).cpu()
    names = class_names(cfg)
    p, k = probs.topk(min(topk, probs.numel()))
    top = [(names[i] if names else str(int(i)), float(q)) for q, i in zip(p, k)]
    first = [m.view(v, t)[0].cpu() > 0.5 for m in out.masks]
    ratios = out.ratios()
    profile = profile_macs(net, t, input_size=views.shape[-1])
    gflops = profile.gmacs(ratios or 1.0, out.spatial_ratios() or None)
    return Prediction(top, indices, [m.tolist() for m in first], sum(ratios) / len(ratios) if ratios else None,
                      gflops, v)


# ---- the picture -------------------------------------------------------------------------------------------
def draw_selection(frames: torch.Tensor, pred: Prediction, title: str, cell: int = 96) -> Image.Image:
    """A PIL image: the T frames (uint8 (T, 3, h, w)) in a row, then one row per focal block in which the
    selected frames are shown in colour with a green border and the skipped ones dark."""
    t = frames.shape[0]
    small = max(32, cell // 2)
    left, pad, head = 150, 4, 64
    rows = len(pred.block_masks)
    width = left + t * (cell + pad) + pad
    height = head + cell + 22 + rows * (small + pad) + pad
    font = ImageFont.load_default(size=13)
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.text((pad, 6), title, fill=(0, 0, 0), font=font)
    pics = [Image.fromarray(f.permute(1, 2, 0).numpy()) for f in frames]
    draw.text((pad, head + cell // 2 - 7), "sampled frames", fill=(0, 0, 0), font=font)
    for j, pic in enumerate(pics):
        x = left + j * (cell + pad)
        img.paste(pic.resize((cell, cell)), (x, head))
        draw.text((x, head + cell + 3), f"#{pred.indices[j]}", fill=(60, 60, 60), font=font)
    # the selection grid: a small thumbnail where the block computed the frame, dark where it skipped it
    y0 = head + cell + 22
    thumbs = [pic.resize((small, small)) for pic in pics]
    for b, mask in enumerate(pred.block_masks):
        y = y0 + b * (small + pad)
        draw.text((pad, y + small // 2 - 7), f"focal block {b + 1}: {sum(mask)}/{t}", fill=(0, 0, 0), font=font)
        for j, on in enumerate(mask):
            x = left + j * (cell + pad) + (cell - small) // 2
            if on:
                img.paste(thumbs[j], (x, y))
                draw.rectangle((x - 2, y - 2, x + small + 1, y + small + 1), outline=(0, 170, 0), width=2)
            else:
                draw.rectangle((x, y, x + small - 1, y + small - 1), fill=(45, 45, 45))
    return img


def summary_lines(pred: Prediction, run: str, video: Path) -> list[str]:
    lines = [f"{video}  ({run}, {pred.views} view(s))"]
    lines += [f"  {i + 1}. {name:<30} {100 * p:6.2f}%" for i, (name, p) in enumerate(pred.top)]
    if pred.ratio is not None:
        lines.append(f"  realised ratio  {pred.ratio:.3f} (frames computed by the focal blocks)")
    lines.append(f"  GFLOPs          {pred.gflops:.4f} per clip")
    return lines


def run_demo(video: str, opts: dict, overrides: list[str]) -> tuple[Prediction, Path]:
    from src.utils.files import atomic_output
    from src.utils.runs import checkpoint_arg, load_run

    if video != "builtin" and not Path(video).exists():  # before the (slower) checkpoint
        raise DemoError(f"{video}: no such video file or frame folder")
    ckpt = checkpoint_arg(opts["ckpt_path"])
    device = pick_device(str(opts["device"]))
    cfg, net = load_run(ckpt, overrides)
    net.eval().to(device)
    path = builtin_video(cfg) if video == "builtin" else Path(video)
    views, shown, indices = clip_views(cfg, path)
    pred = predict(cfg, net, views, indices, device, opts["topk"])
    out = Path(opts["out"] or Path("outputs") / "demo" / f"{path.stem}.png")
    name, p = pred.top[0]
    title = (f"{path.name}: {name} ({100 * p:.1f}%)   {cfg.run_name}\n"
             + (f"realised ratio {pred.ratio:.3f}, " if pred.ratio is not None else "")
             + f"{pred.gflops:.4f} GFLOPs per clip")
    with atomic_output(out) as tmp:
        draw_selection(shown, pred, title).save(tmp, format="PNG")
    print("\n".join(summary_lines(pred, cfg.run_name, path)))
    print(f"  picture         {out}")
    return pred, out


def main(argv: list[str] | None = None) -> tuple[Prediction, Path]:
    try:
        video, opts, overrides = parse_args(sys.argv[1:] if argv is None else argv)
        return run_demo(video, opts, overrides)
    except (DemoError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
