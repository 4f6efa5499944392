"""What every entry point shares: compose a config of conf/, build its net, and load a run from a checkpoint.

`compose("train", overrides)` is `python -m src.train overrides --cfg job` as a DictConfig; `net_config(cfg, K)`
the keyword arguments that rebuild the net (saved in checkpoints as `suite_model`); `build_net` instantiates
them; `load_run(path)` recomposes a checkpoint's run and returns it with its weights loaded;
`newest_checkpoint()` finds the checkpoint of the newest run of the default config (what `make train` made).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"


def compose(config_name: str, overrides: list[str] = (), return_hydra_config: bool = False) -> DictConfig:
    """conf/<config_name>.yaml composed with `overrides`, outside any Hydra app."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name, overrides=list(overrides), return_hydra_config=return_hydra_config)


def net_config(cfg: DictConfig, num_classes: int) -> dict:
    """The model config with backbone and class count filled in: `build_net` instantiates it, and it is
    saved in checkpoints (`suite_model`) so `src.eval` can rebuild the net."""
    model = OmegaConf.to_container(cfg.model, resolve=True)
    return {**model, "backbone": cfg.backbone.name, "num_classes": num_classes,
            **OmegaConf.to_container(cfg.backbone.options, resolve=True)}


def build_net(config: dict):
    """Instantiate a net from `net_config` (default target: `src.models.build_video_model`)."""
    from hydra.utils import instantiate

    config = dict(config)
    config.setdefault("_target_", "src.models.build_video_model")
    return instantiate(config, _convert_="all")


# net_config keys that shape the state dict: a checkpoint's weights fit only a net built with its values
ARCH_KEYS = ("method", "backbone", "width", "width_mult", "num_classes", "num_segments", "fusion", "nav_mix_frames",
             "rs")


def datasets_with(num_classes: int) -> list[str]:
    """The conf/dataset names with `num_classes` classes."""
    return sorted(p.stem for p in (CONF_DIR / "dataset").glob("*.yaml")
                  if OmegaConf.load(p).get("num_classes") == num_classes)


def record_overrides(recorded: dict) -> list[str]:
    """The overrides that rebuild a converted checkpoint's net from its `suite_model` record."""
    out = [f"model={recorded['method']}", f"backbone={recorded['backbone']}",
           f"num_segments={recorded['num_segments']}"]
    out += [f"backbone.options.{k}={recorded[k]}" for k in ("width", "width_mult") if k in recorded]
    if "mask_mode" in recorded and str(recorded["method"]).startswith("afnet"):
        out.append(f"model.mask_mode={recorded['mask_mode']}")
    return out


def check_record(cfg: DictConfig, recorded: dict, where: str) -> None:
    """One-line SystemExit when the net `cfg` builds differs from the checkpoint's record in a key that shapes
    its weights (`ARCH_KEYS`; the clip length only for AFNet, whose navigation is per frame)."""
    built = net_config(cfg, num_classes=cfg.dataset.num_classes)
    for key in ARCH_KEYS:
        if key not in recorded or (key == "num_segments" and not str(recorded.get("method")).startswith("afnet")):
            continue
        want, got = recorded[key], built.get(key)
        if key == "rs":  # only whether the spatial heads exist matters to the weights
            want, got = want is not None, got is not None
        if want != got:
            hint = ""
            if key == "num_classes":
                fits = " or ".join(f"dataset={d}" for d in datasets_with(want)) or "a dataset with that many classes"
                hint = f" (dataset={cfg.dataset.name} has {got} classes; evaluate on {fits})"
            raise SystemExit(f"{where} records {key}={want!r}, but the command line builds {key}={got!r}{hint}")


def compose_run_config(ckpt: dict, user_overrides: list[str] = (), where: str = "the checkpoint") -> DictConfig:
    """The training config of checkpoint `ckpt` (a loaded dict): the run's saved command-line overrides, or for a
    converted checkpoint its `suite_model` record (and its `suite_dataset`), then `user_overrides` on top.
    The net it builds must be the recorded one (`check_record`), or a one-line SystemExit names both values."""
    recorded = dict(ckpt.get("suite_model") or {})
    saved = (ckpt.get("hyper_parameters") or {}).get("run_overrides")
    if saved is None and recorded:  # a converted checkpoint: no training run behind it
        saved = record_overrides(recorded)
    saved = list(saved or [])
    if ckpt.get("suite_dataset") and not any(o.startswith("dataset=") for o in saved):
        saved.append(f"dataset={ckpt['suite_dataset']}")
    # an empty list is a run with no overrides (the quick start): the defaults rebuild it, backbone width included
    cfg = compose("train", saved + list(user_overrides))
    check_record(cfg, recorded, where)
    return cfg


def load_run(path: str | Path, overrides: list[str] = ()):
    """The run's config (recomposed from the checkpoint plus `overrides`) and its net with the checkpoint's
    weights: (cfg, net). The net is in training mode, as built; call .eval() for evaluation masks.
    Any file that is not a checkpoint of this suite, or does not fit its recorded net, is a one-line SystemExit."""
    from src.models.checkpoints import CheckpointError, detect_format, read_checkpoint, unwrap_state

    where = f"ckpt_path={path}"
    try:
        ckpt = read_checkpoint(path)
        fmt = detect_format(unwrap_state(ckpt, where))
    except CheckpointError as e:
        raise SystemExit(str(e) if str(e).startswith(str(path)) else f"{where}: {e}") from None
    if fmt != "suite" or not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise SystemExit(f"{where}: a checkpoint in the {fmt} format, not this suite's: convert it first with "
                         f"`python -m src.convert_checkpoint to-suite {path} OUT.ckpt ...`")
    cfg = compose_run_config(ckpt, list(overrides), where)
    net = build_net(net_config(cfg, num_classes=cfg.dataset.num_classes))
    state = {k[len("net."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    own = net.state_dict()
    missing, unexpected = own.keys() - state.keys(), state.keys() - own.keys()
    misfit = [k for k in state.keys() & own.keys() if state[k].shape != own[k].shape]
    if missing or unexpected or misfit:
        first = sorted(missing)[:1] + sorted(unexpected)[:1] + sorted(misfit)[:1]
        raise SystemExit(f"{where}: its weights do not fit the net this command builds ({len(missing)} missing, "
                         f"{len(unexpected)} unexpected, {len(misfit)} of another shape, e.g. {', '.join(first)})")
    net.load_state_dict(state, strict=True)
    return cfg, net


def newest_checkpoint(log_dir: str | Path = "logs", overrides: list[str] = ()) -> Path:
    """The best (else last) checkpoint of the newest run folder of `python -m src.train overrides` under
    `log_dir`/runs/<run name>/; FileNotFoundError naming the folder when there is none."""
    folder = Path(log_dir) / "runs" / compose("train", list(overrides)).run_name
    for run in sorted(folder.glob("seed*_*"), key=lambda p: p.stat().st_mtime, reverse=True):
        found = sorted(run.glob("checkpoints/best-*.ckpt")) or sorted(run.glob("checkpoints/last.ckpt"))
        if found:
            return found[-1]
    raise FileNotFoundError(f"ckpt_path=newest: no checkpoint under {folder}/seed*_*/checkpoints; train one "
                            "first (`make train`) or pass ckpt_path=PATH")


def checkpoint_arg(arg: str) -> Path:
    """A `ckpt_path=` argument of the entry points: a path, or `newest` (`newest_checkpoint()`)."""
    return newest_checkpoint() if arg == "newest" else Path(arg)
