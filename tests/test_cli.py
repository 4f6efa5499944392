"""The entry points end to end on the tiny built-in dataset: fast_dev_run of every model, the CLI, a multirun,
evaluation of a checkpoint, config errors, W&B offline."""

from __future__ import annotations

import json
import time

import pytest

from src.train import train
from tests.helpers import cli, compose_train, tiny_backbone, tiny_overrides

RUNS = [(m, b) for m in ("tsn", "tsm") for b in ("r18", "r34", "r50", "r101", "mbv3")]
RUNS += [(m, b) for m in ("afnet", "afnet_tsm", "afnet_soft") for b in ("r18", "r34", "r50", "r101", "mbv3")]


@pytest.mark.parametrize("method,backbone", RUNS)
def test_fast_dev_run_every_model(method, backbone, tiny_data_root, tmp_path):
    cfg = compose_train([*tiny_overrides(tiny_data_root), *tiny_backbone(backbone), f"model={method}", "debug=fast"],
                        tmp_path)
    result = train(cfg)
    assert result["metrics"]["val/top1"] >= 0


@pytest.mark.parametrize("extra", [["rs=0.5"], ["model.fusion=add"], ["model.mask_mode=input"],
                                   ["model.nav_mix_frames=true"], ["model.eval_gumbel_noise=true"],
                                   ["dataset=synthetic_video"],
                                   ["dataset.test_num_crops=3", "dataset.test_num_clips=2"], ["test_protocol=twice"],
                                   ["test_protocol=dense"], ["test_protocol=official_val"]])
def test_fast_dev_run_afnet_switches(extra, tiny_data_root, tmp_path):
    cfg = compose_train([*tiny_overrides(tiny_data_root), *tiny_backbone("r18"), "model=afnet", "debug=fast",
                         *extra], tmp_path)
    assert train(cfg)["metrics"]["val/top1"] >= 0


def test_cli_trains_checkpoints_and_evaluates(tiny_data_root, tmp_path):
    logs = tmp_path / "logs"
    args = ["-m", "src.train", *tiny_overrides(tiny_data_root), *tiny_backbone("r18"), "model=afnet", "rt=0.5",
            "trainer.max_epochs=2", f"paths.log_dir={logs}"]
    proc = cli(args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for line in ("final val top1", "chance level", "realised ratio", "GFLOPs per video", "best checkpoint"):
        assert line in proc.stdout
    run_dirs = list((logs / "runs" / "afnet_r18_8f_rt0.5_synthetic").glob("seed0_*"))
    assert len(run_dirs) == 1
    run = run_dirs[0]
    assert (run / "checkpoints" / "last.ckpt").is_file() and list(run.glob("checkpoints/best-epoch*.ckpt"))
    assert (run / "csv" / "metrics.csv").is_file() and (run / "DONE").is_file()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["row_id"] is None and summary["method"] == "afnet" and summary["best"]["epoch"] in (0, 1)
    # the logged GFLOPs are the analytic counter's value at the realised per-mask ratios (it is linear in them)
    import torch

    from src.models.macs import profile_macs
    from src.utils.runs import build_net

    ckpt = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    net = build_net(ckpt["suite_model"])
    final = summary["final"]
    ratios = [final[f"val/ratio_{i}"] for i in range(net.num_masks)]
    assert abs(sum(ratios) / len(ratios) - final["val/ratio"]) < 1e-6
    assert profile_macs(net, 8, input_size=32).gmacs(ratios) == pytest.approx(final["val/gflops"], rel=1e-5)

    ev = cli(["-m", "src.eval", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "latency_videos=2"])
    assert ev.returncode == 0, ev.stderr[-3000:]
    result = json.loads(ev.stdout.strip().splitlines()[-1])
    assert result["protocol"] == "deterministic" and 0 <= result["top1"] <= 100 and result["latency_ms"] > 0
    assert 0 <= result["ratio"] <= 1 and result["gflops"] > 0
    again = json.loads(cli(["-m", "src.eval", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
                            "latency_videos=0"]).stdout.strip().splitlines()[-1])
    assert again["top1"] == result["top1"]  # deterministic evaluation
    noisy = cli(["-m", "src.eval", f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}", "latency_videos=0", "repeats=3",
                 "model.eval_gumbel_noise=true"])
    assert noisy.returncode == 0, noisy.stderr[-3000:]
    n = json.loads(noisy.stdout.strip().splitlines()[-1])
    assert n["protocol"] == "noisy" and n["repeats"] == 3 and "top1_std" in n


def test_eval_recomposes_the_run_config_from_the_checkpoint():
    """A run with no overrides (the quick start) is rebuilt from the defaults, its narrow default backbone
    included; a converted official checkpoint (no training run) from its `suite_model`, with its mask mode."""
    from src.utils.runs import compose_run_config

    quick = {"hyper_parameters": {"run_overrides": []},
             "suite_model": {"method": "afnet_tsm", "backbone": "r18", "width": 16, "num_segments": 8}}
    cfg = compose_run_config(quick, [])
    assert (cfg.backbone.name, cfg.backbone.options.width, cfg.model.method) == ("r18", 16, "afnet_tsm")
    trained = {"hyper_parameters": {"run_overrides": ["backbone=r34", "num_segments=4"]}, "suite_model": {}}
    cfg = compose_run_config(trained, ["rt=0.25"])
    assert (cfg.backbone.name, cfg.backbone.options.width, cfg.num_segments, cfg.rt) == ("r34", 64, 4, 0.25)
    official = {"suite_model": {"method": "afnet", "backbone": "r50", "num_segments": 12, "mask_mode": "input"}}
    for extra in ([], ["model.mask_mode=input"]):  # the README's command names the mode too
        cfg = compose_run_config(official, extra)
        assert (cfg.backbone.name, cfg.num_segments, cfg.model.mask_mode) == ("r50", 12, "input")


def test_multirun_writes_separate_self_describing_folders(tiny_data_root, tmp_path):
    logs = tmp_path / "logs"
    proc = cli(["-m", "src.train", "--multirun", "model=tsn,tsm", *tiny_overrides(tiny_data_root),
                *tiny_backbone("r18"), "trainer.max_epochs=1", f"paths.log_dir={logs}", "hydra.sweep.dir=" +
                str(logs / "multiruns" / "demo")])
    assert proc.returncode == 0, proc.stderr[-3000:]
    done = sorted(p.parent for p in (logs / "multiruns" / "demo").rglob("DONE"))
    assert len(done) == 2
    names = [d.relative_to(logs / "multiruns" / "demo").as_posix() for d in done]
    # folder = run name / overrides (long override lists are shortened with a hash; .hydra keeps them all)
    assert names[0].startswith("tsm_r18_8f_rt0.5_synthetic_seed0/")
    assert names[1].startswith("tsn_r18_8f_rt0.5_synthetic_seed0/")
    assert "model=tsm" in (done[0] / ".hydra" / "overrides.yaml").read_text()
    assert "model=tsn" in (done[1] / ".hydra" / "overrides.yaml").read_text()


@pytest.mark.parametrize("args,message", [
    (["rt=1.5"], "rt=1.5"), (["rt=0"], "rt=0"), (["num_segments=0"], "num_segments=0"),
    (["dataset=nope"], "dataset/nope"), (["backbone=r999"], "backbone/r999"),
    (["dataset=jester", "data_root=/nonexistent"], "dataset.root=/nonexistent/jester"),
])
def test_bad_config_fails_before_compute_naming_the_key(args, message, tmp_path):
    proc = cli(["-m", "src.train", *args, f"paths.log_dir={tmp_path}"], timeout=120)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert not list(tmp_path.rglob("*.ckpt"))


def test_wandb_offline_run_folder_holds_the_metrics(tiny_data_root, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    cfg = compose_train([*tiny_overrides(tiny_data_root), *tiny_backbone("r18"), "model=afnet", "logger=wandb",
                         "trainer.max_epochs=1", "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=2",
                         "trainer.log_every_n_steps=1"],
                        tmp_path / "run")
    train(cfg)
    runs = [p for p in (tmp_path / "run").rglob("offline-run-*") if p.is_dir()]
    assert len(runs) == 1, f"expected one offline W&B run folder, found {runs}"
    history = list(runs[0].rglob("*.wandb"))
    assert history, f"no run records in {runs[0]}: {list(runs[0].rglob('*'))}"
    keys = (b"val/top1", b"val/gflops", b"val/ratio", b"schedule/tau", b"best/metric", b"best/gflops")
    # W&B's service process may still be writing the file when finish() returns on a busy machine
    deadline = time.monotonic() + 60
    while True:
        data = history[0].read_bytes()  # the run's records (protobuf): metric names appear as strings
        missing = [k for k in keys if k not in data]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not missing, (missing, history[0], len(data))
