"""Train a video model: `python -m src.train [dataset=...] [backbone=...] [model=...] [rt=...] ...`.

Composes conf/train.yaml, checks it (ConfigError names the key), builds the DataModule and the net
explicitly, wraps the net in the LightningModule, fits, and prints the final metrics and where
everything went.
"""

from __future__ import annotations

import glob
import json
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from src.config import ConfigError, apply_global_batch, validate
from src.runs import build_net, net_config


def resolve_ckpt_path(cfg: DictConfig, output_dir: Path) -> str | None:
    """`last`: this run folder's last.ckpt, else the newest last.ckpt of earlier runs with the same run
    name and seed; a path must exist. Returns None for a fresh start."""
    ckpt = cfg.get("ckpt_path")
    own = output_dir / "checkpoints" / "last.ckpt"
    if ckpt in (None, ""):
        # an interrupted job of a re-launched sweep continues where it stopped
        return str(own) if own.is_file() else None
    if ckpt != "last":
        if not Path(ckpt).is_file():
            raise ConfigError(f"ckpt_path={ckpt}: no such checkpoint file")
        return str(ckpt)
    if own.is_file():
        return str(own)
    pattern = os.path.join(cfg.paths.log_dir, "runs", cfg.run_name, f"seed{cfg.seed}_*", "checkpoints", "last.ckpt")
    found = sorted(glob.glob(pattern), key=os.path.getmtime)
    if found:
        return found[-1]
    print(f"ckpt_path=last: no last.ckpt under {output_dir} or {pattern}; starting from scratch")
    return None


def run_overrides() -> list[str]:
    """This run's command-line overrides (empty outside a Hydra app, e.g. in compose-based tests)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


# W&B summary aggregates over the run, beside the last value: the best epoch of each validation metric (W&B keeps
# only the last by default). finish_wandb adds best/{metric,gflops,epoch,ratio}: the best epoch and its cost.
WANDB_SUMMARIES = {"val/top1": "max,last", "val/top5": "max,last", "val/mAP": "max,last", "val/loss": "min,last"}


def define_wandb_summaries(loggers: list) -> None:
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger":
            for key, summary in WANDB_SUMMARIES.items():
                # the x-axis Lightning gives every key (its "*" definition), kept for these explicitly
                lg.experiment.define_metric(key, step_metric="trainer/global_step", step_sync=True, summary=summary)


def build_loggers(cfg: DictConfig) -> list:
    from hydra.utils import instantiate

    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values()]
    define_wandb_summaries(loggers)
    for lg in loggers:
        if hasattr(lg, "log_hyperparams"):
            lg.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return loggers


def train(cfg: DictConfig, callbacks: list | None = None) -> dict:
    """Fit per `cfg` (plus any extra Lightning `callbacks`); returns the final metrics and paths."""
    apply_global_batch(cfg)
    validate(cfg)
    import lightning.pytorch as pl
    from hydra.utils import instantiate

    from src.lit.trainer import build_trainer, resolve_device
    from src.lit.video_module import VideoLitModule

    resolve_device(cfg.trainer.get("accelerator"), cfg.trainer.get("precision"))  # a bad device fails before any work

    output_dir = Path(cfg.paths.output_dir)
    if (output_dir / "DONE").is_file() and (output_dir / "summary.json").is_file():
        # a re-launched sweep: this job finished before (its folder is named from its overrides)
        summary = json.loads((output_dir / "summary.json").read_text())
        print(f"{output_dir}: finished earlier, skipping (delete its DONE file to train again)")
        return {"metrics": summary.get("final", {}), "best": summary.get("best", {}), "skipped": True,
                "chance": 100.0 / cfg.dataset.num_classes, "output_dir": str(output_dir)}
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.dataset)
    datamodule.check_paths()
    ckpt_path = resolve_ckpt_path(cfg, output_dir)

    kwargs = net_config(cfg, num_classes=cfg.dataset.num_classes)
    net = build_net(kwargs)
    if cfg.get("pretrained"):
        from src.models.checkpoints import load_pretrained

        load_pretrained(net, cfg.pretrained)
    module = VideoLitModule(
        net, num_classes=cfg.dataset.num_classes, metric=cfg.dataset.get("metric", "top1"),
        optim=OmegaConf.to_container(cfg.optim, resolve=True), lambda_rt=cfg.loss.lambda_rt,
        lambda_rs=cfg.loss.lambda_rs, rt=cfg.rt, rs=cfg.rs,
        rt_warmup=OmegaConf.to_container(cfg.schedule.rt_warmup, resolve=True),
        tau_schedule=OmegaConf.to_container(cfg.schedule.tau, resolve=True), macs_input_size=cfg.dataset.crop_size,
        net_config=kwargs, run_overrides=run_overrides())
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()] + list(callbacks or [])
    trainer = build_trainer(cfg.trainer, callbacks=callbacks, logger=build_loggers(cfg) or False)
    trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    finish_wandb(trainer.loggers, module.best)
    ckpt_cb = trainer.checkpoint_callback
    result = {
        "metrics": metrics,
        "best": dict(module.best),
        "chance": 100.0 / cfg.dataset.num_classes,
        "output_dir": str(output_dir),
        "best_ckpt": getattr(ckpt_cb, "best_model_path", "") if ckpt_cb else "",
        "last_ckpt": str(last) if (last := output_dir / "checkpoints" / "last.ckpt").is_file() else "",
    }
    if trainer.is_global_zero:
        print_summary(cfg, result)
    return result


def finish_wandb(loggers: list, best: dict) -> None:
    """Close W&B runs with the best epoch's metric and GFLOPs in their summary (as the paper reports them);
    an offline run is then complete on disk for `wandb sync`."""
    for lg in loggers:
        if type(lg).__name__ == "WandbLogger":
            lg.experiment.summary.update({f"best/{k}": v for k, v in best.items() if not isinstance(v, list)})
            lg.experiment.finish()


def print_summary(cfg: DictConfig, result: dict) -> None:
    m, metric = result["metrics"], cfg.dataset.get("metric", "top1")
    rows = [
        ("run", cfg.run_name),
        (f"final val {metric}", f"{m.get(f'val/{metric}', float('nan')):.2f}%"),
        ("chance level", f"{result['chance']:.2f}%"),
        (f"best val {metric}", f"{result['best']['metric']:.2f}% (epoch {result['best']['epoch']})"),
    ]
    if "val/ratio" in m:
        rows.append(("realised ratio", f"{m['val/ratio']:.3f} (target {cfg.rt})"))
    if "val/gflops" in m:
        rows.append(("GFLOPs per video", f"{m['val/gflops']:.4f} (MACs at {cfg.dataset.crop_size}px input)"))
    rows += [("logs", result["output_dir"]), ("best checkpoint", result["best_ckpt"] or "-"),
             ("last checkpoint", result["last_ckpt"] or "-")]
    width = max(len(k) for k, _ in rows)
    print("\n" + "\n".join(f"{k:<{width}} : {v}" for k, v in rows), flush=True)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from src.data import DataConfigError, ListFormatError

    try:
        result = train(cfg)
    except (ConfigError, DataConfigError, ListFormatError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    return result["metrics"].get(f"val/{cfg.dataset.get('metric', 'top1')}")


if __name__ == "__main__":
    main()
