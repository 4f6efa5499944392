"""LightningModule for video classification: loss, metrics, optimiser. The net is a plain nn.Module."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torchmetrics.classification import MulticlassAccuracy

from src.lit.metrics import MeanAveragePrecision
from src.lit.param_groups import param_groups
from src.lit.schedules import lr_factor


def ratio_loss(masks: list[torch.Tensor], target: float) -> torch.Tensor:
    """Mean over masks of (target - mean(mask))², each mean over all N*T frames of the batch (SPEC §3)."""
    return torch.stack([(target - m.float().mean()) ** 2 for m in masks]).mean()


class VideoLitModule(LightningModule):
    """Cross-entropy + λ·ratio loss (+ λ_s·spatial ratio loss); top-1/top-5 or mAP; realised ratios and GFLOPs.

    net: a video model whose forward maps (N, T, 3, H, W) to a `VideoOutput`.
    The ratio target `rt_target` and the net's temperature are set by `ScheduleCallback` every batch.
    net_config: the keyword arguments that rebuild `net`; run_overrides: the command-line overrides of the
    run. Both are saved in checkpoints so `src.eval` can recompose the run's config.
    """

    def __init__(self, net: torch.nn.Module, num_classes: int, metric: str = "top1", optim: dict | None = None,
                 lambda_rt: float = 0.5, lambda_rs: float = 0.5, rt: float = 1.0, rs: float | None = None,
                 macs_input_size: int = 224, net_config: dict | None = None,
                 run_overrides: list[str] | None = None):
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        self.net = net
        self.optim = dict(optim or {})
        self.rt_target = 1.0
        self.rs_target = rs
        k5 = min(5, num_classes)
        self.train_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.val_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.val_top5 = MulticlassAccuracy(num_classes, top_k=k5, average="micro")
        self.val_map = MeanAveragePrecision()
        self.best = {"metric": -math.inf, "gflops": float("nan"), "epoch": -1}
        self._macs = None
        self._val_ratio_sum: torch.Tensor | None = None
        self._val_gmacs_sum = 0.0
        self._val_videos = 0

    # ---- forward -------------------------------------------------------------------------------------
    def forward(self, x: torch.Tensor):
        return self.net(x)

    def _views_forward(self, x: torch.Tensor):
        """x: (N, T, 3, H, W) or (N, V, T, 3, H, W) with V test views; returns (logits (N, K), output)."""
        if x.dim() == 6:
            n, v = x.shape[:2]
            out = self.net(x.flatten(0, 1))
            return out.logits.view(n, v, -1).mean(1), out
        out = self.net(x)
        return out.logits, out

    @property
    def uses_ratio_loss(self) -> bool:
        return bool(getattr(self.net, "uses_ratio_loss", True))

    # ---- training ------------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        x, y = batch[0], batch[1]
        logits, out = self._views_forward(x)
        ce = F.cross_entropy(logits, y)
        loss = ce
        log = {"train/ce": ce}
        if out.masks and self.uses_ratio_loss:
            r_loss = ratio_loss(out.masks, self.rt_target)
            loss = loss + self.hparams.lambda_rt * r_loss
            log["train/ratio_loss"] = r_loss
            log["train/ratio"] = torch.stack([m.detach().float().mean() for m in out.masks]).mean()
        if out.spatial_masks and self.rs_target is not None:
            s_loss = ratio_loss(out.spatial_masks, self.rs_target)
            loss = loss + self.hparams.lambda_rs * s_loss
            log["train/spatial_ratio_loss"] = s_loss
        self.train_top1(logits.detach(), y)
        log.update({"train/loss": loss, "train/top1": self.train_top1, "train/rt_target": self.rt_target})
        self.log_dict(log, on_step=True, on_epoch=True, batch_size=len(y), sync_dist=False)
        return loss

    def on_train_epoch_end(self):
        dm = getattr(self.trainer, "datamodule", None)
        if hasattr(dm, "pop_bad_samples"):
            seen, bad = dm.pop_bad_samples()
            self.log_dict({"data/samples_read": float(seen), "data/bad_samples": float(bad)})

    # ---- validation / test ---------------------------------------------------------------------------
    def macs_profile(self):
        """Analytic MAC profile of the net at the training input size (computed once)."""
        if self._macs is None:
            from src.models.flops import profile_macs

            self._macs = profile_macs(self.net, self.net.num_segments, input_size=self.hparams.macs_input_size)
        return self._macs

    def on_validation_epoch_start(self):
        self._val_ratio_sum, self._val_gmacs_sum, self._val_videos = None, 0.0, 0

    on_test_epoch_start = on_validation_epoch_start

    def _eval_step(self, batch, stage: str):
        x, y = batch[0], batch[1]
        logits, out = self._views_forward(x)
        n = len(y)
        self.val_top1(logits, y)
        self.val_top5(logits, y)
        self.val_map(logits, y)
        ratios = out.ratios()
        if ratios:
            r = torch.tensor(ratios, dtype=torch.float64)
            self._val_ratio_sum = r * n if self._val_ratio_sum is None else self._val_ratio_sum + r * n
        self._val_gmacs_sum += self.macs_profile().gmacs(ratios or 1.0, out.spatial_ratios() or None) * n
        self._val_videos += n
        self.log(f"{stage}/loss", F.cross_entropy(logits, y), batch_size=n, sync_dist=True)

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def _eval_epoch_end(self, stage: str):
        n = max(1, self._val_videos)
        top1, top5 = self.val_top1.compute() * 100, self.val_top5.compute() * 100
        metrics = {f"{stage}/top1": top1, f"{stage}/top5": top5, f"{stage}/gflops": self._val_gmacs_sum / n}
        if self.hparams.metric == "mAP":
            metrics[f"{stage}/mAP"] = self.val_map.compute()
        per_mask = None
        if self._val_ratio_sum is not None:
            per_mask = self._val_ratio_sum / n
            metrics[f"{stage}/ratio"] = float(per_mask.mean())
            metrics.update({f"{stage}/ratio_{i}": float(v) for i, v in enumerate(per_mask)})
        for m in (self.val_top1, self.val_top5, self.val_map):
            m.reset()
        if stage == "val" and not self.trainer.sanity_checking:
            value = float(metrics[f"val/{self.hparams.metric}"])
            if value > self.best["metric"]:
                self.best = {"metric": value, "gflops": float(metrics["val/gflops"]),
                             "epoch": int(self.current_epoch), "ratio": float(metrics.get("val/ratio", 1.0)),
                             "ratios": [float(v) for v in per_mask] if self._val_ratio_sum is not None else []}
            metrics.update({"best/metric": self.best["metric"], "best/gflops": self.best["gflops"],
                            "best/epoch": float(self.best["epoch"])})
        self.log_dict({k: float(v) for k, v in metrics.items()}, sync_dist=True)
        self.last_eval_metrics = {k: float(v) for k, v in metrics.items()}

    def on_validation_epoch_end(self):
        self._eval_epoch_end("val")

    def on_test_epoch_end(self):
        self._eval_epoch_end("test")

    def on_save_checkpoint(self, checkpoint):
        checkpoint["best"] = dict(self.best)
        if self.hparams.net_config is not None:
            checkpoint["suite_model"] = dict(self.hparams.net_config)

    def on_load_checkpoint(self, checkpoint):
        self.best = dict(checkpoint.get("best", self.best))

    # ---- optimisation --------------------------------------------------------------------------------
    def steps_per_epoch(self) -> int:
        """Optimiser steps per epoch (computed once per fit; the schedules are functions of it)."""
        if getattr(self, "_steps_per_epoch", None) is None:
            trainer = self.trainer
            total = trainer.estimated_stepping_batches
            if trainer.max_epochs and trainer.max_epochs > 0 and math.isfinite(total):
                self._steps_per_epoch = max(1, math.ceil(total / trainer.max_epochs))
            else:
                self._steps_per_epoch = max(1, int(trainer.num_training_batches))
        return self._steps_per_epoch

    def on_fit_start(self):
        self._steps_per_epoch = None

    def configure_optimizers(self):
        o = self.optim
        groups = param_groups(self.net, lr=o.get("lr", 0.01), weight_decay=o.get("weight_decay", 1e-4),
                              **o.get("groups", {}))
        opt = torch.optim.SGD(groups, lr=o.get("lr", 0.01), momentum=o.get("momentum", 0.9),
                              nesterov=o.get("nesterov", False))
        spe = self.steps_per_epoch()
        milestones, gamma = tuple(o.get("lr_steps", ())), o.get("lr_gamma", 0.1)
        warmup = o.get("warmup_epochs", 0)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda step: lr_factor(step, spe, milestones, gamma, warmup))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step", "frequency": 1}}
