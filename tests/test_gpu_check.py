"""src.tools.gpu_check, the one command for a GPU machine: its steps, time limits and record (no GPU needed)."""

from __future__ import annotations

import json
import os
import sys
import time

import pytest

from src.tools.gpu_check import install_wheels, main, run_step, step_commands


def test_steps_run_the_gpu_lane_and_the_gpu_benchmark(tmp_path):
    cmds = step_commands("python3", tmp_path)
    assert ["-m", "gpu and not slow"] == cmds["fast"][0][-3:-1]
    assert ["-m", "gpu and slow"] == cmds["slow"][0][-3:-1]
    assert cmds["bench"][0] == ["python3", "-m", "src.bench", "--device", "cuda", "--out",
                                str(tmp_path / "bench-gpu.json")]


def test_a_step_past_its_limit_is_killed_with_its_children(tmp_path):
    marker = tmp_path / "child-survived"
    child = f"import time; time.sleep(4); open({str(marker)!r}, 'w')"
    cmd = [sys.executable, "-c", f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {child!r}]);"
           " time.sleep(60)"]
    t0 = time.monotonic()
    record = run_step("bench", [cmd], tmp_path, limit=2, env=dict(os.environ))
    assert record["outcome"] == "timed out" and time.monotonic() - t0 < 20
    time.sleep(4)
    assert not marker.exists()
    assert "killed after 2 s" in (tmp_path / "bench.log").read_text()


def test_failures_are_recorded_and_the_budget_skips_the_rest(tmp_path, monkeypatch):
    import src.tools.gpu_check as gc

    monkeypatch.setattr(gc, "step_commands", lambda python, out: {
        "env": [[python, "-c", "print('env')"]], "fast": [[python, "-c", "import sys; sys.exit(3)"]],
        "slow": [[python, "-c", "print('never')"]], "bench": []})
    monkeypatch.setattr(gc, "LIMITS", {"env": 30, "fast": 30, "slow": 30, "bench": 30})
    assert main(["--out", str(tmp_path), "--steps", "env,fast", "--wheels", str(tmp_path / "none")]) == 1
    summary = json.loads((tmp_path / "gpu-check.json").read_text())
    assert [(s["step"], s["outcome"], s["returncode"]) for s in summary["steps"]] == [("env", "passed", 0),
                                                                                        ("fast", "failed", 3)]
    assert main(["--out", str(tmp_path), "--steps", "slow", "--budget", "5"]) == 0
    assert json.loads((tmp_path / "gpu-check.json").read_text())["steps"][0]["outcome"] == "skipped (budget spent)"


def test_unknown_step_is_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--out", "x", "--steps", "fast,gpu"])
    assert e.value.code == 2 and "unknown step(s) gpu" in capsys.readouterr().err


def test_no_wheels_folder_uses_what_is_installed(tmp_path):
    assert install_wheels(sys.executable, tmp_path / "none", tmp_path / "site", tmp_path / "w.log")
    assert "no wheels" in (tmp_path / "w.log").read_text()
