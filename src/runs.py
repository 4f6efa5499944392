"""What every entry point shares: compose a config of conf/, build its net, and load a run from a checkpoint.

`compose("train", overrides)` is `python -m src.train overrides --cfg job` as a DictConfig; `net_config(cfg, K)`
the keyword arguments that rebuild the net (saved in checkpoints as `suite_model`); `build_net` instantiates
them; `load_run(path)` recomposes a checkpoint's run and returns it with its weights loaded;
`newest_checkpoint()` finds the checkpoint of the newest run of the default config (what `make train` made).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


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


def compose_run_config(ckpt: dict, user_overrides: list[str] = ()) -> DictConfig:
    """The training config of checkpoint `ckpt` (a loaded dict): the run's saved command-line overrides, or for a
    converted official checkpoint its `suite_model` entry, then `user_overrides` on top."""
    saved = (ckpt.get("hyper_parameters") or {}).get("run_overrides")
    if saved is None and "suite_model" in ckpt:  # a converted official checkpoint: no training run behind it
        m = ckpt["suite_model"]
        saved = [f"model={m['method']}", f"backbone={m['backbone']}", f"num_segments={m['num_segments']}"]
        saved += [f"backbone.options.{k}={m[k]}" for k in ("width", "width_mult") if k in m]
        if "mask_mode" in m and str(m["method"]).startswith("afnet"):
            saved.append(f"model.mask_mode={m['mask_mode']}")
    # an empty list is a run with no overrides (the quick start): the defaults rebuild it, backbone width included
    return compose("train", list(saved or []) + list(user_overrides))


def load_run(path: str | Path, overrides: list[str] = ()):
    """The run's config (recomposed from the checkpoint plus `overrides`) and its net with the checkpoint's
    weights: (cfg, net). The net is in training mode, as built; call .eval() for evaluation masks."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"ckpt_path={path}: no such file")
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    cfg = compose_run_config(ckpt, list(overrides))
    net = build_net(net_config(cfg, num_classes=cfg.dataset.num_classes))
    state = {k[len("net."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
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
