"""`python -m src.bench.runs`: the spread of the CPU ratios over kept runs, grouped by setting, and whether runs
reproduce each other within their own noise."""

import json

import pytest

from src.bench.runs import load_runs, main, markdown, summarise

KEY = "12 frames, 224², cpu, 2 threads"


def bench_json(path, ratio, lo, hi, train=None, ci=None, allocator=None, layouts=False):
    """A kept run with the AFNet r=0.4 row at `ratio` (per-round range [lo, hi], 90% interval `ci`) and, with
    `train` = (ratio, lo, hi), a training step: in today's form or, with `layouts`, the older one per layout."""
    row = {"median": 1.0, "min": 1.0, "max": 1.0, "n": 1, "ratio_to_tsm": ratio,
           "paired_ratio": {"median": ratio, "min": lo, "max": hi}}
    if ci:
        row["ratio_ci90"] = {"lo": ci[0], "hi": ci[1]}
    ref = {**row, "ratio_to_tsm": 1.0, "paired_ratio": {"median": 1.0, "min": 1.0, "max": 1.0}}
    run = {"frames": 12, "size": 224, "machine": "cpu, 2 threads",
           "latency": {"tsm_r50": ref, "afnet_tsm_r50@0.40": row}}
    if allocator:
        run["allocator"] = allocator
    if train:
        paired = {"median": train[0], "min": train[1], "max": train[2]}
        run["train_step"] = ({"batch": 1, "nchw": {"ratio": train[0], "paired_ratio": paired}} if layouts else
                             {"batch": 1, "layout": "nchw", "models": {"afnet_r50": {"ratio_to_tsn": train[0],
                                                                                      "paired_ratio": paired}}})
    path.write_text(json.dumps(run))
    return path


def test_spread_and_within_noise(tmp_path):
    """Per setting: the ratio's min / median / max over runs, the widest per-round range, and whether each
    run's ratio lies inside every other run's per-round [min, max]; old and new training steps pooled."""
    paths = [bench_json(tmp_path / "a.json", 0.58, 0.50, 0.70, train=(0.82, 0.80, 0.95), layouts=True),
             bench_json(tmp_path / "b.json", 0.64, 0.55, 0.75, train=(0.92, 0.83, 1.10)),
             bench_json(tmp_path / "c.json", 0.60, 0.52, 0.62, allocator="default"),
             bench_json(tmp_path / "k.json", 0.66, 0.60, 0.70, allocator="keep")]
    runs = load_runs(paths)
    s = summarise(runs)
    keep = KEY + ", malloc keeps freed memory"
    assert set(s) == {KEY, keep}  # an older run's default allocator is today's setting
    af = s[KEY]["afnet_tsm_r50@0.40"]
    assert (af["runs"], af["min"], af["median"], af["max"]) == (3, 0.58, 0.60, 0.64)
    assert (af["round_min"], af["round_max"]) == (0.50, 0.75)
    assert af["within_noise"] is False  # b's 0.64 is above c's per-round max, 0.62
    assert s[KEY]["train nchw"]["runs"] == 2
    assert s[KEY]["train nchw"]["within_noise"] is False  # a's 0.82 is below b's per-round min, 0.83
    assert s[keep]["afnet_tsm_r50@0.40"]["within_noise"] is True
    text = markdown(s, runs)
    assert "| afnet_tsm_r50@0.40 | 3 | 0.580 | 0.600 | 0.640 | [0.500, 0.750] | no | – | – |" in text
    assert af["ci_lo"] is None and af["within_ci"] is None and af["ci_runs"] == 0  # these runs have none
    assert f"## {keep}: 1 run\n\nk.json\n" in text
    ab = summarise(load_runs(paths[:2]))[KEY]["afnet_tsm_r50@0.40"]
    assert ab["within_noise"] is True and ab["runs"] == 2
    # another clip size, or frame-chunked stems, is another setting: never mixed into this spread
    run = json.loads(paths[0].read_text())
    (tmp_path / "small.json").write_text(json.dumps({**run, "size": 64}))
    (tmp_path / "chunked.json").write_text(json.dumps({**run, "stem_chunk_frames": 4}))
    s = summarise(load_runs([*paths, tmp_path / "small.json", tmp_path / "chunked.json"]))
    assert s[KEY]["afnet_tsm_r50@0.40"]["runs"] == 3
    assert s[KEY.replace("224²", "64²")]["afnet_tsm_r50@0.40"]["runs"] == 1
    assert s[KEY + ", stems in 4-frame chunks"]["afnet_tsm_r50@0.40"]["runs"] == 1


def test_every_run_is_checked_against_every_other_runs_interval(tmp_path):
    """With 90% intervals in every run: their widest span, and whether each run's ratio lies inside every other
    run's interval (stricter than the per-round range: two runs can agree within rounds, not within intervals)."""
    a = bench_json(tmp_path / "a.json", 0.58, 0.50, 0.70, ci=(0.57, 0.60))
    b = bench_json(tmp_path / "b.json", 0.59, 0.50, 0.70, ci=(0.575, 0.61))
    c = bench_json(tmp_path / "c.json", 0.62, 0.50, 0.70, ci=(0.60, 0.64))
    ab = summarise(load_runs([a, b]))[KEY]["afnet_tsm_r50@0.40"]
    assert (ab["ci_lo"], ab["ci_hi"], ab["within_ci"], ab["within_noise"]) == (0.57, 0.61, True, True)
    runs = load_runs([a, b, c])
    summary = summarise(runs)
    abc = summary[KEY]["afnet_tsm_r50@0.40"]
    assert abc["within_ci"] is False and abc["within_noise"] is True  # c's 0.62 is outside a's [0.57, 0.60]
    assert "| [0.500, 0.700] | yes | [0.570, 0.640] | no |" in markdown(summary, runs)
    # a run without an interval is checked against the others' intervals, and counted apart
    old = bench_json(tmp_path / "old.json", 0.585, 0.50, 0.70)
    mixed = summarise(load_runs([a, b, old]))
    row = mixed[KEY]["afnet_tsm_r50@0.40"]
    assert (row["runs"], row["ci_runs"], row["within_ci"]) == (3, 2, True)
    assert "| [0.570, 0.610] (2 of 3 runs) | yes |" in markdown(mixed, load_runs([a, b, old]))
    late = bench_json(tmp_path / "late.json", 0.605, 0.50, 0.70)
    assert summarise(load_runs([a, b, late]))[KEY]["afnet_tsm_r50@0.40"]["within_ci"] is False


@pytest.mark.parametrize("name, text, message", [
    ("broken.json", "{not json", "broken.json: not a readable bench JSON"),
    ("other.json", "{}", "other.json: no 'latency' key"),
    ("old.json", json.dumps({"latency": {"tsm_r50": {"median": 1.0, "ratio_to_tsm": 1.0}}}),
     "old.json: latency row 'tsm_r50' has no 'paired_ratio'"),
])
def test_a_bad_file_is_named(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    with pytest.raises(SystemExit, match=message):
        load_runs([tmp_path / name])


def test_main_writes_the_markdown(tmp_path, capsys):
    out = tmp_path / "runs.md"
    main([str(bench_json(tmp_path / "a.json", 0.58, 0.50, 0.70)), "--out", str(out)])
    assert out.read_text().startswith("# make bench: spread over runs") and "a.json" in capsys.readouterr().out
