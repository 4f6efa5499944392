"""`python -m src.bench.loader` on a tiny generated set: both sources, both loaders, the JSON it writes."""

import json

import pytest

from src.bench.loader import main


def test_loader_bench_rows_agreement_and_json(tmp_path, capsys):
    out = tmp_path / "loader.json"
    res = main(["--videos", "2", "--clips", "2", "--batch", "1", "--rounds", "1", "--frames", "2", "--workers", "0",
                "--keep", str(tmp_path / "set"), "--out", str(out)])
    assert [(r["source"], r["frames"], r["workers"]) for r in res["rows"]] == [("jpeg", 2, 0), ("mp4", 2, 0)]
    for r in res["rows"]:
        assert r["ours_clips_s"] > 0 and r["pil_clips_s"] > 0
    # the same frames and crop: the pixels agree to resampling rounding (normalised units)
    assert all(v < 0.05 for v in res["agreement"].values()) and len(res["agreement"]) == 2
    assert json.loads(out.read_text()) == json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_loader_bench_names_a_bad_count(capsys):
    with pytest.raises(SystemExit):
        main(["--rounds", "0"])
    assert "--rounds 0: must be at least 1" in capsys.readouterr().err
