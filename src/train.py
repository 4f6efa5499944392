"""Train a video model: `python -m src.train [dataset=...] [backbone=...] [model=...] [rt=...] ...`.

Composes conf/train.yaml, checks it (ConfigError names the key), builds the DataModule and the net
explicitly, wraps the net in the LightningModule, fits, and prints the final metrics and where
everything went.

Run folders, `ckpt_path=last` and sweeps: src/utils/run_folder.py. Exit status: 0 finished (or finished earlier and
skipped), 2 a config / data / resumption error (one line on stderr, `FAILED` in the run folder), 75 stopped by
SIGINT / SIGTERM after saving a resumable checkpoint (src/callbacks/preemption.py), 1 a sweep with failed jobs.
In a `--multirun`, a failing job is recorded as failed and the sweep goes on.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from src.utils.config import ConfigError, apply_global_batch, honour_explicit_batch, validate
from src.utils.run_folder import AlreadyFinished, check_folder, is_done, mark_failed, resolve_ckpt_path, run_identity
from src.utils.runs import build_net, net_config


def run_overrides() -> list[str]:
    """This run's command-line overrides (empty outside a Hydra app, e.g. in compose-based tests)."""
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []


def skipped_result(cfg: DictConfig, folder: Path, why: str) -> dict:
    summary = json.loads((folder / "summary.json").read_text()) if (folder / "summary.json").is_file() else {}
    print(f"{folder}: {why}", flush=True)
    return {"metrics": summary.get("final", {}), "best": summary.get("best", {}), "skipped": True,
            "chance": 100.0 / cfg.dataset.num_classes, "output_dir": str(folder)}


def resume_hint() -> str:
    """How to continue this run: the same command with ckpt_path=last (a sweep: the same command again)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return "re-launch the same --multirun command (finished jobs are skipped, stopped ones resume)"
    args = [a for a in run_overrides() if not a.startswith("ckpt_path=")]
    return "python -m src.train " + " ".join([*args, "ckpt_path=last"])


def warn_if_not_pretrained(cfg: DictConfig, resuming: bool) -> None:
    """The paper's recipes fine-tune from an ImageNet-pretrained backbone: say so when a real video dataset
    trains from random weights (not for the built-in dataset, ImageNet pretraining itself, or a resumed run)."""
    built_in = cfg.dataset.get("generate") is not None
    if cfg.get("pretrained") or resuming or built_in or cfg.dataset.name == "imagenet":
        return
    print(f"warning: pretrained=null: {cfg.dataset.name} trains from random weights, while its recipe assumes an "
          f"ImageNet-pretrained {cfg.backbone.name} backbone; set pretrained=PATH (e.g. "
          f"pretrained=${{paths.pretrained_dir}}/af_{cfg.backbone.name}_imagenet.pth, from "
          "`experiment=pretrain_imagenet` or `python -m src.convert_checkpoint`)", file=sys.stderr, flush=True)


def train(cfg: DictConfig, callbacks: list | None = None) -> dict:
    """Fit per `cfg` (plus any extra Lightning `callbacks`); returns the final metrics and paths.

    Raises ConfigError / DataConfigError for a run that cannot start or trained no step, SystemExit(75) after a
    stop signal (a checkpoint saved)."""
    honour_explicit_batch(cfg, run_overrides())
    identity = run_identity(cfg)  # as composed: before the per-device batch is derived
    apply_global_batch(cfg)
    validate(cfg)
    import lightning.pytorch as pl
    from hydra.utils import instantiate
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    from src.callbacks import PreemptionCheckpoint, RunRecord
    from src.utils.loggers import build_loggers, check_logger_packages, finish_wandb

    check_logger_packages(cfg)
    from src.callbacks.preemption import PREEMPTED_EXIT
    from src.lit.trainer import build_trainer, resolve_device
    from src.lit.video_module import VideoLitModule

    resolve_device(cfg.trainer.get("accelerator"), cfg.trainer.get("precision"))  # a bad device fails before any work

    output_dir = Path(cfg.paths.output_dir)
    check_folder(output_dir, identity)
    if is_done(output_dir) and (output_dir / "summary.json").is_file():
        # a re-launched sweep: this job finished before with the same configuration (its folder names it)
        return skipped_result(cfg, output_dir, "finished earlier, skipping (delete its DONE file to train again)")
    try:
        ckpt_path = resolve_ckpt_path(cfg, output_dir, identity)
    except AlreadyFinished as done:
        return skipped_result(cfg, done.args[0], "this configuration finished there; nothing to resume "
                                                 "(drop ckpt_path to train a new run)")
    if cfg.get("pretrained") and not Path(str(cfg.pretrained)).is_file():
        raise ConfigError(f"pretrained={cfg.pretrained}: no such file (an ImageNet AF backbone or a converted "
                          "official checkpoint)")
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.dataset)
    datamodule.check_paths()
    warn_if_not_pretrained(cfg, resuming=ckpt_path is not None)

    kwargs = net_config(cfg, num_classes=cfg.dataset.num_classes)
    net = build_net(kwargs)
    if cfg.get("pretrained"):
        from src.models.checkpoints import CheckpointError, PretrainedError, load_pretrained

        try:
            load_pretrained(net, cfg.pretrained, strict=cfg.get("pretrained_strict", True))
        except (CheckpointError, PretrainedError) as e:
            raise ConfigError(f"pretrained: {e}") from None
    module = VideoLitModule(
        net, num_classes=cfg.dataset.num_classes, metric=cfg.dataset.get("metric", "top1"),
        optim=OmegaConf.to_container(cfg.optim, resolve=True), lambda_rt=cfg.loss.lambda_rt,
        lambda_rs=cfg.loss.lambda_rs, rt=cfg.rt, rs=cfg.rs,
        rt_warmup=OmegaConf.to_container(cfg.schedule.rt_warmup, resolve=True),
        tau_schedule=OmegaConf.to_container(cfg.schedule.tau, resolve=True), macs_input_size=cfg.dataset.crop_size,
        net_config=kwargs, run_overrides=run_overrides())
    if ckpt_path is not None:  # continuing in a folder that has checkpoints is the point of a resumption
        warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values()] + list(callbacks or [])
    callbacks.append(RunRecord(output_dir, identity))
    trainer = build_trainer(cfg.trainer, callbacks=callbacks, logger=build_loggers(cfg) or False)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
    except SIGTERMException:
        stop = next((c for c in callbacks if isinstance(c, PreemptionCheckpoint)), None)
        if trainer.is_global_zero:
            if stop is not None and stop.saved is not None:
                print(f"stopped by {stop.stopped_by} at step {stop.step}: saved {stop.saved}; resume with: "
                      f"{resume_hint()}", flush=True)
            else:
                print("stopped by a signal; no checkpoint saved (callbacks.preemption is off)", flush=True)
        raise SystemExit(PREEMPTED_EXIT) from None
    if trainer.global_step == 0:
        raise ConfigError(f"no training step ran (trainer.limit_train_batches={trainer.limit_train_batches}, "
                          f"{trainer.num_training_batches} batches per epoch); nothing was trained")

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


def known_errors() -> tuple[type, ...]:
    """Errors whose message says it all (one line, no traceback): the config's, and the data's when src.data is
    loaded (it always is when one of its errors was raised; importing it costs seconds)."""
    data = sys.modules.get("src.data")
    return (ConfigError,) + ((data.DataConfigError, data.ListFormatError) if data is not None else ())


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    """One run, or one job of a sweep. A known error (config, data, resumption) is one line on stderr and
    `FAILED` in the run folder; in a sweep any error is, and the sweep goes on with its next job."""
    import traceback

    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hc = HydraConfig.get()
    folder = Path(hc.runtime.output_dir)
    sweep = hc.mode == RunMode.MULTIRUN
    try:
        result = train(cfg)
    except KeyboardInterrupt:
        print("interrupted before training started; nothing to save", file=sys.stderr, flush=True)
        sys.exit(130)
    except Exception as e:
        known = isinstance(e, known_errors())
        mark_failed(folder, f"{type(e).__name__}: {e}" + ("" if known else f"\n\n{traceback.format_exc()}"))
        if not (known or sweep):
            raise
        where = f" (job {folder}{'' if known else '; traceback in its FAILED file'})" if sweep else ""
        print(f"error: {e if known else f'{type(e).__name__}: {e}'}{where}", file=sys.stderr, flush=True)
        if sweep:
            return None
        sys.exit(2)
    return result["metrics"].get(f"val/{cfg.dataset.get('metric', 'top1')}")


if __name__ == "__main__":
    main()
