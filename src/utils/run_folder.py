"""Run folders: what identifies a run, where it lives, and how a stopped run is found again.

A run's identity is its composed config, resolved, without the keys that only say where or how a run is
watched (`RESUME_KEYS`: output paths, ckpt_path, loader workers, progress bar, loggers, tags, sweep and
launcher settings). Its hash names sweep job folders (`<overrides>-<hash>`), so every key that changes a
run (data_root included) changes the folder; `run.json` in the folder keeps the identity, so
`ckpt_path=last` resumes only a run of the same configuration and names the keys that differ otherwise.

A single run gets `<log_dir>/runs/<run_name>/seed<seed>_<YYYYmmdd-HHMMSS-microseconds>-<4 hex>`: two runs
started in the same microsecond still get two folders. With `ckpt_path=last` the newest unfinished folder
of the same identity is chosen instead, and the run continues in it (logs append).

Markers in a run folder: `DONE` (the fit completed its configured schedule; a re-launch skips it),
`FAILED` (the error that ended it; a re-launch retries it), `summary.json` (metrics, `full`: false for
debug or batch-limited runs).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from src.utils.config import ConfigError
from src.utils.files import write_atomic

# Keys that do not change what a run computes: they may differ between a run and its resumption.
RESUME_KEYS = ("hydra", "paths", "ckpt_path", "num_workers", "dataset.num_workers", "trainer.enable_progress_bar",
               "logger", "tags", "sweep", "slurm")
RECORD, DONE, FAILED = "run.json", "DONE", "FAILED"
_PLACEHOLDER = "<run>"


def run_identity(cfg: DictConfig) -> dict:
    """The run-defining part of `cfg` (with or without its `hydra` node) as flat `dotted.key: value` pairs."""
    data = OmegaConf.to_container(cfg, resolve=False)
    data.pop("hydra", None)
    # where the run writes is not what it computes; callbacks and the trainer point there by interpolation
    data["paths"] = {k: _PLACEHOLDER for k in data.get("paths") or {}}
    resolved = OmegaConf.to_container(OmegaConf.create(data), resolve=True)
    flat = _flatten(resolved)
    return {k: v for k, v in flat.items() if not any(k == r or k.startswith(r + ".") for r in RESUME_KEYS)}


def identity_hash(identity: dict) -> str:
    return hashlib.sha1(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _flatten(node, prefix: str = "") -> dict:
    if isinstance(node, dict) and node:
        out = {}
        for k, v in node.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: node}


def differing_keys(stored: dict, current: dict, limit: int = 8) -> str:
    """`key=<stored> (now <current>)` for every key that differs, the first `limit` of them."""
    keys = sorted(k for k in stored.keys() | current.keys() if stored.get(k, "<unset>") != current.get(k, "<unset>"))
    parts = [f"{k}={stored.get(k, '<unset>')} (now {current.get(k, '<unset>')})" for k in keys[:limit]]
    if len(keys) > limit:
        parts.append(f"and {len(keys) - limit} more")
    return ", ".join(parts)


# ---- markers ---------------------------------------------------------------------------------------------
def read_record(folder: Path) -> dict | None:
    """The folder's run.json ({"hash", "identity"}), or None (no run of this version ran there)."""
    try:
        return json.loads((Path(folder) / RECORD).read_text())
    except (OSError, ValueError):
        return None


def write_record(folder: Path, identity: dict) -> None:
    write_atomic(Path(folder) / RECORD, json.dumps({"hash": identity_hash(identity), "identity": identity},
                                                   indent=1, default=str))


def mark_failed(folder: Path, error: str) -> None:
    """Record why a run ended in an error; a later successful start removes it."""
    write_atomic(Path(folder) / FAILED, error.rstrip() + "\n")


def clear_failed(folder: Path) -> None:
    (Path(folder) / FAILED).unlink(missing_ok=True)


def is_done(folder: Path) -> bool:
    return (Path(folder) / DONE).is_file()


# ---- finding a run again -----------------------------------------------------------------------------------
def sibling_runs(prefix: str | Path) -> list[Path]:
    """The run folders `<prefix>_*` (a run name and seed), newest first."""
    prefix = Path(prefix)
    found = [p for p in prefix.parent.glob(f"{prefix.name}_*") if p.is_dir()]
    return sorted(found, key=lambda p: (p / RECORD).stat().st_mtime if (p / RECORD).exists() else p.stat().st_mtime,
                  reverse=True)


def resumable(folder: Path) -> bool:
    return not is_done(folder) and (Path(folder) / "checkpoints" / "last.ckpt").is_file()


def find_resumable(prefix: str | Path, identity: dict, finished_too: bool = False) -> Path | None:
    """The newest unfinished run folder `<prefix>_*` of this identity that holds a last.ckpt; with `finished_too`,
    else the newest finished one (there is then nothing to resume); None if there is neither."""
    h = identity_hash(identity)
    mine = [f for f in sibling_runs(prefix) if (read_record(f) or {}).get("hash") == h]
    found = next((f for f in mine if resumable(f)), None)
    if found is None and finished_too:
        found = next((f for f in mine if is_done(f)), None)
    return found


# ---- folder names (Hydra resolvers, conf/hydra/default.yaml) -----------------------------------------------
def new_stamp() -> str:
    """Start time to the microsecond and 4 random hex digits."""
    return f"{datetime.now():%Y%m%d-%H%M%S-%f}-{secrets.token_hex(2)}"


def run_dir(prefix: str, stamp: str, *, _root_) -> str:
    """A single run's folder: with ckpt_path=last the newest resumable folder of the same identity (or a finished
    one, which src.train then reports as finished), else `<prefix>_<stamp>` (a new folder)."""
    if _root_.get("ckpt_path") == "last":
        found = find_resumable(prefix, run_identity(_root_), finished_too=True)
        if found is not None:
            return str(found)
    return f"{prefix}_{stamp}"


def job_dirname(override_dirname: str, *, _root_) -> str:
    """A sweep job's folder name: its overrides (shortened) and the hash of its identity."""
    from src.utils.config import short_dirname

    h = identity_hash(run_identity(_root_))
    name = short_dirname(override_dirname, limit=110) if override_dirname else ""
    return f"{name}-{h}" if name else h


OmegaConf.register_new_resolver("run_stamp", new_stamp, use_cache=True, replace=True)
OmegaConf.register_new_resolver("run_dir", run_dir, replace=True)
OmegaConf.register_new_resolver("job_dirname", job_dirname, replace=True)


class AlreadyFinished(Exception):
    """`ckpt_path=last` found only finished runs of this configuration (the argument: the newest one)."""


def check_folder(output_dir: Path, identity: dict) -> None:
    """Refuse to continue a run folder that holds a run of another configuration (e.g. a fixed hydra.run.dir)."""
    record = read_record(output_dir)
    if record and record.get("hash") != identity_hash(identity):
        raise ConfigError(f"{output_dir} holds a run of another configuration: "
                          f"{differing_keys(record.get('identity', {}), identity)}; use another folder")


def resolve_ckpt_path(cfg: DictConfig, output_dir: Path, identity: dict) -> str | None:
    """The checkpoint to resume from, or None for a fresh start.

    A path must exist (a warning names the keys its run had otherwise). Without ckpt_path or with `last`, this
    folder's last.ckpt (an interrupted job of a re-launched sweep, or the folder `last` chose). `last` otherwise
    takes the newest unfinished run `<log_dir>/runs/<run_name>/seed<seed>_*` of the same configuration; raises
    AlreadyFinished when that configuration only finished, ConfigError (with the differing keys) when the only
    unfinished runs have other configurations, and starts from scratch when there is none."""
    ckpt = cfg.get("ckpt_path")
    own = output_dir / "checkpoints" / "last.ckpt"
    if ckpt not in (None, "", "last"):
        path = Path(str(ckpt))
        if not path.is_file():
            raise ConfigError(f"ckpt_path={ckpt}: no such checkpoint file")
        record = read_record(path.parent.parent)
        if record and record.get("hash") != identity_hash(identity):
            print(f"warning: ckpt_path={ckpt} is from a run with other settings: "
                  f"{differing_keys(record.get('identity', {}), identity)}", flush=True)
        return str(path)
    if own.is_file():
        return str(own)
    if ckpt != "last":
        return None
    prefix = Path(cfg.paths.log_dir) / "runs" / str(cfg.run_name) / f"seed{cfg.seed}"
    mine, others = [], []
    for folder in sibling_runs(prefix):
        record = read_record(folder)
        if folder.resolve() != output_dir.resolve() and record:
            (mine if record.get("hash") == identity_hash(identity) else others).append((folder, record))
    for folder, _ in mine:
        if resumable(folder):
            return str(folder / "checkpoints" / "last.ckpt")
    finished = [folder for folder, _ in mine if is_done(folder)]
    if finished:
        raise AlreadyFinished(finished[0])
    stopped = [(folder, record) for folder, record in others if resumable(folder)]
    if stopped:
        folder, record = stopped[0]
        raise ConfigError(f"ckpt_path=last: the stopped run {folder} has other settings: "
                          f"{differing_keys(record.get('identity', {}), identity)}; resume it with its settings, "
                          "or drop ckpt_path to start a new run")
    print(f"ckpt_path=last: no stopped run of this configuration under {prefix.parent}; starting from scratch",
          flush=True)
    return None
