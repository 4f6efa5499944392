"""Leaves `summary.json` and a `DONE` marker in the run folder when a fit finishes, so a re-launched sweep
can skip finished jobs, and reports from local folders need no W&B."""

from __future__ import annotations

import json
from pathlib import Path

from lightning.pytorch import Callback

from src.files import write_atomic


class RunMarker(Callback):
    def __init__(self, output_dir: str, meta: dict | None = None):
        self.output_dir = Path(output_dir)
        self.meta = dict(meta or {})

    def summary(self, trainer, pl_module) -> dict:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        return {
            **self.meta,
            "best": dict(pl_module.best),
            "final": metrics,
            "epochs": trainer.current_epoch,
            "global_step": trainer.global_step,
        }

    def on_fit_end(self, trainer, pl_module):
        if not trainer.is_global_zero or trainer.fast_dev_run:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(self.output_dir / "summary.json", json.dumps(self.summary(trainer, pl_module), indent=2))
        if trainer.current_epoch >= (trainer.max_epochs or 0) and not trainer.interrupted:
            write_atomic(self.output_dir / "DONE", "")
