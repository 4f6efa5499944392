"""The entry points on a CUDA GPU (the `gpu` lane, `make test-gpu`): `src.train trainer=gpu` learns the built-in
dataset in every precision, and `src.eval` evaluates and times a checkpoint on the GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from src.eval import main as eval_main
from src.train import train
from tests.helpers import compose_train, tiny_backbone, tiny_overrides

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def built_in_data(tmp_path_factory) -> Path:
    """One data_root for the runs of this module: the built-in dataset is generated there by the first run."""
    return tmp_path_factory.mktemp("gpu_data")


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed", "16-mixed"])
def test_train_trainer_gpu_learns_the_built_in_dataset(precision, built_in_data, tmp_path):
    """The quick start's run (defaults) on one GPU: at least 3x chance (6 classes: 50 %)."""
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-m", "src.train", "trainer=gpu", f"trainer.precision={precision}",
                           f"data_root={built_in_data}", f"paths.log_dir={tmp_path / 'logs'}", "num_workers=4",
                           "trainer.enable_progress_bar=false"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "GPU available: True (cuda), used: True" in proc.stdout + proc.stderr
    summary = json.loads(next((tmp_path / "logs").rglob("summary.json")).read_text())
    print(f"{precision}: best val top1 {summary['best']['metric']:.2f} % at epoch {summary['best']['epoch']}, "
          f"ratio {summary['best'].get('ratio')}")
    assert summary["best"]["metric"] >= 3 * 100 / 6


def test_eval_on_the_gpu(tiny_data_root, tmp_path):
    cfg = compose_train([*tiny_overrides(tiny_data_root), *tiny_backbone("r18"), "model=afnet_tsm",
                         "trainer=gpu", "trainer.max_epochs=1"], tmp_path)
    train(cfg)
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    base = [f"ckpt_path={ckpt}", "latency_videos=5", "trainer.enable_progress_bar=false"]
    auto = eval_main(base)
    assert auto["device"].startswith("cuda") and auto["precision"] in ("bf16-mixed", "16-mixed")
    assert auto["latency_ms"] > 0 and 0 <= auto["top1"] <= 100 and auto["gflops"] > 0
    fp32 = eval_main([*base, "trainer=gpu", "trainer.precision=32-true"])
    assert fp32["precision"] == "32-true" and fp32["latency_ms"] > 0
    cpu = eval_main([*base, "trainer=cpu"])
    assert cpu["device"] == "cpu" and abs(cpu["ratio"] - fp32["ratio"]) < 0.1
