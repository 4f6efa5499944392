"""Composing the suite's configs inside tests (no Hydra app, so `hydra:` interpolations are set by hand), and a
fake training setup (tests/helpers/fakes.py) that fits in seconds: `fake_cfg`, signals at a step, final weights."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import torch
from hydra.core.hydra_config import HydraConfig
from lightning.pytorch import Callback
from omegaconf import OmegaConf, open_dict

from src.utils.runs import CONF_DIR, compose

ROOT = CONF_DIR.parent


def cli(args: list[str], cwd=ROOT, timeout=300) -> subprocess.CompletedProcess:
    """`python args...` in a subprocess (W&B off, warnings quiet), output captured as text."""
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def compose_train(overrides: list[str], output_dir: Path | None = None, config_name: str = "train",
                  log_dir: Path | None = None):
    """Compose conf/<config_name>.yaml with overrides, as `python -m src.train` would, with all run
    output under `output_dir` (logs, checkpoints) and `paths.log_dir` at `log_dir` (default output_dir/logs)."""
    cfg = compose(config_name, overrides, return_hydra_config=True)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(output_dir)
            cfg.paths.log_dir = str(log_dir or output_dir / "logs")
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def resolved(cfg) -> dict:
    return OmegaConf.to_container(cfg, resolve=True)


# A fake run: 48 random clips, batch 8 (6 steps an epoch), a one-conv net; 3 epochs fit in a few seconds.
FAKE = ["dataset._target_=tests.helpers.fakes.RandomVideoDataModule",
        "model._target_=tests.helpers.fakes.TinyMaskedNet",
        "dataset.crop_size=16", "num_segments=4", "+dataset.num_videos=48", "batch_size=8", "num_workers=0",
        "trainer=cpu", "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false", "optim.lr=0.05"]


def fake_cfg(tmp_path: Path, *extra: str, log_dir: Path | None = None):
    """The fake run's config, its folder `tmp_path/run`; later overrides win (e.g. num_workers=2)."""
    return compose_train([*FAKE, *extra], tmp_path / "run", log_dir=log_dir)


def final_state(run_dir: Path) -> tuple[dict, int]:
    """(state_dict, global_step) of a run folder's last.ckpt."""
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    return ckpt["state_dict"], ckpt["global_step"]


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


class SigtermAt(Callback):
    """Sends this process `signum` (default SIGTERM, a cluster's preemption notice) after training batch `step`,
    or, with `in_validation`, at the first validation batch after that step."""

    def __init__(self, step: int, signum: int = signal.SIGTERM, in_validation: bool = False):
        self.step, self.signum, self.in_validation, self.sent = step, signum, in_validation, False

    def _send(self, trainer):
        if not self.sent and trainer.global_step >= self.step:
            self.sent = True
            os.kill(os.getpid(), self.signum)

    def on_train_batch_end(self, trainer, *args):
        if not self.in_validation:
            self._send(trainer)

    def on_validation_batch_start(self, trainer, *args):
        if self.in_validation and not trainer.sanity_checking:
            self._send(trainer)


def train_tiny_checkpoint(data_root: Path, out_dir: Path, method: str = "afnet_tsm", segments: int = 4) -> Path:
    """Train a tiny model (ResNet-18 at width 8, 32 px, 1 epoch) on the tiny built-in dataset under `data_root`;
    returns its last checkpoint (the run's overrides are saved in it, as `python -m src.train` saves them)."""
    from src.train import train

    cfg = compose_train([*tiny_overrides(data_root), "backbone=r18", "backbone.options.width=8", f"model={method}",
                         f"num_segments={segments}", "trainer.max_epochs=1"], out_dir)
    return Path(train(cfg)["last_ckpt"])


def randomise(model, seed: int = 0):
    """Non-trivial BN statistics and navigation biases that select some frames and skip others; returns model."""
    import torch

    g = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            for t, lo, hi in ((mod.running_mean, -1, 1), (mod.running_var, 0.5, 2), (mod.weight.data, 0.5, 1.5),
                              (mod.bias.data, -0.5, 0.5)):
                t.copy_(torch.rand(t.shape, generator=g) * (hi - lo) + lo)
    for nav in model.modules():
        if type(nav).__name__ == "Navigation":
            nav.temporal.bias.data.copy_(torch.randn(nav.temporal.bias.shape, generator=g) * 3)
    return model


TINY_SYNTHETIC = dict(seed=3, train_per_class=3, val_per_class=1, size=32, min_frames=6, max_frames=14)


def tiny_overrides(data_root) -> list[str]:
    """Overrides that point the default config at `tiny_data_root` with tiny sizes, on the CPU (the default lane's
    bit-exact checks hold there; the GPU lane chooses its trainer itself)."""
    gen = [f"dataset.generate.{k}={v}" for k, v in TINY_SYNTHETIC.items()]
    return [f"data_root={data_root}", "dataset.scale_size=[32,32]", "dataset.crop_size=32", "batch_size=4",
            "num_workers=0", "trainer=cpu", "trainer.enable_progress_bar=false", *gen]


def tiny_backbone(backbone: str) -> list[str]:
    """Select a backbone at a tiny width (fast enough for CPU smoke tests)."""
    size = "backbone.options.width_mult=0.25" if backbone == "mbv3" else "backbone.options.width=8"
    return [f"backbone={backbone}", size]
