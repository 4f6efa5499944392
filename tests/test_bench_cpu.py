"""`python -m src.bench` (the CPU protocol) on tiny inputs: every row, the ratios, the JSON it writes for the S5
report and the kept run; bad flags named."""

import json

import pytest
import torch

from src.bench import main

TINY = ["--frames", "4", "--size", "32", "--rounds", "2", "--warmup", "0", "--threads", "1"]


def test_bench_rows_ratios_and_json(tmp_path, capsys):
    out = tmp_path / "S5" / "bench.json"
    res = main([*TINY, "--ratios", "0.5", "1.0", "--train-rounds", "2", "--train-warmup", "1", "--out", str(out),
                "--runs-dir", str(tmp_path / "runs")])
    lat = res["latency"]
    assert set(lat) == {"tsm_r50", "tsn_r50", "afnet_tsm_r50@0.50", "afnet_tsm_r50@1.00", "tsm_mbv3",
                        "afnet_tsm_mbv3@0.40"}
    assert lat["tsm_r50"]["ratio_to_tsm"] == 1.0 and lat["tsm_r50"]["gmacs_ratio"] == 1.0
    for row in lat.values():
        assert row["min"] <= row["median"] <= row["max"] and row["n"] == 2
        assert row["ratio_to_tsm"] == pytest.approx(row["median"] / lat["tsm_r50"]["median"])
        assert 0 < row["ratio_ci90"]["lo"] <= row["ratio_ci90"]["hi"]
        assert row["paired_ratio"]["min"] <= row["paired_ratio"]["median"] <= row["paired_ratio"]["max"]
    # fewer frames through the focal branch, fewer MACs; TSN and TSM count the same MACs (the shift is free)
    assert lat["afnet_tsm_r50@0.50"]["gmacs"] < lat["afnet_tsm_r50@1.00"]["gmacs"] < lat["tsm_r50"]["gmacs"]
    assert lat["tsn_r50"]["gmacs"] == lat["tsm_r50"]["gmacs"]
    step = res["train_step"]
    assert (step["batch"], step["layout"], step["warmup"], step["rounds"]) == (1, "nchw", 1, 2)
    assert step["models"]["tsn_r50"]["ratio_to_tsn"] == 1.0 and step["models"]["afnet_r50"]["ratio_to_tsn"] > 0
    assert step["models"]["afnet_r50"]["n"] == 2  # timed after the warm-up
    assert json.loads(out.read_text()) == json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    kept = list((tmp_path / "runs").glob("*.json"))  # the run's copy, named by its start time
    assert [f.name for f in kept] == [f"{res['started']}.json"]
    assert json.loads(kept[0].read_text()) == res
    assert res["device"] == "cpu" and res["prepack"] is torch.backends.mkldnn.is_available()
    assert res["stem_chunk_frames"] == 4 and f"({torch.backends.cpu.get_cpu_capability()}), " in res["machine"]


def test_bench_only_keeps_the_reference_and_skips_training(capsys):
    res = main([*TINY, "--ratios", "0.5", "--only", "tsm_mbv3", "--train-rounds", "0", "--no-prepack"])
    assert set(res["latency"]) == {"tsm_r50", "tsm_mbv3"} and "train_step" not in res and res["prepack"] is False
    assert "training step" not in capsys.readouterr().out


@pytest.mark.parametrize("flag, value, message", [
    ("--train-warmup", "-1", "--train-warmup -1: must be at least 0"),
    ("--warmup", "-1", "--warmup -1: must be at least 0"),
    ("--train-rounds", "-1", "--train-rounds -1: must be at least 0"),
    ("--stem-chunk", "-1", "--stem-chunk -1: must be at least 0"),
    ("--rounds", "0", "--rounds 0: must be at least 1"),
    ("--train-batch", "0", "--train-batch 0: must be at least 1"),
    ("--threads", "0", "--threads 0: must be at least 1"),
    ("--ratios", "0", "--ratios 0.0: must be in (0, 1]"),
    ("--train-layout", "nhwc", "--train-layout: invalid choice: 'nhwc'"),
])
def test_bench_rejects_a_bad_value_naming_the_flag(capsys, flag, value, message):
    with pytest.raises(SystemExit) as e:
        main([flag, value])
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_bench_device_other_than_cpu_goes_to_the_gpu_protocol(capsys):
    """`--device` picks the protocol; the GPU one names a device it cannot use in one line."""
    with pytest.raises(SystemExit, match="--device tpu: expected cpu, cuda or cuda:N"):
        main(["--device", "tpu"])
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="--device cuda: torch .* sees no CUDA device"):
            main(["--device=cuda", "--quick"])
