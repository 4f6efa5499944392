"""Media on disk: counting the frames of a folder, finding video files, and extracting a video's frames
with PyAV into a frame folder (atomically: a folder under its final name is always complete)."""

from __future__ import annotations

import os
import re
from fractions import Fraction
from pathlib import Path

from src.utils.files import atomic_output

VIDEO_EXTENSIONS = {".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".flv"}


def template_regex(template: str) -> re.Pattern:
    """`image_{:05d}.jpg` -> a regex matching `image_00001.jpg` with the index as group 1."""
    m = re.fullmatch(r"(.*)\{[^}]*\}(.*)", template)
    if not m:
        raise ValueError(f"frame template {template!r} has no {{}} field")
    return re.compile(re.escape(m.group(1)) + r"(\d+)" + re.escape(m.group(2)))


def frame_indices(folder: Path, template: str) -> list[int]:
    """Sorted indices of the files in `folder` named by `template` ([] if the folder does not exist)."""
    rx = template_regex(template)
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(int(m.group(1)) for n in names if (m := rx.fullmatch(n)))


def index_videos(media: Path) -> dict[str, Path]:
    """Video files under `media` (recursively) by file stem; the first in sorted order wins a clash."""
    found: dict[str, Path] = {}
    for p in sorted(media.rglob("*")):
        if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file():
            found.setdefault(p.stem, p)
    return found


def scaled_size(w: int, h: int, short_side: int | None) -> tuple[int, int]:
    """(w, h) with the shorter side set to short_side (even sizes, which JPEG and yuv420 prefer)."""
    if not short_side:
        return w, h
    s = short_side / min(w, h)
    return max(2, round(w * s / 2) * 2), max(2, round(h * s / 2) * 2)


def extract_frames(video: Path, out_dir: Path, template: str, fps: float | None = None,
                   short_side: int | None = None, quality: int = 90) -> int:
    """Decode `video` into `out_dir/<template % i>` (i from 1); returns the number of frames written.

    fps: keep one frame per 1/fps seconds of presentation time (None: every frame). short_side: resize so
    the shorter side has this many pixels (None: native). The frames go to a temporary sibling folder that
    is renamed to out_dir at the end, so out_dir existing means finished. Raises on a decoding error.
    """
    import av
    from PIL import Image

    with atomic_output(out_dir) as tmp:
        tmp.mkdir()
        n = 0
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            step = Fraction(1) / Fraction(fps).limit_denominator(1000) if fps else None
            next_t = None
            for frame in container.decode(stream):
                if step is not None:
                    t = Fraction(frame.pts or 0) * stream.time_base if frame.pts is not None else Fraction(n) * step
                    if next_t is not None and t < next_t:
                        continue
                    next_t = (next_t if next_t is not None else t) + step
                w, h = scaled_size(frame.width, frame.height, short_side)
                rgb = frame.to_ndarray(format="rgb24", width=w, height=h)
                n += 1
                Image.fromarray(rgb).save(tmp / template.format(n), quality=quality)
    return n


def link_or_use(target: Path, link: Path) -> Path:
    """Make `link` a symlink to `target`: created if missing, replaced (atomically) if it points elsewhere, kept if
    it is a real folder (media already there). Returns link."""
    target = target.resolve()
    if link.is_symlink():
        if Path(os.readlink(link)) == target:
            return link
    elif link.exists():
        return link
    link.parent.mkdir(parents=True, exist_ok=True)
    tmp = link.with_name(f".{link.name}.tmp{os.getpid()}")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(target, target_is_directory=True)
    os.replace(tmp, link)
    return link
