"""W&B offline, in process: a table row's run carries its group and dataset/backbone/method/rt/row tags, and its
summary holds the best epoch (val metric max, best/* keys with that epoch's GFLOPs)."""

from __future__ import annotations

import pytest

from src.train import train
from src.utils.config import run_tags
from tests.helpers import FAKE, compose_train


def test_run_tags_name_every_key_once():
    assert run_tags("jester", "r34", "afnet", 0.5, None, None, ["S1"]) == [
        "dataset:jester", "backbone:r34", "method:afnet", "rt:0.5", "S1"]
    assert run_tags("sthv1", "r50", "afnet", 0.4, 0.6, "S3/x", ["S3", "S3"])[-3:] == ["rs:0.6", "row:S3/x", "S3"]


def test_wandb_run_of_a_table_row_has_group_tags_and_best_summary(tmp_path, monkeypatch):
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    seen = {}
    finish = wandb.Run.finish

    def record_then_finish(run, *args, **kwargs):  # the run as it is closed: what `wandb sync` uploads
        seen.update(tags=list(run.tags), group=run.group, row_id=run.config["row_id"],
                    summary={k: dict(v) if hasattr(v, "keys") else v for k, v in dict(run.summary).items()})
        return finish(run, *args, **kwargs)

    monkeypatch.setattr(wandb.Run, "finish", record_then_finish)
    # the demo table's AFNet-TSM rt 0.5 row, on the fake data and net of test_train_loop (fast)
    cfg = compose_train(["sweep=demo", "+row=demo/afnet_tsm_r18_8f_rt0.5", *FAKE, "logger=wandb",
                         "trainer.max_epochs=3"], tmp_path / "run")
    result = train(cfg)

    assert seen["group"] == "demo" and seen["row_id"] == "demo/afnet_tsm_r18_8f_rt0.5"
    assert seen["tags"] == ["dataset:synthetic", "backbone:r18", "method:afnet_tsm", "rt:0.5",
                            "row:demo/afnet_tsm_r18_8f_rt0.5", "demo"]
    s, best = seen["summary"], result["best"]
    assert s["val/top1"]["max"] == pytest.approx(best["metric"])
    assert s["val/top1"]["last"] == pytest.approx(result["metrics"]["val/top1"])
    assert s["best/metric"] == pytest.approx(best["metric"]) and s["best/epoch"] == best["epoch"]
    assert s["best/gflops"] == pytest.approx(best["gflops"])  # GFLOPs of the best epoch's masks
    assert list((tmp_path / "run").rglob("offline-run-*/*.wandb")), "no offline run to sync"
