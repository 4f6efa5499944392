"""Composing the suite's configs inside tests (no Hydra app, so `hydra:` interpolations are set by hand)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from src.runs import CONF_DIR, compose

ROOT = CONF_DIR.parent


def cli(args: list[str], cwd=ROOT, timeout=300) -> subprocess.CompletedProcess:
    """`python args...` in a subprocess (W&B off, warnings quiet), output captured as text."""
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def compose_train(overrides: list[str], output_dir: Path | None = None, config_name: str = "train"):
    """Compose conf/<config_name>.yaml with overrides, as `python -m src.train` would, with all run
    output under `output_dir` (logs, checkpoints)."""
    cfg = compose(config_name, overrides, return_hydra_config=True)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(output_dir)
            cfg.paths.log_dir = str(output_dir / "logs")
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def resolved(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)


def train_tiny_checkpoint(data_root: Path, out_dir: Path, method: str = "afnet_tsm", segments: int = 4) -> Path:
    """Train a tiny model (ResNet-18 at width 8, 32 px, 1 epoch) on the tiny built-in dataset under `data_root`;
    returns its last checkpoint (the run's overrides are saved in it, as `python -m src.train` saves them)."""
    from src.train import train
    from tests.conftest import tiny_overrides

    cfg = compose_train([*tiny_overrides(data_root), "backbone=r18", "backbone.options.width=8", f"model={method}",
                         f"num_segments={segments}", "trainer.max_epochs=1"], out_dir)
    return Path(train(cfg)["last_ckpt"])
