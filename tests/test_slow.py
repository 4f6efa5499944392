"""Slow lane (`make test-slow`): a real short training, resume after SIGKILL, DDP with 2 CPU processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import tiny_backbone, tiny_overrides

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def run(args, timeout=900, **kw):
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "src.train", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout, **kw)


def last_weights(log_dir: Path) -> tuple[dict, dict]:
    ckpts = sorted(log_dir.rglob("last.ckpt"), key=os.path.getmtime)
    ck = torch.load(ckpts[-1], map_location="cpu", weights_only=False)
    return ck["state_dict"], json.loads(next(ckpts[-1].parent.parent.glob("summary.json")).read_text())


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(tiny_data_root, tmp_path):
    common = [*tiny_overrides(tiny_data_root), *tiny_backbone("r18"), "model=afnet_tsm", "trainer.max_epochs=4",
              "num_workers=0", "trainer.log_every_n_steps=1"]
    ref = run([*common, f"paths.log_dir={tmp_path / 'ref'}"])
    assert ref.returncode == 0, ref.stderr[-2000:]

    logs, held = tmp_path / "killed", tmp_path / "held-at-step"
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    # 6 steps per epoch: the run holds after step 14 (mid epoch 2, after epoch 1's last.ckpt) until killed there;
    # polling the metrics instead raced a fast machine, which finished the run before the kill
    hold = ["+callbacks.hold._target_=tests.helpers.fakes.HoldAtStep", "+callbacks.hold.step=14",
            f"+callbacks.hold.marker={held}"]
    proc = subprocess.Popen([sys.executable, "-m", "src.train", *common, *hold, f"paths.log_dir={logs}"], cwd=ROOT,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while not held.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert held.read_text() == "14", "the run never reached step 14"
    assert not list(logs.rglob("DONE"))

    # the same settings (the hold included: it holds once), so ckpt_path=last finds the killed run's folder
    resumed = run([*common, *hold, f"paths.log_dir={logs}", "ckpt_path=last"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, sa = last_weights(tmp_path / "ref")
    b, sb = last_weights(logs)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)
    assert sa["final"]["val/top1"] == sb["final"]["val/top1"] and sa["global_step"] == sb["global_step"]


def test_ddp_two_cpu_processes_match_one_process(tiny_data_root, tmp_path):
    """DDP with 2 gloo processes (global batch 8 = 2 x 4) trains end to end; its validation metrics equal a
    single process evaluating the same weights on the same data. (Bit-equal training against one process of
    batch 8 would need SyncBatchNorm, which PyTorch supports on GPUs only.)"""
    common = [*tiny_overrides(tiny_data_root), *tiny_backbone("r18"), "model=afnet_tsm", "trainer.max_epochs=2",
              "global_batch_size=8", "num_workers=0"]
    ddp = run([*common, "trainer=ddp", "trainer.devices=2", "trainer.accelerator=cpu",
               f"paths.log_dir={tmp_path / 'two'}"])
    assert ddp.returncode == 0, ddp.stderr[-2000:]
    ckpt = next((tmp_path / "two").rglob("last.ckpt"))
    summary = json.loads(next((tmp_path / "two").rglob("summary.json")).read_text())
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    ev = subprocess.run([sys.executable, "-m", "src.eval", f"ckpt_path={ckpt}", "latency_videos=0"], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=600)
    assert ev.returncode == 0, ev.stderr[-2000:]
    single = json.loads(ev.stdout.strip().splitlines()[-1])
    assert single["top1"] == pytest.approx(summary["final"]["val/top1"], abs=1e-4)
    assert single["ratio"] == pytest.approx(summary["final"]["val/ratio"], abs=1e-4)
    assert single["gflops"] == pytest.approx(summary["final"]["val/gflops"], rel=1e-4)


def test_default_run_learns_the_built_in_dataset(tmp_path):
    """The quick-start default (AFNet-TSM) on the real default dataset: well above chance."""
    proc = run([f"data_root={tmp_path / 'data'}", f"paths.log_dir={tmp_path / 'logs'}",
                "trainer.enable_progress_bar=false"], timeout=1200)
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads(next((tmp_path / "logs").rglob("summary.json")).read_text())
    assert summary["best"]["metric"] >= 3 * 100 / 6  # 6 classes
    # and its checkpoint evaluates as it was trained (no overrides saved: the defaults rebuild the net)
    ckpt = next((tmp_path / "logs").rglob("last.ckpt"))
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    ev = subprocess.run([sys.executable, "-m", "src.eval", f"ckpt_path={ckpt}", f"data_root={tmp_path / 'data'}",
                         "latency_videos=2"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert ev.returncode == 0, ev.stderr[-2000:]
    result = json.loads(ev.stdout.strip().splitlines()[-1])
    assert result["top1"] == pytest.approx(summary["final"]["val/top1"], abs=1e-4) and result["latency_ms"] > 0
