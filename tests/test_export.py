"""`python -m src.export`: TorchScript, torch.export (pt2) and ONNX files that give the eager model's logits."""

import importlib.util

import pytest
import torch

from src.export import FORMATS, load_for_export, run_exported
from src.export import main as export_main
from tests.helpers import cli, train_tiny_checkpoint

HAVE_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime"))


@pytest.fixture(scope="module")
def checkpoints(tiny_data_root, tmp_path_factory):
    return {m: train_tiny_checkpoint(tiny_data_root, tmp_path_factory.mktemp(m), m) for m in ("tsm", "afnet_tsm")}


# ONNX: in the slow lane (its exporter takes a minute per model), skipped without the onnx extra
ONNX = pytest.param("onnx", marks=[pytest.mark.slow] if HAVE_ONNX else [
    pytest.mark.skip(reason="onnx extra not installed (pip install -e .[onnx])")])


@pytest.mark.parametrize("fmt", ["torchscript", "pt2", ONNX])
@pytest.mark.parametrize("method", ["tsm", "afnet_tsm"])
def test_exported_model_gives_the_eager_logits(checkpoints, method, fmt, tmp_path, capsys):
    out = tmp_path / f"model{FORMATS[fmt]}"
    result = export_main([f"ckpt_path={checkpoints[method]}", f"format={fmt}", f"out={out}"])
    assert out.is_file() and result["max_abs_diff"] < 1e-5
    printed = capsys.readouterr().out
    assert ("masked (deterministic masks)" in printed) == (method == "afnet_tsm")
    # on other clips than the one it was exported with: the same logits and masks as the eager (sliced) model
    cfg, eager, _ = load_for_export(checkpoints[method])
    x = torch.randn(1, 4, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ref = eager(x)
    logits, masks = run_exported(out, fmt, x)
    assert (logits - ref.logits).abs().max() < 1e-5
    assert masks.shape == (len(ref.masks), 4)
    if ref.masks:
        assert torch.equal(masks, torch.stack([m.reshape(-1) for m in ref.masks]).round())


@pytest.mark.parametrize("args,message", [(["format=torchscript"], "ckpt_path=PATH is required"),
                                          (["ckpt_path=x.ckpt", "format=tflite"], "format='tflite'"),
                                          (["ckpt_path=x.ckpt", "format=pt2", "batch=0"], "batch='0'"),
                                          (["ckpt_path=x.ckpt", "format=pt2", "check=maybe"], "check='maybe'"),
                                          (["ckpt_path", "format=pt2"], "expected key=value")])
def test_bad_export_arguments_are_named(args, message, capsys):
    with pytest.raises(SystemExit) as e:
        export_main(args)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_onnx_without_its_extra_names_it(checkpoints, monkeypatch, tmp_path, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxscript" else real(name, *a))
    with pytest.raises(SystemExit):
        export_main([f"ckpt_path={checkpoints['tsm']}", "format=onnx", f"out={tmp_path / 'm.onnx'}"])
    assert "pip install -e '.[onnx]'" in capsys.readouterr().err and not (tmp_path / "m.onnx").exists()


def test_export_help():
    proc = cli(["-m", "src.export", "--help"], timeout=60)
    assert proc.returncode == 0 and "torchscript" in proc.stdout and "masked" in proc.stdout
