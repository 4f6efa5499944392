"""Reading the frames of one clip: from a folder of JPEGs, or from a video file with PyAV.

Both return uint8 tensors (T, H, W, 3) for 1-based frame indices and raise `SampleReadError` (naming the
file) when a sample cannot be read, so the dataset can replace and count it.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from src.utils.files import write_atomic

try:  # optional speed-up (a pyproject dependency, with PIL as the fallback): see decode_rgb
    import simplejpeg
except ImportError:  # pragma: no cover
    simplejpeg = None


class SampleReadError(RuntimeError):
    """A frame or video that cannot be read; the message names the path."""


class FrameFolderReader:
    """Frames `<root>/<rel_dir>/<template.format(start_index - 1 + i)>` for 1-based indices i."""

    def __init__(self, root: str | Path, template: str = "{:05d}.jpg", start_index: int = 1):
        self.root, self.template, self.start_index = Path(root), template, start_index

    def frame_path(self, rel: str, index: int) -> Path:
        return self.root / rel / self.template.format(self.start_index - 1 + index)

    def read(self, rel: str, indices: list[int]) -> torch.Tensor:
        """uint8 (T, H, W, 3) for T = len(indices). Frames are decoded straight into one clip buffer (no
        per-frame arrays to stack); a repeated index (videos shorter than T) is decoded once and copied."""
        clip: np.ndarray | None = None
        first: dict[int, int] = {}  # frame index -> its first position in the clip
        for k, i in enumerate(indices):
            if i in first:
                clip[k] = clip[first[i]]
                continue
            first[i] = k
            p = self.frame_path(rel, i)
            try:
                frame = decode_rgb(p.read_bytes(), None if clip is None else clip[k])
            except (OSError, ValueError) as e:
                raise SampleReadError(f"cannot read frame {p}: {e}") from e
            if clip is None:  # the first frame sets the clip's size
                clip = np.empty((len(indices), *frame.shape), np.uint8)
                clip[k] = frame
        return torch.from_numpy(clip)


def decode_rgb(data: bytes, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 (H, W, 3) RGB of one encoded image (any format and mode PIL reads). With `out` (uint8 (H, W, 3),
    C-contiguous) the pixels are written there and `out` is returned; a different image size is a ValueError.

    JPEGs in YCbCr or grey go through simplejpeg when it is installed: libjpeg-turbo with the accurate DCT and
    upsampling (the same pixels as PIL), decoding into `out`, took ~0.55x PIL's open + decode + copy time on
    320x240 quality-90 frames. Anything else, and any JPEG simplejpeg refuses, goes through PIL.
    """
    if simplejpeg is not None and data[:2] == b"\xff\xd8":  # the JPEG start-of-image marker
        frame = _decode_simplejpeg(data, out)
        if frame is not None:
            return frame
    with Image.open(io.BytesIO(data)) as im:
        frame = np.asarray(im if im.mode == "RGB" else im.convert("RGB"))
    if out is None:
        return frame
    _check_size(out, *frame.shape[:2])
    out[...] = frame
    return out


def _decode_simplejpeg(data: bytes, out: np.ndarray | None) -> np.ndarray | None:
    """decode_rgb through simplejpeg, or None where PIL should decide instead: CMYK / YCCK / Adobe-RGB colour
    spaces (PIL's colour handling), and any header or data error (strict mode also fails on libjpeg warnings
    such as stray bytes, which PIL reads through, as this reader always did)."""
    try:
        h, w, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    if colorspace not in ("YCbCr", "Gray"):
        return None
    _check_size(out, h, w)
    try:
        return simplejpeg.decode_jpeg(data, "RGB", buffer=out)
    except ValueError:
        return None


def _check_size(out: np.ndarray | None, h: int, w: int) -> None:
    if out is not None and out.shape[:2] != (h, w):
        raise ValueError(f"frame is {w}x{h}, the clip's first frame {out.shape[1]}x{out.shape[0]}")


class VideoFileReader:
    """Frames of `<root>/<rel_path>` decoded with PyAV: one forward pass from the start that stops after the
    last wanted frame and converts only the wanted frames to RGB (faster than seeking for sparse sampling
    of short clips with long GOPs)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def read(self, rel: str, indices: list[int]) -> torch.Tensor:
        """uint8 (T, H, W, 3) for T = len(indices)."""
        import av
        from av.video.reformatter import VideoReformatter

        path = self.root / rel
        wanted = set(indices)
        last = max(indices)
        frames: dict[int, np.ndarray] = {}
        # One reformatter for the whole clip: `frame.to_ndarray(format=...)` builds a new swscale context for
        # every frame, which costs ~1 ms at 320x240, 15x the YUV -> RGB conversion itself (same pixels).
        rgb = VideoReformatter()
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                for i, frame in enumerate(container.decode(stream), 1):
                    if i in wanted:
                        frames[i] = rgb.reformat(frame, format="rgb24").to_ndarray()
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
            write_atomic(cache_path, json.dumps(cache))
        except OSError:
            pass  # a read-only dataset folder: counting again next time is fine
    return counts
