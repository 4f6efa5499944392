"""Slow lane of the fault suite (`make test-slow`): signals to a real training's process group, as a terminal's
Ctrl-C or a scheduler's `scancel` send them, with the default two loader workers."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers import assert_same_weights, tiny_backbone, tiny_overrides

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow
ENV = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}


def common(data_root) -> list[str]:
    # 18 training videos, batch 4: 4 steps an epoch; num_workers=2 is the default, stated for the reader
    return [*tiny_overrides(data_root), *tiny_backbone("r18"), "model=afnet_tsm", "trainer.max_epochs=3",
            "num_workers=2", "trainer.log_every_n_steps=1"]


def hold(marker: Path, step: int) -> list[str]:
    return ["+callbacks.hold._target_=tests.helpers.fakes.HoldAtStep", f"+callbacks.hold.step={step}",
            f"+callbacks.hold.marker={marker}"]


def start(args: list[str]) -> subprocess.Popen:
    """`python -m src.train args` as the leader of its own process group (as a shell job or a batch job is)."""
    return subprocess.Popen([sys.executable, "-m", "src.train", *args], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def signal_group_when_held(proc: subprocess.Popen, marker: Path, signum: int) -> tuple[str, str]:
    deadline = time.time() + 900
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.2)
    assert marker.exists(), "the run never reached its hold step"
    os.killpg(proc.pid, signum)
    return proc.communicate(timeout=600)


def last_ckpt(log_dir: Path) -> dict:
    (path,) = log_dir.rglob("last.ckpt")
    return torch.load(path, map_location="cpu", weights_only=False)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_the_process_group_mid_epoch_saves_once_and_resumes_bit_equal(signum, tiny_data_root, tmp_path):
    """SIGTERM / SIGINT to the whole group (main process and loader workers) in the middle of epoch 1: exit 75,
    one line saying how to resume, no worker traceback, one checkpoint at the step reached; the same command
    with ckpt_path=last continues in the same folder and ends bit-equal to an uninterrupted run."""
    marker, logs = tmp_path / "held", tmp_path / "logs"
    args = [*common(tiny_data_root), *hold(marker, 6), f"paths.log_dir={logs}"]
    proc = start(args)
    out, err = signal_group_when_held(proc, marker, signum)
    assert proc.returncode == 75, err[-3000:]
    assert "Traceback" not in err and "Traceback" not in out, err[-3000:]
    assert len([ln for ln in out.splitlines() if "resume with:" in ln]) == 1, out[-2000:]
    assert last_ckpt(logs)["global_step"] == 6
    if signum == signal.SIGINT:
        return  # the resumption is the same whatever the signal: checked once, for SIGTERM

    resumed = subprocess.run([sys.executable, "-m", "src.train", *args, "ckpt_path=last"], cwd=ROOT, env=ENV,
                             capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    ref = subprocess.run([sys.executable, "-m", "src.train", *common(tiny_data_root), *hold(marker, 6),
                          f"paths.log_dir={tmp_path / 'ref'}"], cwd=ROOT, env=ENV, capture_output=True, text=True,
                         timeout=900)  # the marker exists: this run does not hold
    assert ref.returncode == 0, ref.stderr[-3000:]
    a, b = last_ckpt(tmp_path / "ref"), last_ckpt(logs)
    assert a["global_step"] == b["global_step"] == 12
    assert_same_weights(a["state_dict"], b["state_dict"])
    (run,) = [p.parent for p in logs.rglob("DONE")]  # one folder: the resumed run continued in it
    with open(run / "csv" / "metrics.csv") as f:
        steps = [int(float(r["step"])) for r in csv.DictReader(f) if r.get("train/loss_step")]
    assert steps == list(range(12))
