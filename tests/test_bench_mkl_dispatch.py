"""experiments/bench_mkl_dispatch.py: the 1x1-as-product rewrite keeps values, the MKL override builds and
exports its symbol, and the parent prints and returns both dispatches' figures."""

from __future__ import annotations

import copy
import ctypes
import importlib.util
import shutil
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

SCRIPT = Path(__file__).resolve().parents[1] / "experiments" / "bench_mkl_dispatch.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_mkl_dispatch", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_mkl_dispatch"] = module
    spec.loader.exec_module(module)
    return module


def test_pointwise_as_products_keeps_values_gradients_and_parameters(bench):
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Conv2d(8, 6, 1, bias=False), nn.BatchNorm2d(6), nn.ReLU(),
                        nn.Conv2d(6, 6, 3, padding=1, groups=2, bias=False),
                        bench.GroupedPointwiseConv2d(6, 8, 1, groups=2),
                        nn.Conv2d(8, 4, 1, stride=2, bias=True)).train()
    fast = bench.pointwise_as_products(copy.deepcopy(ref), min_pixels=1)
    assert [type(m).__name__ for m in fast] == ["GroupedPointwiseConv2d", "BatchNorm2d", "ReLU", "Conv2d",
                                                "GroupedPointwiseConv2d", "Conv2d"]  # 3x3 and strided 1x1 stay
    assert fast[0].matmul_min_pixels == 1 and fast[4].matmul_min_pixels == 0
    assert fast.state_dict().keys() == ref.state_dict().keys()
    x = torch.randn(3, 8, 6, 6)
    xr, xf = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    yr, yf = ref(xr), fast(xf)
    torch.testing.assert_close(yf, yr, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(yr)
    yr.backward(g)
    yf.backward(g)
    torch.testing.assert_close(xf.grad, xr.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(fast[0].weight.grad, ref[0].weight.grad, rtol=1e-5, atol=1e-5)


def test_build_shim_names_the_missing_compiler(bench, tmp_path, monkeypatch):
    monkeypatch.setattr(bench.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="C compiler"):
        bench.build_shim(tmp_path)


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler")
def test_shim_exports_the_dispatch_override(bench, tmp_path):
    lib = bench.build_shim(tmp_path)
    assert ctypes.CDLL(str(lib)).mkl_serv_intel_cpu_true() == 1


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler")
def test_parent_runs_both_dispatches_and_prints_them(bench, capsys):
    res = bench.main(["--frames", "2", "--size", "32", "--rounds", "1", "--warmup", "0", "--reps", "1"])
    assert [r["dispatch"] for r in res["runs"]] == ["default", "intel"]
    for run in res["runs"]:
        assert len(run["pointwise"]) == len(bench.SHAPES)
        steps = run["steps"]
        assert set(steps["median_s"]) == {"tsn", "afnet", "tsn_products", "afnet_products"}
        assert steps["suite"] == pytest.approx(steps["median_s"]["afnet"] / steps["median_s"]["tsn"])
    out = capsys.readouterr().out
    assert "both products" in out and out.strip().splitlines()[-1].startswith("{")


@pytest.mark.parametrize("argv, message", [(["--rounds", "0"], "--rounds 0: must be at least 1"),
                                           (["--size", "50"], "--size 50: must be a multiple of 32")])
def test_bad_flags_are_named(bench, capsys, argv, message):
    with pytest.raises(SystemExit):
        bench.main(argv)
    assert message in capsys.readouterr().err
