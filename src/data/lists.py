"""List files, in the official AFNet/TSM format: frame folders `<rel_dir> <num_frames> <label>...`, videos
`<rel_path> <label>...`, and `classes.txt` (one class name per line; the line number is the label)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class ListFormatError(ValueError):
    """A list line that cannot be used; the message starts with `file:line`."""


@dataclass(frozen=True)
class VideoRecord:
    path: str                 # relative to the dataset's media root
    num_frames: int | None    # None for video files until counted
    labels: tuple[int, ...]

    @property
    def label(self) -> int:
        return self.labels[0]


def _error(path: Path, lineno: int, line: str, why: str) -> ListFormatError:
    return ListFormatError(f"{path}:{lineno}: {why}: {line.rstrip()!r}")


def parse_list(path: str | Path, kind: str = "frames", num_classes: int | None = None,
               num_labels: int = 1) -> list[VideoRecord]:
    """Parse a list file. kind "frames": `<dir> <num_frames> <label>*num_labels`; "video": `<path> <label>*num_labels`.

    Labels are taken from the right, so paths may contain spaces. Blank lines are skipped. Any malformed line,
    or a label outside [0, num_classes), raises ListFormatError naming file:line.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"list file not found: {path}")
    numeric = num_labels + (1 if kind == "frames" else 0)
    records = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.strip().rsplit(None, numeric)
            if len(parts) < numeric + 1:
                raise _error(path, lineno, line, f"expected a path and {numeric} integer column(s)")
            try:
                values = [int(t) for t in parts[1:]]
            except ValueError:
                raise _error(path, lineno, line, f"the last {numeric} column(s) must be integers") from None
            rel = parts[0]
            n = values[0] if kind == "frames" else None
            labels = tuple(values[1:] if kind == "frames" else values)
            if n is not None and n < 1:
                raise _error(path, lineno, line, f"frame count {n} < 1")
            if num_classes is not None and any(not 0 <= y < num_classes for y in labels):
                raise _error(path, lineno, line, f"label outside [0, {num_classes})")
            records.append(VideoRecord(rel, n, labels))
    if not records:
        raise ListFormatError(f"{path}: the list is empty")
    return records


def read_classes(path: str | Path, num_classes: int | None = None) -> list[str]:
    """Class names, one per line; their count must equal num_classes when given."""
    path = Path(path)
    names = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if num_classes is not None and len(names) != num_classes:
        raise ListFormatError(f"{path}: {len(names)} classes, but the config says num_classes={num_classes}")
    return names
