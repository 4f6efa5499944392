"""Training-clip loading speed: this suite's VideoDataset against a plain per-frame PIL loader.

`python -m src.bench.loader [--videos 16] [--clips 32] [--batch 4] [--rounds 3] [--pil-decode] [--keep DIR]`
(`make bench-loader`)

Generates a small realistic-size set (320x240 frames, 60-frame videos of moving textured blobs) as JPEG
folders (quality 90) and H.264 mp4 files, then times training clips (8 and 16 frames, multi-scale crop to
224², flip) with 0 and 2 DataLoader workers. The reference loader reads the same frames with the same crop:
PIL open (or PyAV decode + to_image for mp4) -> resize to 320x240 -> crop -> resize to 224 -> to tensor ->
normalise, one frame at a time. The first batch of each run (worker start-up) is not timed. Each row takes
`--rounds` runs of each loader, interleaved (`common.time_interleaved`), and reports the medians, so that
both see the same background load on a shared machine. Prints a table, then one JSON line (`--out`: also
written there).

Where ours is faster (same frames, crop and pixels up to resampling rounding): JPEGs are decoded by simplejpeg
(libjpeg-turbo, when installed) straight into one (T, H, W, 3) uint8 buffer; resize, crop and flip run on the
uint8 clip in torch; the float conversion and normalisation run once per clip on channels-first memory. For
mp4, one swscale context converts all the frames of a clip (PyAV's `to_image` / `to_ndarray` build one per
frame); decoding itself is the same.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from src.bench.common import check_at_least, machine, time_interleaved, write_json
from src.data import readers, sampling, transforms
from src.data.dataset import VideoDataset
from src.data.lists import VideoRecord
from src.data.readers import FrameFolderReader, VideoFileReader
from src.data.synthetic import write_mp4

H, W, NUM_FRAMES, CROP, TEMPLATE = 240, 320, 60, 224, "{:05d}.jpg"


def render(rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, H, W, 3) uint8: a smooth random texture drifting across the frame, plus sensor noise (so JPEG
    and H.264 sizes resemble real footage more than flat synthetic frames would)."""
    small = rng.uniform(0, 255, (H // 8 + 2, W // 8 + 2 + n, 3)).astype(np.float32)
    tex = torch.nn.functional.interpolate(torch.from_numpy(small).permute(2, 0, 1)[None], scale_factor=8,
                                          mode="bicubic", align_corners=False)[0].permute(1, 2, 0).numpy()
    frames = np.stack([tex[:H, 8 * t // 2: 8 * t // 2 + W] for t in range(n)])
    return np.clip(frames + rng.normal(0, 4, frames.shape), 0, 255).astype(np.uint8)


def generate(root: Path, num_videos: int) -> list[VideoRecord]:
    rng = np.random.default_rng(0)
    records = []
    for v in range(num_videos):
        frames = render(rng, NUM_FRAMES)
        (root / "frames" / f"v{v:03d}").mkdir(parents=True)
        for i, f in enumerate(frames, 1):
            Image.fromarray(f).save(root / "frames" / f"v{v:03d}" / TEMPLATE.format(i), quality=90)
        (root / "videos").mkdir(exist_ok=True)
        write_mp4(root / "videos" / f"v{v:03d}.mp4", frames, fps=25)
        records.append(VideoRecord(f"v{v:03d}", NUM_FRAMES, (v % 4,)))
    return records


class PILReference(Dataset):
    """Per-frame PIL pipeline with the frame indices, crop and flip VideoDataset would draw for the same key."""

    def __init__(self, records, root: Path, fmt: str, t: int, seed: int = 0):
        self.records, self.root, self.fmt, self.t, self.seed = records, root, fmt, t, seed
        self.mean, self.std = transforms.MEAN[0], transforms.STD[0]

    def __len__(self):
        return len(self.records)

    def images(self, rec, indices) -> list[Image.Image]:
        if self.fmt == "frames":
            return [Image.open(self.root / "frames" / rec.path / TEMPLATE.format(i)).convert("RGB") for i in indices]
        import av

        wanted, got = set(indices), {}
        with av.open(str(self.root / "videos" / f"{rec.path}.mp4")) as c:
            for i, frame in enumerate(c.decode(video=0), 1):  # forward decode, as VideoFileReader
                if i in wanted:
                    got[i] = frame.to_image()
                if i >= max(indices):
                    break
        return [got[i] for i in indices]

    def __getitem__(self, i):
        rec = self.records[i]
        rng = np.random.default_rng((self.seed, 0, i))    # the same draws, in the same order, as VideoDataset
        indices = sampling.tsn_train_indices(rec.num_frames, self.t, rng)
        sizes = transforms.crop_sizes(H, W, CROP)
        ch, cw = sizes[int(rng.integers(len(sizes)))]
        offsets = transforms.fixed_offsets(H, W, ch, cw)
        top, left = offsets[int(rng.integers(len(offsets)))]
        flip = rng.random() < 0.5
        out = []
        for im in self.images(rec, indices):
            im = im.resize((W, H), Image.BILINEAR).crop((left, top, left + cw, top + ch)).resize((CROP, CROP),
                                                                                              Image.BILINEAR)
            if flip:
                im = im.transpose(Image.FLIP_LEFT_RIGHT)
            x = torch.from_numpy(np.array(im)).permute(2, 0, 1).float() / 255.0
            out.append((x - self.mean) / self.std)
        return torch.stack(out), torch.tensor(rec.label)


def ms_per_clip(dataset, clips: int, batch: int, workers: int) -> float:
    """Milliseconds per clip over `clips` clips after one untimed batch (the workers' start-up)."""
    order = [k % len(dataset) for k in range(clips + batch)]
    loader = DataLoader(dataset, batch_size=batch, sampler=order, num_workers=workers,
                        multiprocessing_context="fork" if workers else None)
    it = iter(loader)
    next(it)
    t0 = time.perf_counter()
    n = sum(x.shape[0] for x, _ in it)
    return (time.perf_counter() - t0) * 1e3 / n


def compare(ours, ref, clips: int, batch: int, workers: int, rounds: int) -> tuple[float, float]:
    """Median clips/s of each loader over `rounds` runs, interleaved, so that both see the same background
    load on a shared machine."""
    calls = {"ours": lambda: ms_per_clip(ours, clips, batch, workers),
             "pil": lambda: ms_per_clip(ref, clips, batch, workers)}
    times = time_interleaved(calls, rounds, 0, timer=lambda call: call())  # each call times itself
    return 1e3 / statistics.median(times["ours"]), 1e3 / statistics.median(times["pil"])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m src.bench.loader", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=16)
    ap.add_argument("--clips", type=int, default=32, help="timed clips per run")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3, help="alternating ours / PIL runs per row (medians reported)")
    ap.add_argument("--frames", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--keep", default=None, help="generate into (or reuse) this folder instead of a temporary one")
    ap.add_argument("--pil-decode", action="store_true", help="ours decodes JPEGs with PIL too (no simplejpeg)")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    args = ap.parse_args(argv)
    check_at_least(ap, args, {"--videos": 1, "--clips": 1, "--batch": 1, "--rounds": 1, "--frames": 1,
                              "--workers": 0})
    if args.pil_decode:
        readers.simplejpeg = None  # forked workers inherit it
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        t0 = time.perf_counter()
        records = generate(root, args.videos) if not (root / "frames").exists() else \
            [VideoRecord(f"v{v:03d}", NUM_FRAMES, (v % 4,)) for v in range(args.videos)]
        gen_s = time.perf_counter() - t0
        sources = {"frames": FrameFolderReader(root / "frames", TEMPLATE), "video": VideoFileReader(root / "videos")}
        rows, check = [], {}
        for fmt in ("frames", "video"):
            for t in args.frames:
                recs = records if fmt == "frames" else [VideoRecord(r.path + ".mp4", r.num_frames, r.labels)
                                                        for r in records]
                ours = VideoDataset(recs, sources[fmt], t, train=True, scale_size=(H, W), crop_size=CROP, flip=True)
                ref = PILReference(records, root, fmt, t)
                a, b = ours[min(1, len(records) - 1)][0], ref[min(1, len(records) - 1)][0]
                check[f"{fmt}_{t}f_mean_abs_diff"] = round(float((a - b).abs().mean()), 4)
                for w in args.workers:
                    ca, cb = compare(ours, ref, args.clips, args.batch, w, args.rounds)
                    rows.append({"source": "jpeg" if fmt == "frames" else "mp4", "frames": t, "workers": w,
                                 "ours_clips_s": round(ca, 2), "pil_clips_s": round(cb, 2), "ratio": round(ca / cb, 2)})
    print(f"{'source':6s} {'T':>3s} {'workers':>7s} {'ours clips/s':>13s} {'PIL clips/s':>12s} {'ours/PIL':>9s}")
    for r in rows:
        print(f"{r['source']:6s} {r['frames']:3d} {r['workers']:7d} {r['ours_clips_s']:13.2f} {r['pil_clips_s']:12.2f} "
              f"{r['ratio']:9.2f}")
    print("same frames and crop, mean |ours - PIL| (normalised units): "
          + ", ".join(f"{k} {v}" for k, v in check.items()))
    result = {"rows": rows, "agreement": check, "generate_s": round(gen_s, 1), "videos": args.videos,
              "size": [H, W], "num_frames": NUM_FRAMES, "batch": args.batch, "rounds": args.rounds,
              "jpeg_decoder": "simplejpeg" if readers.simplejpeg is not None else "PIL",
              "machine": machine(torch.device("cpu"))}
    if args.out:
        write_json(result, args.out)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
