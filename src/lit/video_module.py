"""LightningModule for video classification: loss, metrics, optimiser, and the schedules of τ and the ratio target.

The net is a plain nn.Module. Everything a training or validation step computes stays on the device (ratios and
GMACs are summed there and read once per epoch); the ratio losses are computed in float32 whatever the autocast
precision.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.trainer.states import TrainerFn
from torchmetrics.classification import MulticlassAccuracy

from src.lit.metrics import MaskRatios, MeanAveragePrecision, mask_ratios
from src.lit.param_groups import param_groups
from src.lit.schedules import lr_factor, rt_target, temperature


def ratio_loss(ratios: torch.Tensor, target: float) -> torch.Tensor:
    """Mean over masks of (target - ratio)²; ratios: (M,) float32 from `mask_ratios` (each mask's mean over all
    N*T frames of the batch), so the loss is float32 under any autocast precision."""
    return ((target - ratios) ** 2).mean()


class VideoLitModule(LightningModule):
    """Cross-entropy + λ·ratio loss (+ λ_s·spatial ratio loss); top-1/top-5 or mAP; realised ratios and GFLOPs.

    net: a video model whose forward maps (N, T, 3, H, W) to a `VideoOutput`.
    rt: the target temporal ratio RT; rt_warmup: {enabled, begin, end} of `schedules.rt_target` (None: RT from
    the first step); rs: the spatial ratio target (None: no spatial loss); tau_schedule: {kind, t0, t1, t_end} of
    `schedules.temperature` (None: the net's temperature is left as it is). Before every training batch the
    module sets `rt_target` = RT_e and the net's temperature τ from (global_step, current_epoch) alone, so a run
    resumed mid-epoch sees exactly the values an uninterrupted run sees, with or without callbacks.
    net_config: the keyword arguments that rebuild `net`; run_overrides: the command-line overrides of the
    run. Both are saved in checkpoints so `src.eval` can recompose the run's config.
    """

    def __init__(self, net: torch.nn.Module, num_classes: int, metric: str = "top1", optim: dict | None = None,
                 lambda_rt: float = 0.5, lambda_rs: float = 0.5, rt: float = 1.0, rs: float | None = None,
                 rt_warmup: dict | None = None, tau_schedule: dict | None = None, macs_input_size: int = 224,
                 net_config: dict | None = None, run_overrides: list[str] | None = None):
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        self.net = net
        self.optim = dict(optim or {})
        self.rt_warmup = dict(rt_warmup or {"enabled": False})
        self.tau_schedule = dict(tau_schedule) if tau_schedule else None
        self.rt_target = rt_target(0, rt, **self.rt_warmup)
        k5 = min(5, num_classes)
        self.train_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro", validate_args=False)
        self.val_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro", validate_args=False)
        self.val_top5 = MulticlassAccuracy(num_classes, top_k=k5, average="micro", validate_args=False)
        self.val_map = MeanAveragePrecision()
        self.val_ratios = MaskRatios()
        self.best = {"metric": -math.inf, "gflops": float("nan"), "epoch": -1}
        self._macs = None

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
    def schedule_values(self, global_step: int, epoch: int) -> tuple[float | None, float]:
        """(τ, RT_e) at optimiser step `global_step` of 0-based `epoch`; τ is None without a `tau_schedule`."""
        rt_e = rt_target(epoch, self.hparams.rt, **self.rt_warmup)
        if self.tau_schedule is None:
            return None, rt_e
        return temperature(global_step, self.steps_per_epoch(), **self.tau_schedule), rt_e

    def on_train_batch_start(self, batch, batch_idx):
        tau, self.rt_target = self.schedule_values(self.global_step, self.current_epoch)
        log = {"schedule/rt_target": self.rt_target}
        if tau is not None:
            self.net.set_temperature(tau)
            log["schedule/tau"] = tau
        # device scalars made by a fill kernel: a Python float would be copied to the GPU with a host sync
        self.log_dict({k: torch.full((), v, device=self.device) for k, v in log.items()}, on_step=True,
                      on_epoch=False)

    def training_step(self, batch, batch_idx):
        x, y = batch[0], batch[1]
        logits, out = self._views_forward(x)
        ce = F.cross_entropy(logits, y)
        loss = ce
        log = {"train/ce": ce}
        if out.masks and self.uses_ratio_loss:
            ratios = mask_ratios(out.masks)
            r_loss = ratio_loss(ratios, self.rt_target)
            loss = loss + self.hparams.lambda_rt * r_loss
            log["train/ratio_loss"] = r_loss
            log["train/ratio"] = ratios.detach().mean()
        if out.spatial_masks and self.hparams.rs is not None:
            s_loss = ratio_loss(mask_ratios(out.spatial_masks), self.hparams.rs)
            loss = loss + self.hparams.lambda_rs * s_loss
            log["train/spatial_ratio_loss"] = s_loss
        self.train_top1(logits.detach(), y)
        log.update({"train/loss": loss, "train/top1": self.train_top1})
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
            from src.models.macs import profile_macs

            self._macs = profile_macs(self.net, self.net.num_segments, input_size=self.hparams.macs_input_size)
        return self._macs

    def _eval_step(self, batch, stage: str):
        x, y = batch[0], batch[1]
        logits, out = self._views_forward(x)
        n = len(y)
        self.val_top1(logits, y)
        self.val_top5(logits, y)
        if self.hparams.metric == "mAP":  # it keeps every score of the epoch: only when it is reported
            self.val_map(logits, y)
        self.val_ratios.update(out.masks, out.spatial_masks, n)
        self.log(f"{stage}/loss", F.cross_entropy(logits, y), batch_size=n, sync_dist=True)

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def _eval_epoch_end(self, stage: str):
        """Reads the epoch's metrics from the device once, logs them, and keeps the best validation epoch."""
        ratios, costs = self.val_ratios.compute().tolist()
        metrics = {f"{stage}/top1": float(self.val_top1.compute()) * 100,
                   f"{stage}/top5": float(self.val_top5.compute()) * 100,
                   f"{stage}/gflops": self.macs_profile().gmacs(costs or 1.0)}
        if self.hparams.metric == "mAP":
            metrics[f"{stage}/mAP"] = float(self.val_map.compute())
        if ratios:
            metrics[f"{stage}/ratio"] = sum(ratios) / len(ratios)
            metrics.update({f"{stage}/ratio_{i}": v for i, v in enumerate(ratios)})
        for m in (self.val_top1, self.val_top5, self.val_map, self.val_ratios):
            m.reset()
        if self.trainer.state.fn == TrainerFn.FITTING and not self.trainer.sanity_checking:
            value = metrics[f"val/{self.hparams.metric}"]
            if value > self.best["metric"]:
                self.best = {"metric": value, "gflops": metrics["val/gflops"], "epoch": int(self.current_epoch),
                             "ratio": metrics.get("val/ratio", 1.0), "ratios": ratios}
            metrics.update({"best/metric": self.best["metric"], "best/gflops": self.best["gflops"],
                            "best/epoch": float(self.best["epoch"])})
        self.log_dict(metrics, sync_dist=True)
        self.last_eval_metrics = metrics

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
