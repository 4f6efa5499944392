"""The benchmarks' shared helpers: interleaved timing, the statistics of ratios, flag checks, kept-run names."""

import argparse
import random
import statistics

import pytest
import torch

from src.bench.common import (
    check_at_least,
    check_ratios,
    compare,
    kept_run_path,
    machine,
    paired_ratios,
    ratio_interval,
    stats,
    time_interleaved,
    timer_for,
    wall_ms,
)


def test_time_interleaved_runs_every_entry_once_per_round_in_shuffled_orders():
    """Each round calls every entry once; the orders differ between rounds (seeded: the same run twice gives the
    same orders); warm-up rounds run but are not kept; the timer's value is what is kept."""
    calls_seen = []
    calls = {k: (lambda k=k: calls_seen.append(k)) for k in "abc"}
    fake_ms = iter(range(1000))
    times = time_interleaved(calls, rounds=4, warmup=2, timer=lambda fn: (fn(), next(fake_ms))[1])
    assert len(calls_seen) == 18 and all(sorted(calls_seen[i:i + 3]) == list("abc") for i in range(0, 18, 3))
    assert len({tuple(calls_seen[i:i + 3]) for i in range(0, 18, 3)}) > 1  # not one fixed order
    assert {k: len(v) for k, v in times.items()} == {"a": 4, "b": 4, "c": 4}
    assert sorted(sum(times.values(), [])) == list(range(6, 18))  # the first 2 rounds (6 calls) dropped
    again = []
    time_interleaved({k: (lambda k=k: again.append(k)) for k in "abc"}, rounds=4, warmup=2)
    assert again == calls_seen


def test_wall_timer_measures_the_call_and_cpu_devices_use_it():
    import time

    assert 15 <= wall_ms(lambda: time.sleep(0.02)) < 1000
    assert timer_for(torch.device("cpu")) is wall_ms


def test_stats_and_paired_ratios_are_per_round():
    assert stats([3.0, 1.0, 2.0]) == {"median": 2.0, "min": 1.0, "max": 3.0, "n": 3}
    p = paired_ratios([1.0, 4.0, 3.0], [2.0, 4.0, 2.0])  # per round: 0.5, 1.0, 1.5
    assert p == {"median": 1.0, "min": 0.5, "max": 1.5}


def test_ratio_interval_is_a_seeded_bootstrap_of_the_ratio_of_medians():
    """Rounds resampled in pairs: a constant per-round ratio gives a zero-width interval whatever the times;
    noisy rounds give an interval around the ratio of medians that narrows with more rounds; same seed, same
    interval."""
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


def test_compare_gives_every_row_its_ratio_to_the_reference_and_none_without_one():
    times = {"ref": [10.0, 20.0, 30.0], "half": [5.0, 10.0, 15.0]}
    rows = compare(times, "ref", "ratio_to_ref")
    assert rows["ref"]["ratio_to_ref"] == 1.0 and rows["half"]["ratio_to_ref"] == 0.5
    assert rows["half"]["ratio_ci90"] == pytest.approx({"lo": 0.5, "hi": 0.5})
    assert rows["half"]["paired_ratio"] == {"median": 0.5, "min": 0.5, "max": 0.5}
    assert rows["half"]["median"] == 10.0 and rows["half"]["n"] == 3
    orphan = compare({"half": [5.0]}, "ref", "ratio_to_ref")["half"]  # the reference failed to run
    assert orphan["ratio_to_ref"] is None and orphan["ratio_ci90"] is None and orphan["paired_ratio"] is None


def test_check_at_least_and_check_ratios_name_the_flag(capsys):
    ap = argparse.ArgumentParser()
    for args, least, message in ((argparse.Namespace(rounds=0), {"--rounds": 1}, "--rounds 0: must be at least 1"),
                                 (argparse.Namespace(train_batch=[16, -1]), {"--train-batch": 1},
                                  "--train-batch -1: must be at least 1")):
        with pytest.raises(SystemExit):
            check_at_least(ap, args, least)
        assert message in capsys.readouterr().err
    check_at_least(ap, argparse.Namespace(rounds=None, warmup=0), {"--rounds": 1, "--warmup": 0})  # passes
    with pytest.raises(SystemExit):
        check_ratios(ap, [0.4, 1.5])
    assert "--ratios 1.5: must be in (0, 1]" in capsys.readouterr().err


def test_kept_runs_are_never_overwritten(tmp_path):
    first = kept_run_path(tmp_path, "2026-12-02T000000Z")
    assert first.name == "2026-12-02T000000Z.json"
    first.write_text("{}")
    second = kept_run_path(tmp_path, "2026-12-02T000000Z")
    assert second.name == "2026-12-02T000000Z-2.json" and first.read_text() == "{}"


def test_machine_names_the_vector_isa_and_threads():
    """The ISA torch dispatches to is part of the machine, so runs on AVX2 and AVX-512 hosts are never pooled."""
    name = machine(torch.device("cpu"))
    assert f"({torch.backends.cpu.get_cpu_capability()}), " in name
    assert f"{torch.get_num_threads()} threads, torch {torch.__version__}" in name
