"""Exact mid-epoch resumption for plain DataLoaders, whatever the number of loader workers.

The training order is a function of (seed, epoch) only, so after a restart the sampler regenerates the
interrupted epoch's order and starts after the batches already trained on. Two facts of Lightning 2.x govern
when the sampler may read its epoch and offset: Lightning asks for the train loader and calls `iter()` on it
before it restores a checkpoint (to count the steps of the LR schedule), and a multi-process DataLoader
feeds its workers `prefetch_factor x num_workers` batches of indices inside `iter()`. `ResumableLoader`
therefore defers `iter()` to the first batch requested, after the restore and after `set_epoch`.
Loader workers ignore SIGINT and SIGTERM (`ignore_stop_signals`): a Ctrl-C or a scheduler's SIGTERM to the
whole process group stops the main process cleanly, which then shuts its workers down.
"""

from __future__ import annotations

import signal

import torch
from torch.utils.data import DataLoader, Sampler


class EpochSampler(Sampler[int]):
    """A permutation of range(n) seeded by (seed, epoch) (or range(n) without shuffle).

    Lightning calls `set_epoch` at every epoch start. `start_at(k)` makes the next iteration skip the first
    k indices (once), i.e. resume a partially trained epoch; `start_fn` (() -> indices to skip) is asked
    instead at each iteration start. With `encode_epoch`, it yields `index + epoch * n`, so the dataset can
    seed its augmentation by (epoch, index) in any worker.
    """

    def __init__(self, n: int, seed: int = 0, shuffle: bool = True, encode_epoch: bool = False, rank: int = 0,
                 world_size: int = 1, start_fn=None):
        self.n, self.seed, self.shuffle, self.encode_epoch = n, seed, shuffle, encode_epoch
        self.rank, self.world_size = rank, world_size
        self.start_fn = start_fn
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


class _DeferredIterator:
    """An iterator that calls `start()` for the real one at the first `next()`."""

    def __init__(self, start):
        self._start, self._it = start, None

    def __iter__(self):
        return self

    def __next__(self):
        if self._it is None:
            self._it = self._start()
        return next(self._it)


class ResumableLoader(DataLoader):
    """A DataLoader whose iteration (sampler read, workers started and fed) begins at the first batch requested
    rather than at `iter()`, so a sampler set up or restored between the two is honoured with workers too."""

    def __iter__(self):
        return _DeferredIterator(super().__iter__)

    # Lightning's stateful-loader protocol: the position lives in the trainer's progress (EpochSampler.start_fn),
    # so there is nothing to save; having it tells Lightning this loader resumes mid-epoch exactly.
    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def ignore_stop_signals(worker_id: int) -> None:
    """`worker_init_fn` of every loader: SIGINT / SIGTERM sent to the process group are the main process's to
    handle (it finishes the batch, saves, and stops the workers)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def batches_done_this_epoch(trainer) -> int:
    """Training batches already completed in the current epoch of a run restored from a checkpoint (else 0)."""
    if trainer is None or not trainer.fit_loop.restarting:
        return 0
    return int(trainer.fit_loop.epoch_loop.batch_progress.current.completed)


def resume_start_fn(trainer, batch_size: int):
    """For `EpochSampler(start_fn=...)`: the samples to skip, read when an epoch's iteration begins (after any
    restore, see the module docstring)."""
    return lambda: batches_done_this_epoch(trainer) * batch_size
