"""Progress of the long command-line tools (data.prepare, data.check, report): a bar on a terminal, one line every
`every` seconds in a log file (a batch job's output), on stderr so stdout stays parseable."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator


def progress(items: Iterable, total: int | None = None, desc: str = "", unit: str = "video",
             every: float = 30.0, enabled: bool = True) -> Iterator:
    """Yield `items`, reporting how many went by."""
    if not enabled:
        yield from items
        return
    total = total if total is not None else (len(items) if hasattr(items, "__len__") else None)
    if sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(items, total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)
        return
    start = last = time.monotonic()
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= every:
            last = now
            print(progress_line(desc, done, total, now - start, unit), file=sys.stderr, flush=True)
    if done and last != start:
        print(progress_line(desc, done, total, time.monotonic() - start, unit), file=sys.stderr, flush=True)


def progress_line(desc: str, done: int, total: int | None, seconds: float, unit: str) -> str:
    """`desc: 1200/220847 videos (0.5%), 61 s, about 3.1 h left`."""
    rate = done / seconds if seconds > 0 else 0.0
    if total:
        left = (total - done) / rate if rate else float("inf")
        eta = f", about {_duration(left)} left" if done < total else ""
        return f"{desc}: {done}/{total} {unit}s ({100 * done / total:.1f}%), {_duration(seconds)}{eta}"
    return f"{desc}: {done} {unit}s, {_duration(seconds)}"


def _duration(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
