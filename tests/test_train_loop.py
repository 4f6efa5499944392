"""The training loop by itself (fake data and net): schedules at given steps, resume, summaries, W&B offline."""

from __future__ import annotations

import json

import pytest
import torch
from lightning.pytorch import Callback

from src.lit.schedules import lr_factor, rt_target, temperature
from src.train import train
from tests.helpers import SigtermAt, fake_cfg, final_state


class Record(Callback):
    """What the optimiser and the schedules hold at every training batch."""

    def __init__(self):
        self.seen = []

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        lrs = {g["name"]: g["lr"] for g in trainer.optimizers[0].param_groups}
        self.seen.append((trainer.global_step - 1, trainer.current_epoch, module.net.tau, module.rt_target, lrs))


@pytest.mark.parametrize("callbacks", ["default", "none"])
def test_schedules_follow_formulas_at_every_step(callbacks, tmp_path):
    """τ, the ratio-loss target RT_e and the LR at every step are the formulas' values, with the default callbacks
    and with none: the LightningModule owns its schedules."""
    # 6 steps per epoch, 4 epochs; τ over t_end=2 epochs, RT warm-up at 1/2/3, LR ×0.1 at epoch 3, 1-epoch warm-up
    cfg = fake_cfg(tmp_path, "trainer.max_epochs=4", "schedule.tau.t_end=2", "schedule.rt_warmup.begin=1",
                   "schedule.rt_warmup.end=3", "optim.lr_steps=[3]", "optim.warmup_epochs=1", "rt=0.4",
                   "optim.groups.nav_lr_mult=10", f"callbacks={callbacks}")
    rec = Record()
    train(cfg, callbacks=[rec])
    assert len(rec.seen) == 24
    for step, epoch, tau, rt_e, lrs in rec.seen:
        assert tau == pytest.approx(temperature(step, 6, "exponential", 1.0, 0.01, 2))
        assert rt_e == pytest.approx(rt_target(epoch, 0.4, 1, 3))
        # the scheduler has stepped after the optimiser step: the LR shown is the next step's
        factor = lr_factor(step + 1, 6, (3,), 0.1, 1)
        assert lrs["conv_weight"] == pytest.approx(0.05 * factor)
        assert lrs["nav"] == pytest.approx(0.05 * 10 * factor)
        assert lrs["linear_weight"] == pytest.approx(0.05 * 5 * factor)


def test_preempted_mid_epoch_and_resumed_equals_uninterrupted(tmp_path):
    """SIGTERM in the middle of epoch 1 saves last.ckpt; `ckpt_path=last` continues; the final weights, step,
    schedules and metrics equal those of a run that was never interrupted."""
    res_full = train(fake_cfg(tmp_path / "a", "trainer.max_epochs=3"))

    with pytest.raises(SystemExit):
        train(fake_cfg(tmp_path / "b", "trainer.max_epochs=3"), callbacks=[SigtermAt(8)])
    ckpt = torch.load(tmp_path / "b/run/checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 8 and ckpt["epoch"] == 1  # saved mid-epoch (6 steps per epoch)

    rec = Record()
    res_resumed = train(fake_cfg(tmp_path / "b", "trainer.max_epochs=3", "ckpt_path=last"), callbacks=[rec])
    assert rec.seen[0][0] == 8  # continues at the next step, not at the epoch start
    assert rec.seen[0][2] == pytest.approx(temperature(8, 6, "exponential", 1.0, 0.01, 45))

    a, step_a = final_state(tmp_path / "a" / "run")
    b, step_b = final_state(tmp_path / "b" / "run")
    assert step_a == step_b == 18
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert res_full["metrics"]["val/top1"] == res_resumed["metrics"]["val/top1"]


def test_summary_holds_best_epoch_and_its_gflops(tmp_path):
    cfg = fake_cfg(tmp_path, "trainer.max_epochs=3")
    result = train(cfg)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (tmp_path / "run" / "DONE").exists()
    assert summary["best"]["metric"] == pytest.approx(result["best"]["metric"])
    assert summary["best"]["metric"] == max(summary["best"]["metric"], result["metrics"]["val/top1"])
    assert summary["best"]["gflops"] > 0
