"""The built-in dataset: small videos whose class is how an object changes over time.

Six classes: a disc moves right, left, down or up, or stays in place and grows or shrinks. Over the
informative frames of a video, the moving coordinate (or the radius) steps linearly through a fixed grid of
values, from one end to the other; the coordinates that do not change are drawn from the same grid. So for
every class, the disc's (x, y, radius) in a random frame is uniform over the same grid: the per-frame
appearance distribution is the same for all classes (colours and distractors are drawn independently of the
class too), and only the order of frames tells the class (TSN, which averages per-frame predictions, stays at
chance; TSM and AFNet can learn it). The disc crosses 0.76 of the frame (or its radius goes 3 <-> 14 px)
over a video, so T=8 sampled frames differ by ~7 px (~1.5 px of radius) at 64 px whatever the length.
A quarter of the frames carry nothing: uniform blank frames, noise frames, or
a still distractor square, at random positions, so choosing frames matters, as in real footage. Lengths
vary (default 16-40 frames) to exercise sampling.

Stored in the real datasets' formats, deterministically from a seed:
  <root>/frames/<vid>/img_00001.jpg ...   train_frames.txt / val_frames.txt  `<vid> <num_frames> <label>`
  <root>/videos/<vid>.mp4 (H.264)         train_videos.txt / val_videos.txt  `<vid>.mp4 <label>`
  <root>/classes.txt, <root>/synthetic.json (the generation parameters, written last)
Generation writes into a temporary folder and renames it, so an interrupted run leaves nothing that
looks finished. `python -m src.data.synthetic --root data/synthetic [--seed 0]`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from src.utils.files import atomic_output

CLASSES = ["moving right", "moving left", "moving down", "moving up", "growing", "shrinking"]
POSITION = (0.12, 0.88)  # disc centre, fraction of the frame size
RADIUS = (0.05, 0.22)
MARKER = "synthetic.json"
DESIGN = 2  # bumped whenever the rendering changes, so an old dataset on disk is not taken for a new one


def disc_states(rng: np.random.Generator, label: int, size: int, steps: int) -> np.ndarray:
    """(steps, 3) disc (x, y, radius) in px over the informative frames: the class's changing quantity runs
    through the grid in order (forwards or backwards), the others sit at random grid points."""
    ramp = np.arange(steps)
    idx = np.empty((steps, 3), int)
    idx[:] = rng.integers(steps, size=3)  # still x, y, radius: random grid points
    axis = (0, 0, 1, 1, 2, 2)[label]
    idx[:, axis] = ramp if label % 2 == 0 else ramp[::-1]
    lo = np.array([POSITION[0], POSITION[0], RADIUS[0]]) * size
    hi = np.array([POSITION[1], POSITION[1], RADIUS[1]]) * size
    return lo + (hi - lo) * idx / max(1, steps - 1)


def render_video(rng: np.random.Generator, label: int, size: int, num_frames: int) -> np.ndarray:
    """(num_frames, size, size, 3) uint8 frames of one video of class `label`."""
    bg = rng.uniform(40, 110, 3)
    colour = rng.uniform(150, 255, 3)
    informative = np.ones(num_frames, bool)
    informative[rng.choice(num_frames, size=num_frames // 4, replace=False)] = False
    states = disc_states(rng, label, size, int(informative.sum()))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    distractor = rng.integers(0, size - size // 4, 2)
    step = 0
    for t in range(num_frames):
        img = np.broadcast_to(bg, (size, size, 3)).astype(np.float32) + rng.normal(0, 6, (size, size, 3))
        if informative[t]:
            cx, cy, r = states[step]
            step += 1
            img[(xx - cx) ** 2 + (yy - cy) ** 2 <= r**2] = colour
        else:
            kind = rng.integers(3)
            if kind == 0:
                img[:] = bg
            elif kind == 1:
                img = rng.uniform(0, 255, (size, size, 3))
            else:
                y0, x0 = distractor
                img[y0: y0 + size // 4, x0: x0 + size // 4] = colour[::-1]
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
    params = {"design": DESIGN, "seed": seed, "train_per_class": train_per_class, "val_per_class": val_per_class,
              "size": size, "min_frames": min_frames, "max_frames": max_frames, "num_classes": num_classes,
              "videos": videos}
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
    with atomic_output(root) as tmp:
        tmp.mkdir()
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
