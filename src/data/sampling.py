"""Frame indices of a clip (SPEC §7.4). All functions return 1-based indices of frames in a video of n."""

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
    """Validation / test: floor(n/T * (i + phase)) + 1; phase 0.5 = the centre of each segment
    (SPEC: floor(n/(2T) + i*n/T) + 1). Short videos (n < T) repeat frames."""
    tick = n / t
    # phase 0.5 evaluates the SPEC's expression literally, so float rounding matches the official loader's
    return [min(n, int(tick / 2 + tick * i if phase == 0.5 else tick * (i + phase)) + 1) for i in range(t)]


def multi_clip_indices(n: int, t: int, num_clips: int) -> list[list[int]]:
    """num_clips clips evenly shifted inside the segments: clip k uses phase (k + 0.5) / num_clips."""
    return [centre_indices(n, t, (k + 0.5) / num_clips) for k in range(num_clips)]


def twice_sample_indices(n: int, t: int) -> list[list[int]]:
    """TSM's twice sampling: the segment centres and the segment starts, two clips."""
    return [centre_indices(n, t, 0.5), centre_indices(n, t, 0.0)]


def dense_indices(n: int, t: int, rate: int, rng: np.random.Generator | None = None) -> list[int]:
    """T frames `rate` apart from a random start (train) or the centred start (rng None); wraps around."""
    span = max(1, 1 + (t - 1) * rate)
    start = 0 if n <= span else (int(rng.integers(n - span + 1)) if rng is not None else (n - span) // 2)
    return [(start + i * rate) % n + 1 for i in range(t)]
