"""What a fit leaves in its run folder (src/utils/run_folder.py) for re-launched sweeps, `ckpt_path=last` and reports.

`RunMarker`: `summary.json` when a fit ends (metrics, best epoch, `full`: false for a debug or batch-limited run
that reports must not count) and `DONE` when it completed its configured schedule.
`RunRecord`: `run.json` (the run's identity) at the start of the fit and the same identity in every checkpoint
(`suite_run`), so a resumption can be checked against the run it continues.
"""

from __future__ import annotations

import json
from pathlib import Path

from lightning.pytorch import Callback

from src.utils.files import write_atomic
from src.utils.run_folder import DONE, clear_failed, identity_hash, write_record


def batch_limits(trainer) -> dict:
    """The trainer settings that cut a run short of its full schedule, with their values (empty: none)."""
    limits = {}
    for key in ("limit_train_batches", "limit_val_batches"):
        value = getattr(trainer, key, 1.0)
        if not (isinstance(value, float) and value == 1.0):
            limits[key] = value
    if trainer.fast_dev_run:
        limits["fast_dev_run"] = trainer.fast_dev_run
    if getattr(trainer, "overfit_batches", 0):
        limits["overfit_batches"] = trainer.overfit_batches
    if trainer.max_steps not in (-1, None) and trainer.current_epoch < (trainer.max_epochs or 0):
        limits["max_steps"] = trainer.max_steps
    return limits


class RunMarker(Callback):
    def __init__(self, output_dir: str, meta: dict | None = None):
        self.output_dir = Path(output_dir)
        self.meta = dict(meta or {})

    def summary(self, trainer, pl_module) -> dict:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        limits = batch_limits(trainer)
        return {
            **self.meta,
            "best": dict(pl_module.best),
            "final": metrics,
            "epochs": trainer.current_epoch,
            "global_step": trainer.global_step,
            "full": not limits,
            "limits": limits,
        }

    def on_fit_end(self, trainer, pl_module):
        if not trainer.is_global_zero or trainer.fast_dev_run:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.output_dir / "summary.json", json.dumps(self.summary(trainer, pl_module), indent=2))
        reached = trainer.current_epoch >= (trainer.max_epochs or 0) or (
            trainer.max_steps not in (-1, None) and trainer.global_step >= trainer.max_steps)
        if reached and trainer.global_step > 0 and not trainer.interrupted:
            write_atomic(self.output_dir / DONE, "")


class RunRecord(Callback):
    """Added by src.train to every fit: `identity` is `src.utils.run_folder.run_identity(cfg)`."""

    def __init__(self, output_dir: str | Path, identity: dict):
        self.output_dir, self.identity = Path(output_dir), identity

    def on_fit_start(self, trainer, pl_module):
        if trainer.is_global_zero:
            write_record(self.output_dir, self.identity)
            clear_failed(self.output_dir)

    def on_train_start(self, trainer, pl_module):
        if trainer.global_step > 0:  # resumed: rows logged after the checkpoint are logged again
            for lg in trainer.loggers:
                drop = getattr(lg.experiment, "drop_rows_from", None)
                if callable(drop):
                    drop(trainer.global_step)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        checkpoint["suite_run"] = {"hash": identity_hash(self.identity), "identity": self.identity}
