"""Check the suite on a machine with a CUDA GPU and no venv, in one command, leaving every log in one folder.

    make gpu-check PY=python3 OUT=DIR [STEPS=env,fast,slow,bench]
    python3 -m src.tools.gpu_check --out DIR [--steps env,fast,slow,bench] [--budget SECONDS] [--wheels .whl]

First every wheel under --wheels (default `.whl/`: hydra-core, omegaconf, antlr4-python3-runtime, av and
simplejpeg, which such a machine may lack) is installed with pip into a fresh folder, offline and without
dependencies, and that folder and the repository go on the PYTHONPATH of every step. Then the steps, in order:

  env    nvidia-smi; python, torch, CUDA, Lightning versions; the GPU's name and compute capability  -> env.log
  fast   pytest -m "gpu and not slow": Lightning training steps of every method in 32-true / bf16-mixed /
         16-mixed, sliced = masked validation, src.eval on the GPU                  -> fast.log, fast.xml
  slow   pytest -m "gpu and slow": `src.train trainer=gpu` on the built-in dataset to >= 3x chance in the
         three precisions                                                           -> slow.log, slow.xml
  bench  python -m src.bench --device cuda --out DIR/bench-gpu.json                 -> bench.log

Each step runs in its own process group under its own time limit, cut to what is left of --budget; a step that
runs out is killed with its children and recorded as timed out, and the next one still runs if time is left.
DIR/gpu-check.json records each step's command, exit status, seconds and outcome. Exit status: 0 when every
step that ran passed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIMITS = {"env": 60, "fast": 300, "slow": 420, "bench": 300}  # seconds per step, before the budget cuts them
ENV_PROBE = (
    "import sys, torch, lightning; print('python', sys.version.split()[0], '| torch', torch.__version__, "
    "'| CUDA', torch.version.cuda, '| lightning', lightning.__version__); "
    "c = torch.cuda.is_available(); print('cuda available', c); "
    "c and print(torch.cuda.get_device_name(0), 'capability', torch.cuda.get_device_capability(0)); "
    "import hydra, omegaconf; print('hydra', hydra.__version__, '| omegaconf', omegaconf.__version__)"
)


def step_commands(python: str, out: Path) -> dict[str, list[list[str]]]:
    """The commands of each step (a step may run several, one after the other)."""
    pytest = [python, "-m", "pytest", "-q", "-rfEsx", "--durations=20", "-p", "no:cacheprovider"]
    return {
        "env": [["nvidia-smi"], [python, "-c", ENV_PROBE]],
        "fast": [[*pytest, "-m", "gpu and not slow", f"--junitxml={out / 'fast.xml'}"]],
        "slow": [[*pytest, "-s", "-m", "gpu and slow", f"--junitxml={out / 'slow.xml'}"]],
        "bench": [[python, "-m", "src.bench", "--device", "cuda", "--out", str(out / "bench-gpu.json")]],
    }


def install_wheels(python: str, wheels: Path, site: Path, log: Path) -> bool:
    """pip-install every wheel in `wheels` into `site` (offline, no dependencies); False if pip failed."""
    files = sorted(str(p) for p in wheels.glob("*.whl")) if wheels.is_dir() else []
    if not files:
        log.write_text(f"no wheels under {wheels}: using the packages already installed\n")
        return True
    cmd = [python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile", "--no-cache-dir",
           "--upgrade", "--target", str(site), *files]
    with log.open("w") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        return subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode == 0


def run_logged(cmd: list[str], log, limit: float, env: dict) -> tuple[int | None, bool]:
    """Run `cmd` in a new process group with output appended to the open file `log`; kill the group after `limit`
    seconds. Returns (exit status, timed out); status None when the program does not exist."""
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    try:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    except FileNotFoundError as e:
        log.write(f"{e}\n")
        return None, False
    try:
        return proc.wait(timeout=max(1.0, limit)), False
    except subprocess.TimeoutExpired:
        for sig, grace in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=grace)
                break
            except subprocess.TimeoutExpired:
                continue
        log.write(f"\n[gpu_check] killed after {limit:.0f} s\n")
        return proc.returncode, True


def run_step(name: str, commands: list[list[str]], out: Path, limit: float, env: dict) -> dict:
    """Run one step's commands in order into out/<name>.log; its record for gpu-check.json."""
    start = time.monotonic()
    record = {"step": name, "commands": [" ".join(c) for c in commands], "limit_s": round(limit)}
    with (out / f"{name}.log").open("w") as log:
        status, timed_out = 0, False
        for cmd in commands:
            left = limit - (time.monotonic() - start)
            code, timed_out = run_logged(cmd, log, left, env)
            if code != 0 and name != "env":  # env's probes are informative: nvidia-smi may be missing
                status = code
            if timed_out:
                break
    record.update(seconds=round(time.monotonic() - start, 1), returncode=status, timed_out=timed_out,
                  outcome="timed out" if timed_out else "passed" if status == 0 else "failed")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m src.tools.gpu_check", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="folder for the logs and gpu-check.json")
    parser.add_argument("--steps", default="env,fast,slow,bench", help="comma-separated, in order (default: all)")
    parser.add_argument("--budget", type=float, default=540, help="seconds for all steps together (default 540)")
    parser.add_argument("--wheels", type=Path, default=ROOT / ".whl", help="folder of wheels to install first")
    parser.add_argument("--python", default=sys.executable, help="interpreter of every step (default: this one)")
    args = parser.parse_args(argv)
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in steps if s not in LIMITS]
    if unknown:
        parser.error(f"--steps: unknown step(s) {', '.join(unknown)}; choose from {', '.join(LIMITS)}")
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()

    site = Path(tempfile.mkdtemp(prefix="gpu-check-site-"))  # outside `out`: the packages are no result
    installed = install_wheels(args.python, args.wheels, site, out / "wheels.log")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(site), str(ROOT), os.environ.get(
        "PYTHONPATH", "")) if p), "PYTHONUNBUFFERED": "1", "WANDB_MODE": "disabled", "PYTHONWARNINGS": "ignore"}
    commands = step_commands(args.python, out)
    records = []
    for name in steps:
        left = args.budget - (time.monotonic() - started)
        if left < 20:
            records.append({"step": name, "outcome": "skipped (budget spent)"})
            continue
        records.append(run_step(name, commands[name], out, min(LIMITS[name], left), env))
        print(f"[gpu_check] {name}: {records[-1]['outcome']} in {records[-1]['seconds']} s", flush=True)
    summary = {"wheels_installed": installed, "budget_s": args.budget,
               "seconds": round(time.monotonic() - started, 1), "steps": records}
    (out / "gpu-check.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary))
    ran = [r for r in records if "returncode" in r]
    return 0 if installed and all(r["outcome"] == "passed" for r in ran) else 1


if __name__ == "__main__":
    sys.exit(main())
