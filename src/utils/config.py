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


def one_line(error: BaseException) -> str:
    """A Hydra / OmegaConf error as one line: `Could not find 'backbone/r999'. Available options in 'backbone':
    mbv3, r101, ...` (their messages span lines: the options one a line, the full key after a blank line)."""
    lines = [ln.strip() for ln in str(error).strip().splitlines() if ln.strip()]
    if not lines:
        return type(error).__name__
    head, rest = lines[0], lines[1:]
    if rest and rest[0].endswith(":"):  # "Available options in 'backbone':" then one option a line
        options = [ln for ln in rest[1:] if " " not in ln]
        return f"{head.rstrip('.')}. {rest[0]} {', '.join(options)}"
    if rest and not rest[0].startswith(("full_key", "Traceback")):
        return f"{head.rstrip('.')}. {rest[0]}"
    return head


def _number(cfg: DictConfig, key: str):
    value = OmegaConf.select(cfg, key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise ConfigError(f"{key}={value!r}: expected a number")
    return value


# key: (integer?, lowest, highest, what it is); a key absent from the config is not checked, None is refused
# unless marked optional in OPTIONAL_NUMBERS
NUMBERS = {
    "seed": (True, 0, None, "the random seed"),
    "num_workers": (True, 0, None, "loader worker processes; 0 loads in the main process"),
    "trainer.max_epochs": (True, 1, None, "epochs; -1 trains until trainer.max_steps"),
    "optim.lr": (False, 0.0, None, "the base learning rate"),
    "optim.momentum": (False, 0.0, 1.0, "the SGD momentum"),
    "optim.weight_decay": (False, 0.0, None, "the weight decay"),
    "optim.lr_gamma": (False, 0.0, None, "the LR decay factor"),
    "optim.warmup_epochs": (False, 0, None, "warm-up epochs"),
    "loss.lambda_rt": (False, 0.0, None, "the ratio-loss weight"),
    "loss.lambda_rs": (False, 0.0, None, "the spatial ratio-loss weight"),
    "schedule.tau.t0": (False, 0.0, None, "the initial Gumbel temperature"),
    "schedule.tau.t1": (False, 0.0, None, "the final Gumbel temperature"),
    "schedule.tau.t_end": (False, 0, None, "the epochs of the temperature decay"),
    "dataset.crop_size": (True, 1, None, "the crop side in pixels"),
    "dataset.test_num_clips": (True, 1, None, "test clips per video"),
    "dataset.test_num_crops": (True, 1, None, "test crops per clip"),
    "dataset.max_bad_fraction": (False, 0.0, 1.0, "the fraction of unreadable videos tolerated"),
}
EXCLUSIVE_LOW = {"optim.lr", "schedule.tau.t0", "schedule.tau.t1"}  # must be > lowest, not >=


def check_number(key: str, value, integer: bool, low=None, high=None, what: str = "", low_open: bool = False):
    """Raise ConfigError `key=value: expected ...` unless value is a number (an int if `integer`) in range."""
    kind = "an integer" if integer else "a number"
    bounds = " and ".join(b for b in (None if low is None else f"{'>' if low_open else '>='} {low}",
                                      None if high is None else f"<= {high}") if b)
    expected = f"expected {kind}{' ' + bounds if bounds else ''}" + (f" ({what})" if what else "")
    ok = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        raise ConfigError(f"{key}={value!r}: {expected}")
    return value


def validate_numbers(cfg: DictConfig) -> None:
    """The numeric keys of NUMBERS that are present: type and range."""
    for key, (integer, low, high, what) in NUMBERS.items():
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        if node is None or leaf not in node or (key == "trainer.max_epochs" and node[leaf] == -1):
            continue
        check_number(key, OmegaConf.select(cfg, key), integer, low, high, what, low_open=key in EXCLUSIVE_LOW)
    steps = OmegaConf.select(cfg, "optim.lr_steps")
    if steps is not None and (not isinstance(steps, (list, ListConfig))
                              or not all(isinstance(e, int) and not isinstance(e, bool) for e in steps)):
        raise ConfigError(f"optim.lr_steps={steps!r}: expected a list of epochs, e.g. [25,45]")
    scale = OmegaConf.select(cfg, "dataset.scale_size")
    crop = OmegaConf.select(cfg, "dataset.crop_size")
    if scale is not None:
        if not isinstance(scale, (list, ListConfig)) or len(scale) != 2 or not all(
                isinstance(e, int) and not isinstance(e, bool) and e >= 1 for e in scale):
            raise ConfigError(f"dataset.scale_size={scale!r}: expected [height, width] in pixels, e.g. [240,320]")
        if isinstance(crop, int) and crop > min(scale):
            raise ConfigError(f"dataset.crop_size={crop}: larger than dataset.scale_size={list(scale)}")


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError for values no run can use: rt/rs outside (0, 1], num_segments < 1, batch_size < 1,
    a number of the wrong type or out of range (NUMBERS: seed=abc, num_workers=-1, ...), an unknown method or
    backbone (with the choices), a schedule kind that does not exist."""
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
    if not isinstance(b, int) or isinstance(b, bool) or b < 1:
        raise ConfigError(f"batch_size={b!r}: must be an integer >= 1")
    validate_numbers(cfg)
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


def honour_explicit_batch(cfg: DictConfig, overrides: list[str]) -> None:
    """A `batch_size=N` given on the command line (without `global_batch_size=`) wins over the recipe's
    global_batch_size, which would otherwise derive batch_size from it."""
    from omegaconf import open_dict

    keys = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    if "batch_size" in keys and "global_batch_size" not in keys and cfg.get("global_batch_size") is not None:
        print(f"batch_size={cfg.batch_size} given: the recipe's global_batch_size={cfg.global_batch_size} is not "
              "applied (set global_batch_size=N instead to keep a batch whatever the device count)")
        with open_dict(cfg):
            cfg.global_batch_size = None
