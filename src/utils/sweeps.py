"""What a `--multirun` (a sweep) reports when it ends.

Each job runs in its own folder (src/utils/run_folder.py); a job that fails leaves `FAILED` (its error) there and
the sweep goes on with the next job (src/train.py). `SweepSummary`, a Hydra callback (conf/hydra/default.yaml),
then prints one line per job of this launch that did not finish and exits with status 1 if any failed. A
re-launch of the same sweep (same `sweep.name` or `hydra.sweep.dir`) skips the finished jobs (`DONE`, same
configuration), resumes the stopped ones from their last.ckpt and retries the failed ones.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from src.utils.run_folder import DONE, FAILED


def launched_jobs(sweep_dir: Path, since: float) -> list[Path]:
    """Job folders under `sweep_dir` whose Hydra config was written at or after `since` (this launch)."""
    jobs = []
    for cfg in sweep_dir.rglob(".hydra/config.yaml"):
        if cfg.stat().st_mtime >= since - 1:
            jobs.append(cfg.parent.parent)
    return sorted(jobs)


def first_line(path: Path) -> str:
    text = path.read_text(errors="replace").strip()
    return text.splitlines()[0] if text else "(no message)"


class SweepSummary(Callback):
    def __init__(self) -> None:
        self.started = time.time()

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        self.started = time.time()

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        jobs = launched_jobs(sweep_dir, self.started)
        done = [j for j in jobs if (j / DONE).is_file()]
        failed = [j for j in jobs if (j / FAILED).is_file()]
        unfinished = [j for j in jobs if j not in done and j not in failed]
        print(f"sweep {sweep_dir}: {len(jobs)} job(s): {len(done)} finished, {len(failed)} failed, "
              f"{len(unfinished)} unfinished", flush=True)
        for j in failed:
            print(f"  failed: {j.relative_to(sweep_dir)}: {first_line(j / FAILED)}", flush=True)
        for j in unfinished:
            print(f"  unfinished: {j.relative_to(sweep_dir)}", flush=True)
        if failed:
            print("  re-launch the same command to retry the failed jobs (finished ones are skipped)", flush=True)
            sys.exit(1)
