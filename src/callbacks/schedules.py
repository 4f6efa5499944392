"""Sets the Gumbel temperature and the ratio target every batch, from the global step and epoch only."""

from __future__ import annotations

from lightning.pytorch import Callback

from src.lit.schedules import rt_target, temperature


class ScheduleCallback(Callback):
    """τ (SPEC §2.7) on the net via `set_temperature`, RT_e (SPEC §3) on the module as `rt_target`.

    tau: {kind, t0, t1, t_end}; rt_warmup: {enabled, begin, end}. Pure functions of
    (global_step, current_epoch), so a run resumed mid-epoch sees exactly the values it would have seen.
    """

    def __init__(self, tau: dict, rt: float, rs: float | None = None, rt_warmup: dict | None = None):
        self.tau = dict(tau)
        self.rt = rt
        self.rs = rs
        self.rt_warmup = dict(rt_warmup or {"enabled": False})

    def values(self, global_step: int, epoch: int, steps_per_epoch: int) -> tuple[float, float]:
        tau = temperature(global_step, steps_per_epoch, **self.tau)
        return tau, rt_target(epoch, self.rt, **self.rt_warmup)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        tau, rt_e = self.values(trainer.global_step, trainer.current_epoch, pl_module.steps_per_epoch())
        pl_module.net.set_temperature(tau)
        pl_module.rt_target = rt_e
        pl_module.log_dict({"schedule/tau": tau, "schedule/rt_target": rt_e}, on_step=True, on_epoch=False)
