"""`python -m src.bench` on tiny inputs: every row, the ratios, the JSON it writes for the S5 report."""

import json

import pytest
import torch

from src.bench import main


def test_bench_rows_ratios_and_json(tmp_path, capsys):
    out = tmp_path / "S5" / "bench.json"
    res = main(["--frames", "4", "--size", "64", "--rounds", "2", "--warmup", "0", "--ratios", "0.5", "1.0",
                "--threads", "1", "--train-rounds", "2", "--train-warmup", "1", "--out", str(out),
                "--runs-dir", str(tmp_path / "runs")])
    lat = res["latency"]
    assert set(lat) == {"tsm_r50", "tsn_r50", "afnet_tsm_r50@0.50", "afnet_tsm_r50@1.00", "tsm_mbv3",
                        "afnet_tsm_mbv3@0.40"}
    assert lat["tsm_r50"]["ratio_to_tsm"] == 1.0 and lat["tsm_r50"]["gmacs_ratio"] == 1.0
    for row in lat.values():
        assert row["min"] <= row["median"] <= row["max"] and row["n"] == 2
        assert isinstance(row["page_faults"], int) and row["page_faults"] >= 0
    # fewer frames through the focal branch, fewer MACs; TSN and TSM count the same MACs (the shift is free)
    assert lat["afnet_tsm_r50@0.50"]["gmacs"] < lat["afnet_tsm_r50@1.00"]["gmacs"] < lat["tsm_r50"]["gmacs"]
    assert lat["tsn_r50"]["gmacs"] == lat["tsm_r50"]["gmacs"]
    assert res["train_step"]["nchw"]["ratio"] > 0 and res["train_step"]["cl"]["ratio"] > 0
    assert res["train_step"]["warmup"] == 1 and res["train_step"]["nchw"]["afnet_r50"]["n"] == 2  # timed after it
    assert lat["tsm_r50"]["paired_ratio"] == {"median": 1.0, "min": 1.0, "max": 1.0}
    p = lat["afnet_tsm_r50@0.50"]["paired_ratio"]
    assert p["min"] <= p["median"] <= p["max"]
    assert lat["tsm_r50"]["ratio_ci90"] == {"lo": 1.0, "hi": 1.0}
    for row in [*lat.values(), res["train_step"]["nchw"]]:
        assert row["ratio_ci90"]["lo"] <= row["ratio_ci90"]["hi"] and row["ratio_ci90"]["lo"] > 0
    assert json.loads(out.read_text()) == json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    kept = list((tmp_path / "runs").glob("*.json"))  # the run's copy, named by its start time and allocator
    assert [f.name for f in kept] == [f"{res['started']}-default.json"]
    assert json.loads(kept[0].read_text()) == res
    # the ISA torch dispatches to is part of the machine, so runs on AVX2 and AVX-512 hosts are never pooled
    assert f"({torch.backends.cpu.get_cpu_capability()}), " in res["machine"]
    assert res["prepack"] is torch.backends.mkldnn.is_available()  # every model's convs alike
    assert res["stem_chunk_frames"] == 4


def test_kept_runs_are_never_overwritten(tmp_path):
    from src.bench import kept_run_path

    first = kept_run_path(tmp_path, "2026-12-02T000000Z", "keep")
    assert first.name == "2026-12-02T000000Z-keep.json"
    first.write_text("{}")
    second = kept_run_path(tmp_path, "2026-12-02T000000Z", "keep")
    assert second.name == "2026-12-02T000000Z-keep-2.json" and first.read_text() == "{}"


def test_minor_faults_count_fresh_pages():
    """The per-forward fault counter sees fresh anonymous memory being touched: a new 64 MiB mapping, one
    byte written per 4 KiB page, costs at least one fault per 2 MiB (huge pages, where the kernel grants
    them) and at most one per page."""
    import mmap
    import sys

    import pytest

    from src.bench import minor_faults

    if not sys.platform.startswith("linux"):
        pytest.skip("minor faults are counted on Linux")
    size, page = 64 * 2**20, 4096
    buf = mmap.mmap(-1, size)
    before = minor_faults()
    for i in range(0, size, page):
        buf[i] = 1
    assert size // (2 * 2**20) <= minor_faults() - before <= size // page + 64
    buf.close()


def test_paired_ratios_are_per_round():
    from src.bench import paired_ratios

    p = paired_ratios([1.0, 4.0, 3.0], [2.0, 4.0, 2.0])  # per round: 0.5, 1.0, 1.5
    assert p == {"median": 1.0, "min": 0.5, "max": 1.5}


def test_ratio_interval_is_a_seeded_bootstrap_of_the_ratio_of_medians():
    """Rounds resampled in pairs: a constant per-round ratio gives a zero-width interval whatever the times;
    noisy rounds give an interval around the ratio of medians that narrows with more rounds; same seed, same
    interval."""
    import random
    import statistics

    from src.bench import ratio_interval

    ref = [100.0, 300.0, 200.0, 250.0]
    assert ratio_interval([0.6 * t for t in ref], ref) == pytest.approx({"lo": 0.6, "hi": 0.6})
    rng = random.Random(1)

    def noisy(n):
        r = [rng.uniform(250, 350) for _ in range(n)]
        return [rng.uniform(150, 210) for _ in range(n)], r

    a, r = noisy(20)
    ci = ratio_interval(a, r)
    assert ci["lo"] < statistics.median(a) / statistics.median(r) < ci["hi"]
    assert ratio_interval(a, r) == ci and ratio_interval(a, r, seed=1) != ci
    a2, r2 = noisy(400)
    ci2 = ratio_interval(a2, r2)
    assert ci2["hi"] - ci2["lo"] < (ci["hi"] - ci["lo"]) / 2
    assert ratio_interval(a, r, level=0.5)["hi"] - ratio_interval(a, r, level=0.5)["lo"] < ci["hi"] - ci["lo"]


def test_keep_allocator_runs_in_its_own_process_and_is_recorded(tmp_path):
    """--allocator keep runs in its own process (it changes glibc's malloc for good) and says so in the JSON."""
    import subprocess
    import sys

    out = tmp_path / "bench.json"
    subprocess.run([sys.executable, "-m", "src.bench", "--allocator", "keep", "--frames", "4", "--size", "64",
                    "--rounds", "1", "--warmup", "0", "--ratios", "0.5", "--threads", "1", "--train-rounds", "0",
                    "--only", "afnet_tsm_r50@0.50", "--out", str(out)], check=True, capture_output=True)
    res = json.loads(out.read_text())
    assert res["allocator"] == "keep"
    assert set(res["latency"]) == {"tsm_r50", "afnet_tsm_r50@0.50"}
    assert 0 < res["latency"]["afnet_tsm_r50@0.50"]["gmacs_ratio"] < 1


def _bench_json(path, allocator, ratio, lo, hi, train=None, ci=None):
    row = {"median": 1.0, "min": 1.0, "max": 1.0, "n": 1, "ratio_to_tsm": ratio,
           "paired_ratio": {"median": ratio, "min": lo, "max": hi}}
    if ci:
        row["ratio_ci90"] = {"lo": ci[0], "hi": ci[1]}
    ref = {**row, "ratio_to_tsm": 1.0, "paired_ratio": {"median": 1.0, "min": 1.0, "max": 1.0}}
    run = {"allocator": allocator, "frames": 12, "size": 224, "machine": "cpu, 2 threads",
           "latency": {"tsm_r50": ref, "afnet_tsm_r50@0.40": row}}
    if train:
        paired = {"min": train[1], "max": train[2]}
        run["train_step"] = {"batch": 1, "nchw": {"ratio": train[0], "paired_ratio": paired}}
    path.write_text(json.dumps(run))
    return path


def test_bench_runs_spread_and_within_noise(tmp_path):
    """Per allocator: the ratio's min / median / max over runs, the widest per-round range, and whether each
    run's ratio lies inside every other run's per-round [min, max]."""
    from src.bench_runs import load_runs, markdown, summarise

    paths = [_bench_json(tmp_path / "a.json", "default", 0.58, 0.50, 0.70, train=(0.82, 0.80, 0.95)),
             _bench_json(tmp_path / "b.json", "default", 0.64, 0.55, 0.75, train=(0.92, 0.83, 1.10)),
             _bench_json(tmp_path / "c.json", "default", 0.60, 0.52, 0.62),
             _bench_json(tmp_path / "k.json", "keep", 0.66, 0.60, 0.70)]
    runs = load_runs(paths)
    s = summarise(runs)
    default = "default allocator, 12 frames, 224², cpu, 2 threads"
    keep = default.replace("default", "keep")
    assert set(s) == {default, keep}
    af = s[default]["afnet_tsm_r50@0.40"]
    assert (af["runs"], af["min"], af["median"], af["max"]) == (3, 0.58, 0.60, 0.64)
    assert (af["round_min"], af["round_max"]) == (0.50, 0.75)
    assert af["within_noise"] is False  # b's 0.64 is above c's per-round max, 0.62
    assert s[default]["train nchw"]["runs"] == 2
    assert s[default]["train nchw"]["within_noise"] is False  # a's 0.82 is below b's per-round min, 0.83
    assert s[keep]["afnet_tsm_r50@0.40"]["within_noise"] is True
    text = markdown(s, runs)
    assert "| afnet_tsm_r50@0.40 | 3 | 0.580 | 0.600 | 0.640 | [0.500, 0.750] | no | – | – |" in text
    assert af["ci_lo"] is None and af["within_ci"] is None and af["ci_runs"] == 0  # older runs have none
    assert f"## {keep}: 1 run\n\nk.json\n" in text
    ab = summarise(load_runs(paths[:2]))[default]["afnet_tsm_r50@0.40"]
    assert ab["within_noise"] is True and ab["runs"] == 2
    # another clip size is another setting: never mixed into the 224² spread
    run = json.loads(paths[0].read_text())
    (tmp_path / "small.json").write_text(json.dumps({**run, "size": 64}))
    s = summarise(load_runs([*paths, tmp_path / "small.json"]))
    assert s[default]["afnet_tsm_r50@0.40"]["runs"] == 3
    assert s[default.replace("224²", "64²")]["afnet_tsm_r50@0.40"]["runs"] == 1
    # frame-chunked stems are another setting too (runs before them have no key)
    (tmp_path / "chunked.json").write_text(json.dumps({**run, "stem_chunk_frames": 4}))
    s = summarise(load_runs([*paths, tmp_path / "chunked.json"]))
    assert s[default]["afnet_tsm_r50@0.40"]["runs"] == 3
    assert s[default + ", stems in 4-frame chunks"]["afnet_tsm_r50@0.40"]["runs"] == 1


def test_bench_runs_names_a_bad_file(tmp_path):
    import pytest

    from src.bench_runs import load_runs

    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(SystemExit, match="broken.json"):
        load_runs([bad])
    other = tmp_path / "other.json"
    other.write_text("{}")
    with pytest.raises(SystemExit, match="other.json: no 'latency'"):
        load_runs([other])
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"latency": {"tsm_r50": {"median": 1.0, "ratio_to_tsm": 1.0}}}))
    with pytest.raises(SystemExit, match="old.json: latency row 'tsm_r50' has no 'paired_ratio'"):
        load_runs([old])


def test_bench_rejects_negative_counts_naming_the_flag(capsys):
    for flag in ("--train-warmup", "--warmup", "--train-rounds", "--stem-chunk"):
        with pytest.raises(SystemExit):
            main([flag, "-1"])
        assert f"{flag} -1: must be at least 0" in capsys.readouterr().err
    for flag in ("--rounds", "--train-batch"):
        with pytest.raises(SystemExit):
            main([flag, "0"])
        assert f"{flag} 0: must be at least 1" in capsys.readouterr().err


def test_bench_runs_checks_every_run_against_every_other_runs_interval(tmp_path):
    """With 90% intervals in every run: their widest span, and whether each run's ratio lies inside every other
    run's interval (stricter than the per-round range: two runs can agree within rounds, not within intervals)."""
    from src.bench_runs import load_runs, markdown, summarise

    a = _bench_json(tmp_path / "a.json", "default", 0.58, 0.50, 0.70, ci=(0.57, 0.60))
    b = _bench_json(tmp_path / "b.json", "default", 0.59, 0.50, 0.70, ci=(0.575, 0.61))
    c = _bench_json(tmp_path / "c.json", "default", 0.62, 0.50, 0.70, ci=(0.60, 0.64))
    key = "default allocator, 12 frames, 224², cpu, 2 threads"
    ab = summarise(load_runs([a, b]))[key]["afnet_tsm_r50@0.40"]
    assert (ab["ci_lo"], ab["ci_hi"], ab["within_ci"], ab["within_noise"]) == (0.57, 0.61, True, True)
    runs = load_runs([a, b, c])
    summary = summarise(runs)
    abc = summary[key]["afnet_tsm_r50@0.40"]
    assert abc["within_ci"] is False and abc["within_noise"] is True  # c's 0.62 is outside a's [0.57, 0.60]
    assert "| [0.500, 0.700] | yes | [0.570, 0.640] | no |" in markdown(summary, runs)
    # a run from before the intervals is checked against the others' intervals, and counted apart
    old = _bench_json(tmp_path / "old.json", "default", 0.585, 0.50, 0.70)
    mixed = summarise(load_runs([a, b, old]))
    row = mixed[key]["afnet_tsm_r50@0.40"]
    assert (row["runs"], row["ci_runs"], row["within_ci"]) == (3, 2, True)
    assert "| [0.570, 0.610] (2 of 3 runs) | yes |" in markdown(mixed, load_runs([a, b, old]))
    assert summarise(load_runs([a, old]))[key]["afnet_tsm_r50@0.40"]["within_ci"] is True
    late = _bench_json(tmp_path / "late.json", "default", 0.605, 0.50, 0.70)
    assert summarise(load_runs([a, b, late]))[key]["afnet_tsm_r50@0.40"]["within_ci"] is False
