"""The run's loggers: built from the `logger` config group (`build_loggers`), checked before any compute (a
W&B run online without an API key, a logger whose optional package is missing), W&B summaries of the best epoch,
and a CSV logger that keeps a run's history when the run resumes in its own folder.

Lightning's CSVLogger deletes `metrics.csv` of a folder it reopens; this one appends, keeping the existing header
(its columns are merged with new ones), and on resumption drops the rows logged after the checkpoint the run
continues from (they are logged again, by the same steps).
"""

from __future__ import annotations

import csv
import importlib.util
import netrc
import os
from urllib.parse import urlparse

from lightning.pytorch.loggers import CSVLogger as _CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.loggers.logger import rank_zero_experiment
from omegaconf import DictConfig, OmegaConf

from src.utils.config import ConfigError


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


# W&B summary aggregates over the run, beside the last value: the best epoch of each validation metric (W&B keeps
# only the last by default). finish_wandb adds best/{metric,gflops,epoch,ratio}: the best epoch and its cost.
WANDB_SUMMARIES = {"val/top1": "max,last", "val/top5": "max,last", "val/mAP": "max,last", "val/loss": "min,last"}


def define_wandb_summaries(loggers: list) -> None:
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger":
            for key, summary in WANDB_SUMMARIES.items():
                # the x-axis Lightning gives every key (its "*" definition), kept for these explicitly
                lg.experiment.define_metric(key, step_metric="trainer/global_step", step_sync=True, summary=summary)


def check_wandb(cfg: DictConfig) -> None:
    """Fail at once, with the way out, when W&B would log online without an API key (its login prompt or its
    network retries otherwise end in a traceback after up to ~100 s)."""
    for name, lg in (cfg.get("logger") or {}).items():
        if not str(lg.get("_target_", "")).endswith("WandbLogger"):
            continue
        mode = os.environ.get("WANDB_MODE", lg.get("mode") or "online")
        if lg.get("offline") or mode in ("offline", "disabled", "dryrun") or os.environ.get("WANDB_API_KEY"):
            return
        host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
        try:
            if (netrc.netrc(os.environ.get("NETRC")).authenticators(host) or (None, None, None))[2]:
                return
        except (OSError, netrc.NetrcParseError):
            pass
        raise ConfigError(f"logger.{name}: W&B logs online but no API key was found (WANDB_API_KEY or `wandb login`); "
                          "set WANDB_MODE=offline to log locally and `wandb sync` later, or use logger=csv")


# Loggers whose package is an optional extra of pyproject.toml: class name -> (modules, any one will do; extra)
OPTIONAL_LOGGERS = {"TensorBoardLogger": (("tensorboard", "tensorboardX"), "tensorboard")}


def check_logger_packages(cfg: DictConfig) -> None:
    """ConfigError naming the extra to install when a configured logger's package is missing."""
    for name, c in (cfg.get("logger") or {}).items():
        modules, extra = OPTIONAL_LOGGERS.get(str(c.get("_target_", "")).rsplit(".", 1)[-1], ((), None))
        if modules and not any(importlib.util.find_spec(m) for m in modules):
            raise ConfigError(f"logger.{name}: needs the {modules[0]} package: pip install -e '.[{extra}]'")


def build_loggers(cfg: DictConfig) -> list:
    from hydra.utils import instantiate

    check_wandb(cfg)
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    try:
        define_wandb_summaries(loggers)
    except Exception as e:  # noqa: BLE001 - wandb.init's errors (network, key) have no common base class
        first = (str(e).splitlines() or [""])[0]
        raise ConfigError(f"logger=wandb: W&B did not start ({type(e).__name__}: {first}); set WANDB_MODE=offline "
                          "to log locally and `wandb sync` later") from e
    for lg in loggers:
        if hasattr(lg, "log_hyperparams"):
            lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return loggers


def finish_wandb(loggers: list, best: dict) -> None:
    """Close W&B runs with the best epoch's metric and GFLOPs in their summary (as the paper reports them);
    an offline run is then complete on disk for `wandb sync`."""
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger":
            lg.experiment.summary.update({f"best/{k}": v for k, v in best.items() if not isinstance(v, list)})
            lg.experiment.finish()
