"""Preemption and exact resumption.

`PreemptionCheckpoint`: SIGINT (Ctrl-C), SIGTERM (`scancel`, a scheduler's preemption, `kill`) and SIGUSR1
(outside SLURM, where Lightning's own SLURM handler saves and requeues) ask the fit to stop after the current
training batch; the callback then writes `checkpoints/last.ckpt` atomically and `src.train` exits with
`PREEMPTED_EXIT` after one line saying how to resume. A signal that arrives during validation takes effect when
the validation ends, so a resumed run never restarts mid-validation. A second Ctrl-C stops at once (no
checkpoint). Loader workers ignore these signals (src/data/resumable.py): sent to the whole process group,
they reach the main process alone in effect.
`StepSeed`: re-seeds the global RNG from (seed, global_step) before every batch, so Gumbel noise and dropout
are functions of the step and a run resumed from a checkpoint replays exactly what an uninterrupted run does.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import torch
from lightning.pytorch import Callback
from lightning.pytorch.utilities.exceptions import SIGTERMException

from src.utils.files import atomic_output

# Exit status of a run stopped by a signal after saving a resumable checkpoint: EX_TEMPFAIL of sysexits.h
# ("try again later"). A scheduler requeues on it, e.g. SLURM `RequeueExit=75` or `[ $? -eq 75 ] && scontrol
# requeue $SLURM_JOB_ID` in a batch script.
PREEMPTED_EXIT = 75
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGUSR1")


class PreemptionCheckpoint(Callback):
    """After a stop signal: save `<dirpath>/last.ckpt`; `stopped_by` (the signal's name), `saved` (the path) and
    `step` tell src.train what happened."""

    def __init__(self, dirpath: str):
        self.dirpath = Path(dirpath)
        self._trainer = None
        self._previous: dict[int, object] = {}
        self._deferred = False
        self.stopped_by: str | None = None
        self.saved: Path | None = None
        self.step = 0

    # ---- signals -------------------------------------------------------------------------------------
    def _on_signal(self, signum, frame):
        name = signal.Signals(signum).name
        if signum == signal.SIGINT and self.stopped_by is not None:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        if self.stopped_by is None:
            self.stopped_by = name
            # a raw write to stderr: print() from a signal handler can interrupt a print of the main code and fail
            os.write(2, f"\n{name}: stopping after this batch and saving a checkpoint "
                        "(Ctrl-C again to stop at once)\n".encode())
        self._request_stop()

    def _request_stop(self):
        trainer = self._trainer
        if trainer is None:
            return
        if trainer.validating or trainer.sanity_checking:
            self._deferred = True  # see on_validation_end
        else:
            trainer._signal_connector.received_sigterm = True

    def _hold_for_validation(self, trainer):
        # Lightning's own SIGTERM handler sets the flag directly, and its evaluation loop stops at the next batch
        # when it is set: keep it aside until the validation ends
        if trainer._signal_connector.received_sigterm:
            trainer._signal_connector.received_sigterm = False
            self._deferred = True

    def on_validation_start(self, trainer, pl_module):
        self._hold_for_validation(trainer)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._hold_for_validation(trainer)

    def on_validation_end(self, trainer, pl_module):
        if self._deferred:
            self._deferred = False
            trainer._signal_connector.received_sigterm = True

    def on_fit_start(self, trainer, pl_module):
        self._trainer = trainer
        self.stopped_by, self.saved, self._deferred = None, None, False
        for name in STOP_SIGNALS:
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            current = signal.getsignal(signum)
            # SIGUSR1: leave a handler already there (Lightning's SLURM auto-requeue, submitit's)
            if name == "SIGUSR1" and current not in (signal.SIG_DFL, None):
                continue
            self._previous[signum] = current
            signal.signal(signum, self._on_signal)

    def teardown(self, trainer, pl_module, stage):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous = {}
        self._trainer = None

    # ---- saving --------------------------------------------------------------------------------------
    def on_exception(self, trainer, pl_module, exception):
        if not isinstance(exception, SIGTERMException):
            return
        self.stopped_by = self.stopped_by or "SIGTERM"
        self.step = trainer.global_step
        path = self.dirpath / "last.ckpt"
        if not trainer.is_global_zero:
            trainer.save_checkpoint(path)  # every rank takes part; only rank 0 writes
            return
        with atomic_output(path) as tmp:
            trainer.save_checkpoint(tmp)
        self.saved = path


class StepSeed(Callback):
    def __init__(self, seed: int):
        self.seed = int(seed)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        rank = trainer.global_rank
        torch.manual_seed((self.seed * 1_000_003 + trainer.global_step * 97 + rank) % (2**63))
