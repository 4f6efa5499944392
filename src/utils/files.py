"""Writing files so that a crash or a failure never leaves a half-written result where a good one was."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path of `path` to write (a file or a folder); on success it replaces `path`
    in one rename, on any exception it is removed and `path` stays as it was. The parent folder is created.
    A folder can only replace a missing or empty folder (`os.replace`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    remove(tmp)
    try:
        yield tmp
        if path.is_dir() and tmp.is_dir() and not any(path.iterdir()):
            path.rmdir()
        os.replace(tmp, path)
    except BaseException:
        remove(tmp)
        raise


def write_atomic(path: str | Path, data: str | bytes) -> None:
    """Write text (UTF-8) or bytes to `path` through `atomic_output`."""
    with atomic_output(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")


def remove(path: Path) -> None:
    """Delete a file or a folder tree if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()
