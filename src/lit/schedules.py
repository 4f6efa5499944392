"""Training schedules as pure functions of the global step / epoch, so a resumed run gets identical values.

Gumbel temperature τ (decayed per iteration, exponentially from 1 to 0.01 in the paper), the RT warm-up of the
ratio target (the official code's 1 -> RT in thirds) and the LR factor (linear warm-up, then ×gamma at each
milestone epoch, the paper's step schedule).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

TAU_KINDS = ("exponential", "cosine", "linear")


def temperature(step: int, steps_per_epoch: int, kind: str = "exponential", t0: float = 1.0,
                t1: float = 0.01, t_end: float = 50) -> float:
    """Gumbel-Softmax temperature at optimisation step `step` (0-based), decayed per iteration.

    Progress p = step / (t_end * steps_per_epoch), clamped to [0, 1]: after `t_end` epochs τ stays at t1.
    exponential: t0 * (t1/t0)^p (the paper's); cosine: t1 + (t0-t1)(1+cos(pi p))/2; linear: t0 + (t1-t0) p.
    """
    if kind not in TAU_KINDS:
        raise ValueError(f"schedule.tau.kind={kind!r}: choose one of {TAU_KINDS}")
    p = min(max(step / max(1.0, t_end * steps_per_epoch), 0.0), 1.0)
    if kind == "exponential":
        return t0 * (t1 / t0) ** p
    if kind == "cosine":
        return t1 + 0.5 * (t0 - t1) * (1.0 + math.cos(math.pi * p))
    return t0 + (t1 - t0) * p


def rt_target(epoch: int, rt: float, begin: int = 10, end: int = 20, enabled: bool = True) -> float:
    """Ratio target RT_e for 0-based `epoch`: 1 before `begin`; RT + 2/3(1-RT) in the first half
    of [begin, end); RT + 1/3(1-RT) in the second half; RT from `end` on. begin=10, end=20 give the
    official 10/15/20 steps, e.g. RT=0.5: 1 -> 0.833 -> 0.667 -> 0.5."""
    if not enabled or epoch >= end:
        return rt
    if epoch < begin:
        return 1.0
    thirds_left = 2 if epoch < begin + (end - begin) / 2 else 1
    return rt + (1.0 - rt) * thirds_left / 3.0


def lr_factor(step: int, steps_per_epoch: int, milestones: Sequence[int] = (), gamma: float = 0.1,
              warmup_epochs: float = 0) -> float:
    """Multiplier of the base LR at step `step` (0-based): linear warm-up from 1/warmup_steps to 1 over
    `warmup_epochs`, times gamma^(number of milestone epochs passed)."""
    epoch = step / max(1, steps_per_epoch)
    factor = gamma ** sum(epoch >= m for m in milestones)
    warmup_steps = warmup_epochs * steps_per_epoch
    if warmup_steps > 0 and step < warmup_steps:
        factor *= (step + 1) / warmup_steps
    return factor
