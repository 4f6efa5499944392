"""The table report: paper numbers with `missing` status and no runs; ours next to the paper's with runs."""

import csv
import json

from src.report import load_tables, main, row_id


def test_report_without_runs_lists_the_paper_numbers(tmp_path):
    (tmp_path / "logs").mkdir()
    rows = main(["S3", "--logs", str(tmp_path / "logs"), "--out", str(tmp_path)])
    assert [r["status"] for r in rows] == ["missing", "cited", "cited", "cited", "missing", "missing", "missing"]
    md = (tmp_path / "S3" / "results.md").read_text()
    assert "| tsn | r50 | 16 |" in md and "76.9" in md and "typo" in md
    with open(tmp_path / "S3" / "results.csv") as f:
        assert len(list(csv.DictReader(f))) == 7
    assert (tmp_path / "S3" / "accuracy_vs_gflops.png").stat().st_size > 0


def test_report_averages_seeds_and_marks_unfinished(tmp_path):
    spec = load_tables()["R2"]
    logs = tmp_path / "logs"
    for seed, top1 in ((0, 20.0), (1, 22.0)):
        d = logs / f"run{seed}"
        d.mkdir(parents=True)
        (d / "summary.json").write_text(json.dumps({"row_id": row_id("R2", spec["rows"][1]), "seed": seed,
                                                    "best": {"metric": top1, "gflops": 19.0, "ratios": [0.5, 0.6]}}))
        (d / "DONE").write_text("")
    running = logs / "run2"
    running.mkdir()
    (running / "summary.json").write_text(json.dumps({"row_id": row_id("R2", spec["rows"][2]), "best": {}}))
    rows = main(["R2", "--logs", str(logs), "--out", str(tmp_path)])
    assert [r["status"] for r in rows] == ["missing", "done", "unfinished"]
    assert rows[1]["runs"] == 2 and rows[1]["ours"] == 21.0 and abs(rows[1]["ours_std"] - 1.414) < 1e-3
    assert abs(rows[1]["delta"] - (21.0 - 26.8)) < 1e-9
    assert (tmp_path / "R2" / "ratio_per_block.png").is_file()
