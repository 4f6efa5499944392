"""Composing the suite's configs inside tests (no Hydra app, so `hydra:` interpolations are set by hand)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def compose_train(overrides: list[str], output_dir: Path | None = None, config_name: str = "train"):
    """Compose conf/<config_name>.yaml with overrides, as `python -m src.train` would, with all run
    output under `output_dir` (logs, checkpoints)."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
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
