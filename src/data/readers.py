"""Reading the frames of one clip: from a folder of JPEGs, or from a video file with PyAV.

Both return uint8 tensors (T, H, W, 3) for 1-based frame indices and raise `SampleReadError` (naming the
file) when a sample cannot be read, so the dataset can replace and count it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image


class SampleReadError(RuntimeError):
    """A frame or video that cannot be read; the message names the path."""


class FrameFolderReader:
    """Frames `<root>/<rel_dir>/<template.format(start_index - 1 + i)>` for 1-based indices i."""

    def __init__(self, root: str | Path, template: str = "{:05d}.jpg", start_index: int = 1):
        self.root, self.template, self.start_index = Path(root), template, start_index

    def frame_path(self, rel: str, index: int) -> Path:
        return self.root / rel / self.template.format(self.start_index - 1 + index)

    def read(self, rel: str, indices: list[int]) -> torch.Tensor:
        cache: dict[int, np.ndarray] = {}
        for i in indices:
            if i not in cache:
                p = self.frame_path(rel, i)
                try:
                    with Image.open(p) as im:
                        cache[i] = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
                except (OSError, ValueError) as e:
                    raise SampleReadError(f"cannot read frame {p}: {e}") from e
        return torch.from_numpy(np.stack([cache[i] for i in indices]))


class VideoFileReader:
    """Frames of `<root>/<rel_path>` decoded with PyAV: one forward pass from the start that stops after the
    last wanted frame and converts only the wanted frames to RGB (faster than seeking for sparse sampling
    of short clips, ENVIRONMENT.md)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def read(self, rel: str, indices: list[int]) -> torch.Tensor:
        import av

        path = self.root / rel
        wanted = set(indices)
        last = max(indices)
        frames: dict[int, np.ndarray] = {}
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                for i, frame in enumerate(container.decode(stream), 1):
                    if i in wanted:
                        frames[i] = frame.to_ndarray(format="rgb24")
                    if i >= last:
                        break
        except (OSError, av.FFmpegError, IndexError) as e:
            raise SampleReadError(f"cannot decode video {path}: {e}") from e
        if not frames:
            raise SampleReadError(f"video {path} has no decodable frame")
        missing = sorted(wanted - frames.keys())
        if missing:  # shorter than its counted length: a truncated or damaged file
            raise SampleReadError(f"video {path} ends before frame {missing[0]} (decoded {i} frames)")
        return torch.from_numpy(np.stack([frames[i] for i in indices]))


def count_frames(path: str | Path) -> int:
    """Frames of a video file: the container's count when it has one, else counted by decoding.
    Raises SampleReadError (naming the path) for a missing, undecodable or zero-length video."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            n = int(stream.frames) or sum(1 for _ in container.decode(stream))
    except (OSError, av.FFmpegError, IndexError) as e:
        raise SampleReadError(f"cannot open video {path}: {e}") from e
    if n == 0:
        raise SampleReadError(f"video {path} has no frames")
    return n


def _count_or_zero(path: Path) -> int:
    try:
        return count_frames(path)
    except SampleReadError:
        return 0  # the dataset reports it (and replaces it) when the sample is drawn


def cached_frame_counts(list_path: str | Path, root: str | Path, rel_paths: list[str]) -> dict[str, int]:
    """Frame counts of the videos of a list, cached beside it in `<list>.counts.json` (written atomically;
    entries are keyed by path, size and mtime so a replaced video is counted again)."""
    cache_path = Path(str(list_path) + ".counts.json")
    cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
    counts, changed = {}, False
    for rel in rel_paths:
        p = Path(root) / rel
        st = p.stat() if p.exists() else None
        key = f"{rel}|{st.st_size if st else 0}|{int(st.st_mtime) if st else 0}"
        if key not in cache:
            cache[key] = _count_or_zero(p) if st else 0
            changed = True
        counts[rel] = cache[key]
    if changed:
        try:
            tmp = cache_path.with_name(f".{cache_path.name}.{os.getpid()}")
            tmp.write_text(json.dumps(cache))
            os.replace(tmp, cache_path)
        except OSError:
            pass  # a read-only dataset folder: counting again next time is fine
    return counts
