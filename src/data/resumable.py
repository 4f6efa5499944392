"""Exact mid-epoch resumption for plain DataLoaders.

The training order is a function of (seed, epoch) only, so after a restart the sampler can regenerate the
interrupted epoch's order and start after the batches already trained on (Lightning restores its loop
progress before it asks the DataModule for the train loader).
"""

from __future__ import annotations

import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """A permutation of range(n) seeded by (seed, epoch) (or range(n) without shuffle).

    Lightning calls `set_epoch` at every epoch start. `start_at(k)` makes the next iteration skip the first
    k indices (once), i.e. resume a partially trained epoch. With `encode_epoch`, it yields
    `index + epoch * n`, so the dataset can seed its augmentation by (epoch, index) in any worker.
    """

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True, encode_epoch: bool = False, rank: int = 0,
                 world_size: int = 1, start_fn=None):
        self.n, self.seed, self.shuffle, self.encode_epoch = n, seed, shuffle, encode_epoch
        self.rank, self.world_size = rank, world_size
        self.start_fn = start_fn  # () -> indices to skip, asked at each iteration start (after a restore)
        self.epoch = 0
        self._start = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def start_at(self, index: int) -> None:
        self._start = max(0, min(index, len(self)))

    def order(self) -> list[int]:
        """This rank's indices for the current epoch: the epoch's permutation, padded by wrapping to a multiple
        of world_size, then every world_size-th entry from `rank` (so ranks see disjoint, equal shares)."""
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            full = torch.randperm(self.n, generator=g).tolist()
        else:
            full = list(range(self.n))
        full += full[: (-len(full)) % self.world_size]
        return full[self.rank:: self.world_size]

    def __iter__(self):
        start, self._start = self._start, 0
        if not start and self.start_fn is not None:
            start = max(0, min(int(self.start_fn()), len(self)))
        offset = self.epoch * self.n if self.encode_epoch else 0
        return iter([i + offset for i in self.order()[start:]])

    def __len__(self) -> int:
        return -(-self.n // self.world_size)


def batches_done_this_epoch(trainer) -> int:
    """Training batches already completed in the current epoch of a run restored from a checkpoint (else 0)."""
    if trainer is None or not trainer.fit_loop.restarting:
        return 0
    return int(trainer.fit_loop.epoch_loop.batch_progress.current.completed)


def resume_start_fn(trainer, batch_size: int):
    """For `EpochSampler(start_fn=...)`: Lightning creates the train loader before it restores a checkpoint
    (to count the steps), so the number of samples to skip is read when an epoch's iteration begins."""
    return lambda: batches_done_this_epoch(trainer) * batch_size
