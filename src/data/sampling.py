"""Frame indices of a clip. All functions return 1-based indices of frames in a video of n.

Training draws one random frame in each of T equal segments (TSN). Evaluation reads one or more clips chosen by
a test sampler (`EVAL_SAMPLERS`, the `test_protocol` config group): `uniform` (the centre of each segment, or
N clips shifted inside the segments), `official` (as uniform, but a video of n <= T frames is frame 1 repeated
T times, as the official AFNet validation loader does), `twice` (TSM: segment centres and segment starts) and
`dense` (TSM: N clips of T frames 64/T apart inside a 64-frame window).
"""

from __future__ import annotations

import numpy as np


def tsn_train_indices(n: int, t: int, rng: np.random.Generator) -> list[int]:
    """TSN segments: T equal segments of d = n // T frames, one random frame in each. With d = 0 (n < T) every
    index is frame 1, as the official loader does (its n > T branch with sorted random draws cannot trigger)."""
    d = n // t
    if d > 0:
        return [i * d + int(rng.integers(d)) + 1 for i in range(t)]
    if n > t:  # unreachable with d = n // t, kept for parity with the reference description
        return sorted(int(x) + 1 for x in rng.choice(n, t, replace=False))
    return [1] * t


def centre_indices(n: int, t: int, phase: float = 0.5) -> list[int]:
    """Validation / test: floor(n/T * (i + phase)) + 1; phase 0.5 = the centre of each segment,
    floor(n/(2T) + i*n/T) + 1. Short videos (n < T) repeat frames."""
    tick = n / t
    # phase 0.5 evaluates floor(n/(2T) + i*n/T) literally, so float rounding matches the official loader's
    return [min(n, int(tick / 2 + tick * i if phase == 0.5 else tick * (i + phase)) + 1) for i in range(t)]


def multi_clip_indices(n: int, t: int, num_clips: int) -> list[list[int]]:
    """num_clips clips evenly shifted inside the segments: clip k uses phase (k + 0.5) / num_clips."""
    return [centre_indices(n, t, (k + 0.5) / num_clips) for k in range(num_clips)]


def twice_sample_indices(n: int, t: int) -> list[list[int]]:
    """TSM's twice sampling: the segment centres and the segment starts, two clips."""
    return [centre_indices(n, t, 0.5), centre_indices(n, t, 0.0)]


def official_clip_indices(n: int, t: int, num_clips: int = 1) -> list[list[int]]:
    """The official AFNet validation loader: `multi_clip_indices` when n > T, else frame 1 T times per clip."""
    if n > t:
        return multi_clip_indices(n, t, num_clips)
    return [[1] * t for _ in range(num_clips)]


def strided_clip(n: int, t: int, rate: int, start: int) -> list[int]:
    """T frames `rate` apart from 0-based `start`, wrapping around the end of the video."""
    return [(start + i * rate) % n + 1 for i in range(t)]


def dense_indices(n: int, t: int, rate: int, rng: np.random.Generator | None = None) -> list[int]:
    """T frames `rate` apart from a random start (train) or the centred start (rng None); wraps around."""
    span = max(1, 1 + (t - 1) * rate)
    start = 0 if n <= span else (int(rng.integers(n - span + 1)) if rng is not None else (n - span) // 2)
    return strided_clip(n, t, rate, start)


def dense_clips_indices(n: int, t: int, num_clips: int = 10, window: int = 64) -> list[list[int]]:
    """TSM's dense test sampling: `num_clips` clips of T frames `window // T` apart, their starts spread evenly
    (truncated) over [0, max(0, n - window)], wrapping around videos shorter than the window."""
    rate = max(1, window // t)
    starts = np.linspace(0, max(0, n - window), num=num_clips).astype(int)
    return [strided_clip(n, t, rate, int(s)) for s in starts]


EVAL_SAMPLERS = ("uniform", "official", "twice", "dense")


def eval_clips_indices(sampler: str, n: int, t: int, num_clips: int = 1) -> list[list[int]]:
    """The clips (each T 1-based frame indices) that test sampler `sampler` reads from a video of n frames.
    `twice` always reads 2 clips; the others `num_clips`."""
    if sampler == "uniform":
        return multi_clip_indices(n, t, num_clips)
    if sampler == "official":
        return official_clip_indices(n, t, num_clips)
    if sampler == "twice":
        return twice_sample_indices(n, t)
    if sampler == "dense":
        return dense_clips_indices(n, t, num_clips)
    raise ValueError(f"test sampler {sampler!r}: choose one of {', '.join(EVAL_SAMPLERS)}")
