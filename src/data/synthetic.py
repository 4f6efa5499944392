"""The built-in dataset: small videos whose class is the order in which three events happen.

Three events (a disc, a square, a cross, each of random colour, size and position) each fill about a third
of the video, one after the other; the six classes are the six orders ("disc, square, cross", ...). In every
class each event fills the same share of the frames (the three shares are exchangeable random weights) and
colours, sizes, positions and distractors are drawn independently of the class, so the per-frame appearance
distribution, and even the unordered set of frames, is the same for all classes: only the order of frames
tells the class (TSN, which averages per-frame predictions, stays at chance; TSM and AFNet can learn it).
About a third of the frames carry nothing: uniform blank frames, noise frames, or a still distractor (a
checkerboard patch), at random positions, so choosing frames matters, as in real footage. Lengths vary
(default 16-40 frames) to exercise sampling.

Stored in the real datasets' formats, deterministically from a seed:
  <root>/frames/<vid>/img_00001.jpg ...   train_frames.txt / val_frames.txt  `<vid> <num_frames> <label>`
  <root>/videos/<vid>.mp4 (H.264)         train_videos.txt / val_videos.txt  `<vid>.mp4 <label>`
  <root>/classes.txt, <root>/synthetic.json (the generation parameters, written last)
Generation writes into a temporary folder and renames it, so an interrupted run leaves nothing that
looks finished. `python -m src.data.synthetic --root data/synthetic [--seed 0]`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

SHAPES = ("disc", "square", "cross")
ORDERS = list(itertools.permutations(range(len(SHAPES))))  # class k = ORDERS[k]
CLASSES = [", ".join(SHAPES[i] for i in order) for order in ORDERS]
MARKER = "synthetic.json"


def event_of_frame(rng: np.random.Generator, label: int, num_frames: int) -> np.ndarray:
    """(num_frames,) shape index shown in each frame: the class's three shapes in order, shares ~1/3 each."""
    weights = rng.uniform(0.75, 1.25, 3)  # exchangeable, so no shape is longer on average in any class
    ends = np.round(np.cumsum(weights) / weights.sum() * num_frames).astype(int)
    return np.array(ORDERS[label])[np.searchsorted(ends, np.arange(num_frames), side="right")]


def shape_mask(shape: int, size: int, centre: np.ndarray, radius: float) -> np.ndarray:
    """(size, size) bool mask of a disc, square or cross of half-width `radius` around `centre` (x, y)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    dx, dy = np.abs(xx - centre[0]), np.abs(yy - centre[1])
    if shape == 0:
        return dx**2 + dy**2 <= radius**2
    if shape == 1:
        return (dx <= radius * 0.85) & (dy <= radius * 0.85)  # about the disc's area
    arm = radius * 0.35
    return ((dx <= radius) & (dy <= arm)) | ((dy <= radius) & (dx <= arm))


def render_video(rng: np.random.Generator, label: int, size: int, num_frames: int) -> np.ndarray:
    """(num_frames, size, size, 3) uint8 frames of one video of class `label` (an index into ORDERS)."""
    bg = rng.uniform(30, 100, 3)
    # every shape gets its own colour, size and place, all drawn from the same distributions
    colours = rng.uniform(140, 255, (3, 3))
    radii = rng.uniform(0.14, 0.22, 3) * size
    centres = rng.uniform(0.25, 0.75, (3, 2)) * size
    masks = [shape_mask(k, size, centres[k], radii[k]) for k in range(3)]
    events = event_of_frame(rng, label, num_frames)
    informative = np.ones(num_frames, bool)
    informative[rng.choice(num_frames, size=num_frames // 3, replace=False)] = False
    patch = size // 4
    y0, x0 = rng.integers(0, size - patch, 2)
    checker = (np.add.outer(np.arange(patch), np.arange(patch)) // max(1, patch // 4)) % 2 == 0
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    for t in range(num_frames):
        img = np.broadcast_to(bg, (size, size, 3)).astype(np.float32) + rng.normal(0, 6, (size, size, 3))
        if informative[t]:
            img[masks[events[t]]] = colours[events[t]]
        else:
            kind = rng.integers(3)
            if kind == 0:
                img[:] = bg
            elif kind == 1:
                img = rng.uniform(0, 255, (size, size, 3))
            else:
                img[y0: y0 + patch, x0: x0 + patch][checker] = 255
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
    return frames


def write_mp4(path: Path, frames: np.ndarray, fps: int = 12) -> None:
    """H.264 (libx264, yuv420p). Single-threaded and without macroblock-tree rate control, which is not
    deterministic across processes for small frames: the same frames always give the same bytes."""
    import av

    with av.open(str(path), "w") as out:
        options = {"crf": "18", "preset": "veryfast", "threads": "1", "x264-params": "mbtree=0"}
        stream = out.add_stream("libx264", rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.thread_count = 1
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def generate(root: str | Path, seed: int = 0, train_per_class: int = 64, val_per_class: int = 20, size: int = 64,
             min_frames: int = 16, max_frames: int = 40, num_classes: int = 6, videos: bool = True) -> Path:
    """Create the dataset at `root` (skipped if it exists with the same parameters); returns root.

    A root that holds a dataset generated with other parameters is never overwritten: that is an error.
    """
    root = Path(root)
    params = {"seed": seed, "train_per_class": train_per_class, "val_per_class": val_per_class, "size": size,
              "min_frames": min_frames, "max_frames": max_frames, "num_classes": num_classes, "videos": videos}
    if (root / MARKER).is_file():
        existing = json.loads((root / MARKER).read_text())
        if existing == params:
            return root
        raise FileExistsError(f"{root} holds a synthetic dataset generated with {existing}, not {params}: "
                              "choose another data_root or delete it")
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} exists and is not a finished synthetic dataset: delete it or choose another")
    if not 1 <= num_classes <= len(CLASSES):
        raise ValueError(f"num_classes={num_classes}: the synthetic dataset has 1..{len(CLASSES)} classes")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        rng = np.random.default_rng(seed)
        (tmp / "frames").mkdir()
        if videos:
            (tmp / "videos").mkdir()
        for split, per_class in (("train", train_per_class), ("val", val_per_class)):
            frame_lines, video_lines = [], []
            for i in range(per_class * num_classes):
                label = i % num_classes
                n = int(rng.integers(min_frames, max_frames + 1))
                vid = f"{split}_{i:05d}"
                frames = render_video(rng, label, size, n)
                (tmp / "frames" / vid).mkdir()
                for t, f in enumerate(frames, 1):
                    Image.fromarray(f).save(tmp / "frames" / vid / f"img_{t:05d}.jpg", quality=90)
                frame_lines.append(f"{vid} {n} {label}\n")
                if videos:
                    write_mp4(tmp / "videos" / f"{vid}.mp4", frames)
                    video_lines.append(f"{vid}.mp4 {label}\n")
            (tmp / f"{split}_frames.txt").write_text("".join(frame_lines))
            if videos:
                (tmp / f"{split}_videos.txt").write_text("".join(video_lines))
        (tmp / "classes.txt").write_text("".join(c + "\n" for c in CLASSES[:num_classes]))
        (tmp / MARKER).write_text(json.dumps(params))
        if root.exists():
            root.rmdir()
        os.replace(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Generate the built-in synthetic video dataset.")
    ap.add_argument("--root", default="data/synthetic")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-per-class", type=int, default=64)
    ap.add_argument("--val-per-class", type=int, default=20)
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args(argv)
    root = generate(args.root, args.seed, args.train_per_class, args.val_per_class, args.size)
    print(f"synthetic dataset at {root}")


if __name__ == "__main__":
    main()
