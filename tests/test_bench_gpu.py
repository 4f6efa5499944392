"""The GPU benchmark: its flags, and its whole code path on the CPU (wall-clock timer standing in for CUDA
events, no memory figures) on tiny sizes; on a CUDA device, `--device cuda --quick` on tiny sizes."""

import json

import pytest
import torch

from src.bench import gpu

TINY = ["--frames", "2", "--size", "32", "--rounds", "2", "--warmup", "0", "--train-frames", "2",
        "--train-batch", "2", "--train-rounds", "2", "--train-warmup", "0"]


def test_quick_and_full_defaults_and_explicit_flags_win():
    full, quick = gpu.parse([]), gpu.parse(["--quick"])
    assert (full.batches, full.ratios, full.rounds) == ([1, 16, 64], [0.25, 0.4, 0.5, 0.8, 1.0], 20)
    assert (quick.batches, quick.ratios, quick.rounds, quick.train_rounds) == ([1, 16], [0.4, 1.0], 3, 3)
    assert full.dtypes == ["fp32", "bf16"] and full.train_dtype == "bf16"
    assert (full.train_frames, full.train_batch, full.frames, full.size) == (8, 16, 12, 224)
    assert gpu.parse(["--quick", "--rounds", "7", "--batches", "64"]).rounds == 7
    assert gpu.parse(["--quick", "--batches", "64"]).batches == [64]


@pytest.mark.parametrize("argv, message", [
    (["--batches", "16", "0"], "--batches 0: must be at least 1"),
    (["--rounds", "0"], "--rounds 0: must be at least 1"),
    (["--warmup", "-1"], "--warmup -1: must be at least 0"),
    (["--train-batch", "0"], "--train-batch 0: must be at least 1"),
    (["--train-rounds", "-2"], "--train-rounds -2: must be at least 0"),
    (["--size", "8"], "--size 8: must be at least 32"),
    (["--ratios", "0.4", "2"], "--ratios 2.0: must be in (0, 1]"),
    (["--dtypes", "fp8"], "--dtypes: invalid choice: 'fp8'"),
    (["--compile", "fast"], "--compile: invalid choice: 'fast'"),
    (["--train-dtype", "int8"], "--train-dtype: invalid choice: 'int8'"),
])
def test_bad_values_name_the_flag(capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        gpu.parse(argv)
    assert e.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("value, message", [("cpu:0", "expected cpu, cuda or cuda:N"),
                                            ("gpu", "expected cpu, cuda or cuda:N"),
                                            ("cuda:99", "cuda:99: ")])
def test_device_must_be_a_usable_cuda_device(value, message):
    with pytest.raises(SystemExit, match=f"--device {value}"):
        gpu.cuda_device(value)
    with pytest.raises(SystemExit) as e:
        gpu.cuda_device(value)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_first_calls_leave_a_failing_model_out_and_name_it():
    errors = {}

    def boom():
        raise RuntimeError("expected dtype c10::Half for 'end' but got dtype float\nmore lines")

    ok, first = gpu.first_calls({"good": lambda: None, "bad": boom}, torch.device("cpu"), errors, "bf16/batch 1")
    assert list(ok) == ["good"] and first["good"] >= 0
    assert errors == {"bf16/batch 1/bad": "RuntimeError: expected dtype c10::Half for 'end' but got dtype float"}


def test_gpu_protocol_on_the_cpu_tables_and_json(tmp_path, capsys):
    """The same code as on a GPU: every setting (precision x batch) with its rows, videos/s, ratios to TSM-R50
    next to MAC ratios; the training step of the three models with ratios to TSN-R50; one JSON object last."""
    out = tmp_path / "gpu.json"
    res = gpu.run(gpu.parse([*TINY, "--batches", "1", "2", "--only", "afnet_tsm_mbv3@0.40", "--out", str(out)]),
                  torch.device("cpu"))
    assert set(res["inference"]) == {"fp32", "bf16"} and set(res["inference"]["bf16"]) == {"1", "2"}
    for dname, per_batch in res["inference"].items():
        for batch, rows in per_batch.items():
            assert set(rows) == {"tsm_r50", "afnet_tsm_mbv3@0.40"}, (dname, batch)
            assert rows["tsm_r50"]["ratio_to_tsm"] == 1.0
            for row in rows.values():
                assert row["n"] == 2 and row["min"] <= row["median"] <= row["max"]
                assert row["videos_per_s"] == pytest.approx(int(batch) * 1e3 / row["median"])
                assert row["first_call_s"] > 0 and 0 < row["gmacs_ratio"] <= 1
    step = res["train_step"]
    assert (step["frames"], step["batch"], step["autocast"]) == (2, 2, "bf16")
    assert set(step["models"]) == {"tsn_r50", "tsm_r50", "afnet_r50"}
    assert step["models"]["tsn_r50"]["ratio_to_tsn"] == 1.0 and step["models"]["tsm_r50"]["gmacs_ratio"] == 1.0
    assert all(row["peak_mib"] is None and row["n"] == 2 for row in step["models"].values())  # no CUDA here
    assert res["errors"] == {} and res["device"] == "cpu" and res["quick"] is False
    printed = capsys.readouterr().out
    assert "ratio to TSM-R50 (median time)" in printed and "bf16 autocast" in printed
    assert json.loads(printed.strip().splitlines()[-1]) == json.loads(out.read_text())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_bench_quick_on_cuda(tmp_path):
    """`python -m src.bench --device cuda --quick` on tiny sizes: every setting timed with CUDA events, peak
    memory of each training step, no model failing."""
    from src.bench import main

    res = main(["--device", "cuda", "--quick", *TINY, "--out", str(tmp_path / "gpu.json")])
    assert res["device"] == "cuda" and res["errors"] == {}
    assert set(res["inference"]) == {"fp32", "bf16"} and set(res["inference"]["fp32"]) == {"1", "16"}
    assert len(res["inference"]["bf16"]["16"]) == 6  # TSM-R50, TSN-R50, AFNet-TSM-R50 at 0.4 and 1.0, the MBv3 pair
    assert all(row["peak_mib"] > 0 for row in res["train_step"]["models"].values())
