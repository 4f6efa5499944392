"""Checks of a composed config that must fail before any compute, with the offending key named."""

from __future__ import annotations

import hashlib

from omegaconf import DictConfig, ListConfig, OmegaConf


def short_dirname(text: str, limit: int = 120) -> str:
    """A sweep job's folder name from its overrides, cut to `limit` characters with a hash of the whole when
    longer (file systems refuse names over 255 bytes; the full overrides are in the job's .hydra/)."""
    text = str(text).replace("/", "_")
    if len(text) <= limit:
        return text
    return f"{text[: limit - 11]}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def run_tags(dataset: str, backbone: str, method: str, rt, rs=None, row_id=None, extra=()) -> list[str]:
    """A run's W&B tags: `dataset:<name>`, `backbone:<name>`, `method:<method>`, `rt:<rt>` (every run, as in the
    run name; TSN/TSM ignore rt), `rs:<rs>` when set, `row:<table>/<row>` for a paper-table row, then `extra`
    (the sweep's `tags`), duplicates dropped. Tags let the W&B UI filter and colour runs by any of these keys."""
    tags = [f"dataset:{dataset}", f"backbone:{backbone}", f"method:{method}", f"rt:{rt}"]
    if rs is not None:
        tags.append(f"rs:{rs}")
    if row_id is not None:
        tags.append(f"row:{row_id}")
    tags += [str(t) for t in extra or ()]
    return list(dict.fromkeys(tags))


OmegaConf.register_new_resolver("dirname", short_dirname, replace=True)
# conf/logger/wandb.yaml; a ListConfig because OmegaConf.resolve (`--cfg job --resolve`) rejects a plain list there
OmegaConf.register_new_resolver("run_tags", lambda *args: ListConfig(run_tags(*args)), replace=True)


class ConfigError(ValueError):
    """A config value that cannot run; the message starts with the key."""


def _number(cfg: DictConfig, key: str):
    from omegaconf import OmegaConf

    value = OmegaConf.select(cfg, key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ConfigError(f"{key}={value!r}: expected a number")
    return value


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError for values no run can use: rt/rs outside (0, 1], num_segments < 1, batch_size < 1,
    an unknown method or backbone (with the choices), a schedule kind that does not exist."""
    from src.lit.schedules import TAU_KINDS
    from src.models.factory import BACKBONES, METHODS

    rt = _number(cfg, "rt")
    if rt is None or not 0.0 < rt <= 1.0:
        raise ConfigError(f"rt={rt}: the target selection ratio must be in (0, 1]")
    rs = _number(cfg, "rs")
    if rs is not None and not 0.0 < rs <= 1.0:
        raise ConfigError(f"rs={rs}: the spatial ratio must be in (0, 1], or null to switch spatial masks off")
    t = cfg.get("num_segments")
    if not isinstance(t, int) or isinstance(t, bool) or t < 1:
        raise ConfigError(f"num_segments={t!r}: must be an integer >= 1")
    b = cfg.get("batch_size")
    if not isinstance(b, int) or b < 1:
        raise ConfigError(f"batch_size={b!r}: must be an integer >= 1")
    if cfg.model.method not in METHODS:
        raise ConfigError(f"model.method={cfg.model.method!r}: choose one of {', '.join(METHODS)}")
    if cfg.backbone.name not in BACKBONES:
        raise ConfigError(f"backbone.name={cfg.backbone.name!r}: choose one of {', '.join(BACKBONES)}")
    kind = cfg.schedule.tau.kind
    if kind not in TAU_KINDS:
        raise ConfigError(f"schedule.tau.kind={kind!r}: choose one of {', '.join(TAU_KINDS)}")
    if cfg.dataset.get("metric", "top1") not in ("top1", "mAP"):
        raise ConfigError(f"dataset.metric={cfg.dataset.metric!r}: choose top1 or mAP")


def world_size(cfg: DictConfig) -> int:
    """Processes the trainer will run: devices x num_nodes (devices as an int, a list of ids, or 'auto' = 1)."""
    devices = cfg.trainer.get("devices", 1)
    if isinstance(devices, str):
        devices = int(devices) if devices.isdigit() else 1
    elif not isinstance(devices, int):
        devices = len(devices)
    return max(1, devices) * max(1, int(cfg.trainer.get("num_nodes", 1) or 1))


def accumulation(cfg: DictConfig) -> int:
    """Batches per optimiser step (`trainer.accumulate_grad_batches`, 1 when absent)."""
    n = cfg.trainer.get("accumulate_grad_batches", 1)
    if n is None:
        return 1
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"trainer.accumulate_grad_batches={n!r}: must be an integer >= 1")
    return n


def apply_global_batch(cfg: DictConfig) -> None:
    """If `global_batch_size` is set, make `batch_size` (per device and forward pass) = global / (world size x
    trainer.accumulate_grad_batches), so a recipe's batch per optimiser step is the same on 1 GPU, 2 GPUs,
    4 nodes or with gradient accumulation."""
    from omegaconf import open_dict

    total = cfg.get("global_batch_size")
    if total is None:
        return
    world, accumulate = world_size(cfg), accumulation(cfg)
    parts = world * accumulate
    if not isinstance(total, int) or total < parts or total % parts:
        raise ConfigError(f"global_batch_size={total}: must be a positive multiple of devices x num_nodes x "
                          f"trainer.accumulate_grad_batches = {world} x {accumulate}")
    with open_dict(cfg):
        cfg.batch_size = total // parts
