"""The fault suite: each way a run, a sweep, a report or a data tool was seen to lie or crash, tried again.

Training cases use the fake run of tests/helpers.py (seconds per fit); the long ones (real data, signals to a
process group, resumption compared bit for bit through the CLI) are in tests/test_faults_slow.py.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback

from src.callbacks.preemption import PREEMPTED_EXIT
from src.train import train
from src.utils.config import ConfigError, validate
from src.utils.run_folder import identity_hash, job_dirname, run_dir, run_identity, write_record
from tests.helpers import (
    FAKE,
    SigtermAt,
    assert_same_weights,
    compose_train,
    fake_cfg,
    final_state,
    tiny_backbone,
    tiny_overrides,
)

ROOT = Path(__file__).resolve().parent.parent


def cli(args: list[str], timeout: int = 300, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, **kw)


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith(("error", "config error"))]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted 3-epoch fake run (18 steps): its final weights and metrics.csv."""
    tmp = tmp_path_factory.mktemp("reference")
    result = train(fake_cfg(tmp, "trainer.max_epochs=3"))
    weights, step = final_state(tmp / "run")
    assert step == 18
    return {"weights": weights, "result": result, "csv": (tmp / "run" / "csv" / "metrics.csv").read_text()}


def train_rows(run: Path) -> list[int]:
    """The steps of the per-batch training rows of a run's metrics.csv, in file order."""
    import csv

    with open(run / "csv" / "metrics.csv") as f:
        return [int(float(r["step"])) for r in csv.DictReader(f) if r.get("train/loss_step")]


# ---- resumption with loader workers ------------------------------------------------------------------------
def test_sigterm_mid_epoch_with_loader_workers_resumes_bit_equal(reference, tmp_path, capsys):
    """SIGTERM in the middle of epoch 1 with 2 loader workers: one checkpoint, one line saying how to resume, exit
    75; `ckpt_path=last` in the same folder ends bit-equal to the uninterrupted run, and the logs append."""
    with pytest.raises(SystemExit) as stop:
        train(fake_cfg(tmp_path, "trainer.max_epochs=3", "num_workers=2"), callbacks=[SigtermAt(8)])
    assert stop.value.code == PREEMPTED_EXIT
    out = capsys.readouterr().out
    assert "stopped by SIGTERM at step 8" in out and "ckpt_path=last" in out
    assert final_state(tmp_path / "run")[1] == 8
    assert train_rows(tmp_path / "run") == list(range(8))

    resumed = train(fake_cfg(tmp_path, "trainer.max_epochs=3", "num_workers=2", "ckpt_path=last"))
    weights, step = final_state(tmp_path / "run")
    assert step == 18
    assert_same_weights(reference["weights"], weights)
    assert resumed["metrics"]["val/top1"] == reference["result"]["metrics"]["val/top1"]
    assert train_rows(tmp_path / "run") == list(range(18))  # appended, nothing lost or repeated


class CrashAtEpochStart(Callback):
    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("the node went away")


def test_crash_at_an_epoch_boundary_with_loader_workers_resumes_bit_equal(reference, tmp_path):
    """A run that dies between epochs (last.ckpt from the end of epoch 1) resumes epoch 2 in epoch 2's order."""
    with pytest.raises(RuntimeError):
        train(fake_cfg(tmp_path, "trainer.max_epochs=3", "num_workers=2"), callbacks=[CrashAtEpochStart(2)])
    assert final_state(tmp_path / "run")[1] == 12
    train(fake_cfg(tmp_path, "trainer.max_epochs=3", "num_workers=2", "ckpt_path=last"))
    assert_same_weights(reference["weights"], final_state(tmp_path / "run")[0])


def test_sigint_saves_once_and_exits_75(reference, tmp_path, capsys):
    """Ctrl-C (SIGINT) stops like SIGTERM: after the batch, one checkpoint, exit 75; the resumption is exact."""
    with pytest.raises(SystemExit) as stop:
        train(fake_cfg(tmp_path, "trainer.max_epochs=3"), callbacks=[SigtermAt(3, signal.SIGINT)])
    assert stop.value.code == PREEMPTED_EXIT and "stopped by SIGINT at step 3" in capsys.readouterr().out
    train(fake_cfg(tmp_path, "trainer.max_epochs=3", "ckpt_path=last"))
    assert_same_weights(reference["weights"], final_state(tmp_path / "run")[0])


def test_signal_during_validation_waits_for_its_end(reference, tmp_path):
    """A SIGTERM during epoch 0's validation stops after that validation (its metrics logged), not inside it."""
    import csv

    with pytest.raises(SystemExit):
        train(fake_cfg(tmp_path, "trainer.max_epochs=3"), callbacks=[SigtermAt(6, in_validation=True)])
    assert final_state(tmp_path / "run")[1] == 6
    with open(tmp_path / "run" / "csv" / "metrics.csv") as f:
        assert [r["epoch"] for r in csv.DictReader(f) if r.get("val/top1")] == ["0"]
    train(fake_cfg(tmp_path, "trainer.max_epochs=3", "ckpt_path=last"))
    assert_same_weights(reference["weights"], final_state(tmp_path / "run")[0])


# ---- run folders and ckpt_path=last -------------------------------------------------------------------------
def test_two_runs_started_together_get_two_folders(tmp_path):
    """Two runs of the same settings started at once (here both fail at validation, which takes a second):
    two folders, each with its own FAILED record."""
    args = ["-m", "src.train", "rt=2", f"paths.log_dir={tmp_path}"]
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    procs = [subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    errs = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [2, 2], errs
    folders = sorted(p.parent for p in tmp_path.rglob("FAILED"))
    assert len(folders) == 2 and folders[0] != folders[1]
    assert all("rt=2" in (f / "FAILED").read_text() for f in folders)


def runs_dir(log_dir: Path, cfg) -> Path:
    return log_dir / "runs" / cfg.run_name


def fake_cfg_in(folder: Path, log_dir: Path, *extra: str):
    """The fake run's config with its output in `folder` and paths.log_dir at `log_dir`."""
    return compose_train([*FAKE, *extra], folder, log_dir=log_dir)


def stopped_run(log_dir: Path, name: str, *extra: str) -> Path:
    """A fake run stopped by SIGTERM at step 2 in <log_dir>/runs/<run_name>/<name>; returns its folder."""
    folder = runs_dir(log_dir, fake_cfg_in(log_dir / "tmp", log_dir, *extra)) / name
    with pytest.raises(SystemExit):
        train(fake_cfg_in(folder, log_dir, "trainer.max_epochs=2", *extra), callbacks=[SigtermAt(2)])
    return folder


def test_last_refuses_a_stopped_run_of_other_settings_naming_the_keys(tmp_path):
    logs = tmp_path / "logs"
    stopped_run(logs, "seed0_a", "optim.lr=0.1")
    cfg = fake_cfg_in(logs / "x" / "seed0_b", logs, "trainer.max_epochs=2", "ckpt_path=last")
    with pytest.raises(ConfigError, match=r"other settings: optim\.lr=0\.1 \(now 0\.05\)"):
        train(cfg)


def test_last_never_resumes_a_finished_run(tmp_path, capsys):
    """ckpt_path=last with only a finished run of this configuration: nothing trains, the finished run is named;
    a finished run of other settings is never continued (a new run starts)."""
    logs = tmp_path / "logs"
    cfg = fake_cfg_in(tmp_path / "first", logs, "trainer.max_epochs=1")
    done = runs_dir(logs, cfg) / "seed0_done"
    train(fake_cfg_in(done, logs, "trainer.max_epochs=1"))
    assert (done / "DONE").is_file()
    again = train(fake_cfg_in(runs_dir(logs, cfg) / "seed0_new", logs, "trainer.max_epochs=1", "ckpt_path=last"))
    assert again["skipped"] and again["output_dir"] == str(done)
    assert "nothing to resume" in capsys.readouterr().out
    assert not (runs_dir(logs, cfg) / "seed0_new" / "checkpoints").exists()

    other = train(fake_cfg_in(runs_dir(logs, cfg) / "seed0_other", logs, "trainer.max_epochs=1", "optim.lr=0.1",
                              "ckpt_path=last"))
    assert not other.get("skipped") and "starting from scratch" in capsys.readouterr().out
    assert final_state(runs_dir(logs, cfg) / "seed0_other")[1] == 6


def test_last_picks_the_newest_stopped_run_of_the_same_configuration(tmp_path):
    """The run-folder resolver of `python -m src.train ckpt_path=last`: the stopped run of the same settings, else
    the finished one (nothing to resume), else a new folder; a run of other settings is never chosen."""
    cfg = fake_cfg(tmp_path, "ckpt_path=last")
    prefix = tmp_path / "runs" / "name" / "seed0"
    same, other, finished = (Path(f"{prefix}_{s}") for s in ("1", "2", "3"))
    for folder, identity in ((same, run_identity(cfg)), (other, {**run_identity(cfg), "optim.lr": 9.0}),
                             (finished, run_identity(cfg))):
        (folder / "checkpoints").mkdir(parents=True)
        (folder / "checkpoints" / "last.ckpt").write_bytes(b"")
        write_record(folder, identity)
    (finished / "DONE").write_text("")
    assert run_dir(str(prefix), "new", _root_=cfg) == str(same)
    shutil.rmtree(same)  # only a finished run of these settings is left: its folder (src.train skips it)
    assert run_dir(str(prefix), "new", _root_=cfg) == str(finished)
    shutil.rmtree(finished)
    assert run_dir(str(prefix), "new", _root_=cfg) == f"{prefix}_new"


def test_run_identity_ignores_resume_keys_only():
    base = run_identity(compose_train([]))
    assert run_identity(compose_train(["num_workers=7", "trainer.enable_progress_bar=false", "logger=none",
                                       "ckpt_path=last", "paths.log_dir=/elsewhere"])) == base
    for key in ("data_root=/other", "optim.lr=0.5", "seed=1", "trainer.max_epochs=3"):
        assert identity_hash(run_identity(compose_train([key]))) != identity_hash(base), key


# ---- sweeps -------------------------------------------------------------------------------------------------
def test_sweep_job_folders_name_every_key_that_changes_the_run(tmp_path):
    """data_root is left out of the readable part of a job's folder name; the hash of the run still tells two
    data roots apart (they shared a folder, and the second job was skipped as finished)."""
    a = compose_train(["data_root=/data/a"])
    b = compose_train(["data_root=/data/b"])
    c = compose_train(["data_root=/data/a", "num_workers=9"])
    assert job_dirname("rt=0.5", _root_=a) != job_dirname("rt=0.5", _root_=b)
    assert job_dirname("rt=0.5", _root_=a) == job_dirname("rt=0.5", _root_=c)
    assert job_dirname("rt=0.5", _root_=a).startswith("rt=0.5-")


def test_sweep_with_a_failing_job_finishes_the_others_and_a_relaunch_retries_it(tmp_path):
    """Job seed=1 fails (a flaky node: tests.helpers.fakes.FailIf); seeds 0 and 2 still run; the sweep ends with
    status 1 and a line naming the failed job. The same command again skips 0 and 2 and retries 1, which now
    finishes."""
    sweep = ["-m", "src.train", "--multirun", *FAKE, "trainer.max_epochs=1", f"paths.log_dir={tmp_path}",
             f"hydra.sweep.dir={tmp_path / 'sweep'}", "seed=0,1,2",
             "+callbacks.flaky._target_=tests.helpers.fakes.FailIf",
             "+callbacks.flaky.seed=${seed}", "+callbacks.flaky.bad_seed=1"]
    first = cli_env(sweep, {"AFNET_TEST_FAIL": "1"})
    assert first.returncode == 1, first.stderr[-2000:]
    assert "3 job(s): 2 finished, 1 failed" in first.stdout
    failed = list((tmp_path / "sweep").rglob("FAILED"))
    assert len(failed) == 1 and "seed1" in str(failed[0]) and "RuntimeError: flaky" in failed[0].read_text()
    assert len(list((tmp_path / "sweep").rglob("DONE"))) == 2

    second = cli_env(sweep, {})
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout.count("finished earlier, skipping") == 2
    assert "3 job(s): 3 finished, 0 failed" in second.stdout
    assert not list((tmp_path / "sweep").rglob("FAILED")) and len(list((tmp_path / "sweep").rglob("DONE"))) == 3


def cli_env(args: list[str], extra_env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "AFNET_TEST_FAIL"}
    env.update({"WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore", **extra_env})
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


# ---- reports ------------------------------------------------------------------------------------------------
def write_run(folder: Path, row: str, seed: int, metric: float, done=True, summary_extra=None, failed=None):
    folder.mkdir(parents=True)
    if metric is not None:
        (folder / "summary.json").write_text(json.dumps({"row_id": row, "seed": seed,
                                                         "best": {"metric": metric, "gflops": 1.0},
                                                         **(summary_extra or {})}))
    if done:
        (folder / "DONE").write_text("")
    if failed:
        (folder / ".hydra").mkdir()
        (folder / ".hydra" / "config.yaml").write_text(f"row_id: {row}\nseed: {seed}\n")
        (folder / "FAILED").write_text(failed)


def test_report_counts_only_full_finished_runs(tmp_path):
    from src.report import load_tables, main, row_id

    spec = load_tables()["R2"]
    rid1, rid2 = row_id("R2", spec["rows"][1]), row_id("R2", spec["rows"][2])
    logs = tmp_path / "logs"
    write_run(logs / "a", rid1, 0, 20.0, summary_extra={"full": True})
    write_run(logs / "b", rid1, 1, 90.0, summary_extra={"full": False, "limits": {"limit_train_batches": 2}})
    write_run(logs / "c", rid2, 0, 50.0, summary_extra={"full": False, "limits": {"fast_dev_run": True}})
    rows = main(["R2", "--logs", str(logs), "--out", str(tmp_path / "out")])
    assert rows[1]["runs"] == 1 and rows[1]["ours"] == 20.0
    assert rows[2]["status"] == "debug" and rows[2]["ours"] is None


def test_report_shows_failed_jobs_as_failed(tmp_path):
    from src.report import load_tables, main, row_id

    rid = row_id("R2", load_tables()["R2"]["rows"][1])
    write_run(tmp_path / "logs" / "a", rid, 0, None, done=False, failed="ConfigError: rt=1.5: must be in (0, 1]\n")
    rows = main(["R2", "--logs", str(tmp_path / "logs"), "--out", str(tmp_path / "out")])
    assert rows[1]["status"] == "failed"
    assert "rt=1.5: must be in (0, 1]" in (tmp_path / "out" / "R2" / "results.md").read_text()


def test_report_missing_logs_folder_is_an_error(tmp_path, capsys):
    from src.report import main

    with pytest.raises(SystemExit) as e:
        main(["R2", "--logs", str(tmp_path / "typo"), "--out", str(tmp_path / "out")])
    assert e.value.code == 2 and "typo: no such folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_report_never_overwrites_committed_results_unless_asked(tmp_path, capsys):
    from src.report import main

    out = tmp_path / "experiments"
    (out / "R2").mkdir(parents=True)
    (out / "R2" / "results.md").write_text("the published run\n")
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    for cmd in (["init", "-q"], ["add", "."], ["commit", "-qm", "results"]):
        subprocess.run([*git, *cmd], check=True, capture_output=True)
    (tmp_path / "logs").mkdir()
    with pytest.raises(SystemExit) as e:
        main(["R2", "--logs", str(tmp_path / "logs"), "--out", str(out)])
    assert e.value.code == 2 and "--overwrite" in capsys.readouterr().err
    assert (out / "R2" / "results.md").read_text() == "the published run\n"
    main(["R2", "--logs", str(tmp_path / "logs"), "--out", str(out), "--overwrite"])
    assert "| method |" in (out / "R2" / "results.md").read_text()


# ---- bad input: one line, no traceback ----------------------------------------------------------------------
@pytest.mark.parametrize("override,message", [
    ("seed=abc", "seed='abc': expected an integer >= 0"), ("num_workers=-1", "num_workers=-1: expected an integer"),
    ("optim.lr=0", "optim.lr=0: expected a number > 0"), ("trainer.max_epochs=0", "trainer.max_epochs=0"),
    ("dataset.crop_size=0", "dataset.crop_size=0"), ("loss.lambda_rt=x", "loss.lambda_rt='x'"),
    ("optim.lr_steps=5", "optim.lr_steps=5"), ("dataset.scale_size=[8,8]", "larger than dataset.scale_size"),
])
def test_bad_numbers_name_their_key(override, message):
    with pytest.raises(ConfigError) as e:
        validate(compose_train([override]))
    assert message in str(e.value)


def test_train_cli_bad_value_is_one_line_and_recorded(tmp_path):
    proc = cli(["-m", "src.train", "seed=abc", f"paths.log_dir={tmp_path}"])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert error_lines(proc.stderr) == ["error: seed='abc': expected an integer >= 0 (the random seed)"]
    assert len(list(tmp_path.rglob("FAILED"))) == 1


def test_missing_pretrained_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="pretrained=/nope.ckpt: no such file"):
        train(fake_cfg(tmp_path, "pretrained=/nope.ckpt"))


@pytest.mark.parametrize("extra", [["batch_size=64"], ["batch_size=32", "debug=fast"]])
def test_batch_larger_than_the_dataset_is_an_error(extra, tiny_data_root, tmp_path):
    """18 training videos: a batch of 64 (or debug=fast's one batch of 32) would train 0 steps and end rc 0."""
    from src.data import DataConfigError

    cfg = compose_train([*tiny_overrides(tiny_data_root), *tiny_backbone("r18"), *extra], tmp_path)
    with pytest.raises(DataConfigError, match=r"batch_size=\d+: the train list .* holds 18 videos"):
        train(cfg)


def test_wandb_online_without_a_key_fails_at_once(tmp_path, monkeypatch):
    from src.utils.loggers import build_loggers

    for var in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    cfg = compose_train(["logger=wandb"], tmp_path)
    with pytest.raises(ConfigError, match="WANDB_MODE=offline"):
        build_loggers(cfg)


@pytest.mark.parametrize("args,message", [
    (["ratio=5"], "ratio=5: expected a number >= 0.0 and <= 1.0"), (["input_size=0"], "input_size=0"),
    (["ratio=abc"], "ratio='abc'"), (["backbone=r999"], "Available options in 'backbone': mbv3"),
])
def test_flops_bad_values_are_one_line(args, message, capsys):
    from src.flops import main

    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("module", ["src.report", "src.data.check", "src.data.prepare.__main__", "src.flops"])
def test_every_tool_has_help(module, capsys):
    import importlib

    with pytest.raises(SystemExit) as e:
        importlib.import_module(module).main(["--help"])
    assert e.value.code == 0 and "python -m src." in capsys.readouterr().out


# ---- data tools ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["zero-byte", "corrupt"])
def test_check_decode_fails_broken_jpegs(damage, tmp_path, capsys):
    from src.data.check import main as check_main
    from tests.helpers.official_data import make_official_copy

    d = make_official_copy("sthv1", tmp_path)
    frame = d["src"] / "20bn-something-something-v1" / "1001" / "00004.jpg"
    frame.write_bytes(b"" if damage == "zero-byte" else frame.read_bytes()[:200] + b"\x00" * 50)
    assert check_main(["sthv1", *d["overrides"][1:]]) == 0  # counted, not decoded
    assert check_main(["sthv1", *d["overrides"][1:], "--decode"]) == 1
    out = capsys.readouterr().out
    assert f"{'zero-byte' if damage == 'zero-byte' else 'undecodable'} frame: " in out and "00004.jpg" in out


def test_prepare_no_extract_reports_an_undecodable_video_and_writes_lists(tmp_path):
    from tests.helpers.official_data import make_official_copy

    d = make_official_copy("minik", tmp_path, broken=True, extract=False)
    assert d["summary"]["train"]["failed"] == 1 and d["summary"]["train"]["listed"] == 4
    assert "broken0001\tdecode failed" in (d["out"] / "prepare_report.txt").read_text()
    assert len((d["out"] / "train_videos.txt").read_text().splitlines()) == 4


def test_failed_prepare_rerun_keeps_the_earlier_outputs(tmp_path, capsys):
    from src.data.prepare.__main__ import main as prepare_main
    from tests.helpers.official_data import make_official_copy

    d = make_official_copy("sthv1", tmp_path)
    before = {p.name: p.read_bytes() for p in d["out"].glob("*.txt")}
    link = os.readlink(d["out"] / "frames")
    empty = tmp_path / "wrong_frames"
    empty.mkdir()
    assert prepare_main(["sthv1", "--src", str(d["src"]), "--out", str(d["out"]), "--frames-from", str(empty)]) == 1
    assert "earlier lists left as they were" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in d["out"].glob("*.txt") if p.name in before} == before
    assert os.readlink(d["out"] / "frames") == link and (d["out"] / "prepare_report.failed.txt").is_file()


def test_prepare_rerun_with_corrected_media_replaces_the_link(tmp_path):
    from src.data.prepare import prepare
    from tests.helpers.official_data import make_official_copy

    d = make_official_copy("sthv1", tmp_path)
    moved = tmp_path / "moved_frames"
    shutil.copytree(d["src"] / "20bn-something-something-v1", moved)
    summary = prepare("sthv1", d["src"], d["out"], frames_from=moved)
    assert summary["written"] and Path(os.readlink(d["out"] / "frames")) == moved.resolve()


def test_progress_lines_in_a_log(capsys, monkeypatch):
    from src.utils import progress as p

    clock = iter(range(0, 1000, 20))
    monkeypatch.setattr(p.time, "monotonic", lambda: next(clock))
    assert list(p.progress(range(5), desc="extract", every=30)) == list(range(5))
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines and lines[-1].startswith("extract: 5/5 videos (100.0%)")


def test_checkpoints_carry_the_run_identity(tmp_path):
    train(fake_cfg(tmp_path, "trainer.max_epochs=1"))
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    record = json.loads((tmp_path / "run" / "run.json").read_text())
    assert ckpt["suite_run"]["hash"] == record["hash"] and record["identity"]["optim.lr"] == 0.05
