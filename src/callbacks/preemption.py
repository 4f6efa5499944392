"""Preemption and exact resumption.

`PreemptionCheckpoint`: on SIGTERM (and SIGUSR1 outside SLURM, where Lightning's own SLURM handler saves
and requeues) Lightning stops after the current batch with a SIGTERMException; this callback then writes
`checkpoints/last.ckpt` atomically, so `ckpt_path=last` continues the run.
`StepSeed`: re-seeds the global RNG from (seed, global_step) before every batch, so Gumbel noise and dropout
are functions of the step and a run resumed from a checkpoint replays exactly what an uninterrupted run does.
"""

from __future__ import annotations

import signal
from pathlib import Path

import torch
from lightning.pytorch import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

from src.files import atomic_output


class PreemptionCheckpoint(Callback):
    def __init__(self, dirpath: str):
        self.dirpath = Path(dirpath)
        self._trainer = None

    def _on_sigusr1(self, signum, frame):
        if self._trainer is not None:
            self._trainer._signal_connector.received_sigterm = True

    def on_fit_start(self, trainer, pl_module):
        self._trainer = trainer
        if hasattr(signal, "SIGUSR1") and signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGUSR1, self._on_sigusr1)

    def on_exception(self, trainer, pl_module, exception):
        if not isinstance(exception, SIGTERMException):
            return
        if not trainer.is_global_zero:
            trainer.save_checkpoint(self.dirpath / "last.ckpt")  # every rank takes part; only rank 0 writes
            return
        with atomic_output(self.dirpath / "last.ckpt") as tmp:
            trainer.save_checkpoint(tmp)
        print(f"preempted: saved {self.dirpath / 'last.ckpt'} at step {trainer.global_step}; "
              "resume with ckpt_path=last", flush=True)


class StepSeed(Callback):
    def __init__(self, seed: int):
        self.seed = int(seed)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        rank = trainer.global_rank
        torch.manual_seed((self.seed * 1_000_003 + trainer.global_step * 97 + rank) % (2**63))
