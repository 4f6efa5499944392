"""`python -m src.eval`: its device and precision from `trainer=`, its progress bar, `--help`, and one line with
no traceback for every bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from src.eval import eval_trainer, main, precision_dtypes
from src.train import train
from tests.helpers import compose_train, tiny_backbone, tiny_overrides

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def checkpoint(tiny_data_root, tmp_path_factory) -> Path:
    """last.ckpt of a 1-epoch AFNet run at a tiny width on the tiny built-in dataset (6 classes)."""
    out = tmp_path_factory.mktemp("eval_run")
    cfg = compose_train([*tiny_overrides(tiny_data_root), *tiny_backbone("r18"), "model=afnet",
                         "trainer.max_epochs=1"], out)
    train(cfg)
    return out / "checkpoints" / "last.ckpt"


def run_cli(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "src.eval", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def error_line(args: list[str], capsys) -> str:
    """Run src.eval in-process on bad input: it must exit with status 2 and one line on stderr."""
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    lines = [s for s in err.splitlines() if s.strip() and not s.startswith(("INFO", "["))]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_help_prints_usage_and_options():
    proc = run_cli(["--help"])
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    for word in ("python -m src.eval", "ckpt_path", "split", "repeats", "latency_videos", "trainer="):
        assert word in proc.stdout


def test_split_must_be_val_or_test(checkpoint, capsys):
    assert error_line([f"ckpt_path={checkpoint}", "split=foo"], capsys) == "error: split=foo: expected val or test"


@pytest.mark.parametrize("arg,expected", [("repeats=0", "repeats=0: expected an integer >= 1"),
                                          ("repeats=abc", "repeats=abc: expected an integer >= 1"),
                                          ("latency_videos=-1", "latency_videos=-1: expected an integer >= 0"),
                                          ("verbose", "argument 'verbose': expected key=value")])
def test_bad_eval_options(checkpoint, capsys, arg, expected):
    assert expected in error_line([f"ckpt_path={checkpoint}", arg], capsys)


def test_missing_ckpt_path(capsys):
    assert "ckpt_path=PATH is required" in error_line(["split=val"], capsys)


def test_missing_checkpoint_file(tmp_path, capsys):
    assert error_line([f"ckpt_path={tmp_path / 'nope.ckpt'}"], capsys).endswith("nope.ckpt: no such file")


def test_truncated_checkpoint(checkpoint, tmp_path):
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(checkpoint.read_bytes()[:4096])
    proc = run_cli([f"ckpt_path={cut}"])  # as a user runs it: no traceback from torch's zip reader
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{cut}: not a readable PyTorch checkpoint" in proc.stderr


@pytest.mark.parametrize("content", ["text", "empty"])
def test_a_file_torch_cannot_read(tmp_path, capsys, content):
    path = tmp_path / "notes.ckpt"
    path.write_text("not a checkpoint\n" if content == "text" else "")
    assert f"{path}: not a readable PyTorch checkpoint" in error_line([f"ckpt_path={path}"], capsys)


def test_a_torch_file_that_is_no_checkpoint(tmp_path, capsys):
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(3)}, path)
    assert f"ckpt_path={path}: unknown checkpoint format" in error_line([f"ckpt_path={path}"], capsys)


@pytest.mark.parametrize("override,named", [("backbone=r50", "records backbone='r18', but the command line builds "
                                                        "backbone='r50'"),
                                            ("dataset.num_classes=10", "records num_classes=6, but the command line "
                                                                       "builds num_classes=10")])
def test_a_checkpoint_of_another_backbone_or_class_count(checkpoint, capsys, override, named):
    line = error_line([f"ckpt_path={checkpoint}", override, "latency_videos=0"], capsys)
    assert f"ckpt_path={checkpoint} {named}" in line


def test_trainer_gpu_without_a_gpu(checkpoint, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "trainer.accelerator=gpu: no CUDA device" in error_line([f"ckpt_path={checkpoint}", "trainer=gpu"], capsys)


def test_progress_bar_on_by_default_and_hideable(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert eval_trainer([]).progress_bar_callback is not None
    assert eval_trainer(["trainer.enable_progress_bar=false"]).progress_bar_callback is None


def test_eval_follows_the_trainer_precision(checkpoint, capsys, tmp_path):
    """CPU in 32-true by default and in bf16-mixed when asked; one device even if the run's trainer had two."""
    out = tmp_path / "eval.json"
    base = [f"ckpt_path={checkpoint}", "latency_videos=2", "trainer.enable_progress_bar=false"]
    fp32 = main([*base, f"output={out}"])
    assert (fp32["device"], fp32["precision"]) == ("cpu", "32-true") and fp32["latency_ms"] > 0
    assert json.loads(out.read_text())["top1"] == fp32["top1"]
    bf16 = main([*base, "latency_videos=0", "trainer.precision=bf16-mixed", "trainer=ddp", "trainer.devices=2"])
    assert (bf16["device"], bf16["precision"]) == ("cpu", "bf16-mixed") and "latency_ms" not in bf16
    assert 0 <= bf16["top1"] <= 100 and bf16["gflops"] == pytest.approx(fp32["gflops"], rel=0.2)
    assert "best" not in " ".join(fp32) and "epoch" not in fp32  # evaluation keeps no best-epoch bookkeeping


def test_eval_latency_under_bf16_autocast(checkpoint):
    result = main([f"ckpt_path={checkpoint}", "latency_videos=2", "trainer.enable_progress_bar=false",
                   "trainer.precision=bf16-mixed"])
    assert result["latency_ms"] > 0


def test_precision_dtypes():
    assert precision_dtypes("bf16-mixed") == (torch.float32, torch.bfloat16)
    assert precision_dtypes("16-mixed") == (torch.float32, torch.float16)
    assert precision_dtypes("32-true") == (torch.float32, None)
    assert precision_dtypes("bf16-true") == (torch.bfloat16, None)
