"""A CSV logger that keeps a run's history when the run resumes in its own folder.

Lightning's CSVLogger deletes `metrics.csv` of a folder it reopens; this one appends, keeping the existing header
(its columns are merged with new ones), and on resumption drops the rows logged after the checkpoint the run
continues from (they are logged again, by the same steps).
"""

from __future__ import annotations

import csv
import os

from lightning.pytorch.loggers import CSVLogger as _CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment


class AppendingExperimentWriter(ExperimentWriter):
    def _check_log_dir_exists(self) -> None:
        if os.path.isfile(self.metrics_file_path):
            with open(self.metrics_file_path, newline="") as f:
                self.metrics_keys = sorted(next(csv.reader(f), []))

    def drop_rows_from(self, step: int) -> int:
        """Remove the rows of steps >= `step` from metrics.csv: a run resumed at global step `step` logs them
        again (a row's step is the global step before its batch). Returns how many rows went."""
        self.save()
        if not os.path.isfile(self.metrics_file_path):
            return 0
        with open(self.metrics_file_path, newline="") as f:
            reader = csv.DictReader(f)
            fields, rows = reader.fieldnames or [], list(reader)
        keep = [r for r in rows if not r.get("step") or float(r["step"]) < step]
        if len(keep) != len(rows):
            tmp = f"{self.metrics_file_path}.tmp{os.getpid()}"
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=fields)
                writer.writeheader()
                writer.writerows(keep)
            os.replace(tmp, self.metrics_file_path)
        return len(rows) - len(keep)


class CSVLogger(_CSVLogger):
    """`lightning.pytorch.loggers.CSVLogger` that appends to an existing metrics.csv."""

    @property
    @rank_zero_experiment
    def experiment(self) -> AppendingExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingExperimentWriter(log_dir=self.log_dir)
        return self._experiment
