"""Paper table vs our runs: `python -m src.report <table> [--logs logs] [--source local|wandb] [--out experiments]`.

For every row of `<table>` in paper-tables.yaml: the published metric and GFLOPs, ours (mean ± std over
seeds), the difference, our realised GFLOPs, the number of runs and a status: done (full finished runs, the
only ones counted), unfinished (running or stopped), failed (the job's error under "Failed runs"), debug (only
debug or batch-limited runs: fast_dev_run, limit_*_batches, a short max_steps), missing; `cited` rows are
reference rows from other papers. Writes experiments/<table>/results.md and results.csv, and PNG figures:
accuracy vs GFLOPs (paper and ours) and the realised selection ratio per block. Files that git tracks (committed
results) are replaced only with --overwrite. Runs are found by the `row_id` their summary.json or config carries
(set by conf/row/<table>/<row>.yaml). Table S5 (latency) is read from experiments/S5/bench.json (`make bench`).
Exit status: 0 written, 2 a bad argument, a missing --logs folder or committed files in the way.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

from src.utils.files import atomic_output, write_atomic

ROOT = Path(__file__).resolve().parent.parent
TABLES = ROOT / "conf" / "tables" / "paper-tables.yaml"  # the published numbers of every table
ROW_KEYS = ("method", "backbone", "frames", "rt", "rs", "fusion", "tau_schedule")
FUSION = {"dynamic": "dynamic", "addition": "add"}


def load_tables(path: Path = TABLES) -> dict:
    if not path.is_file():
        raise SystemExit(f"{path}: paper tables not found (pass --tables)")
    return yaml.safe_load(path.read_text())


def row_id(table: str, row: dict) -> str:
    """The id a row's config carries (conf/row/<table>/<name>.yaml sets `row_id`)."""
    if row["method"] == "af_backbone":
        return f"{table}/pretrain_{row['backbone']}"
    name = f"{row['method']}_{row['backbone']}_{row['frames']}f"
    for k in ("rt", "rs"):
        if k in row:
            name += f"_{k}{row[k]}"
    if "fusion" in row:
        name += f"_{FUSION[row['fusion']]}"
    if "tau_schedule" in row:
        name += f"_tau-{row['tau_schedule']}"
    return f"{table}/{name}"


LIMIT_KEYS = ("limit_train_batches", "limit_val_batches", "fast_dev_run", "overfit_batches", "max_steps")


def config_limits(config: dict) -> dict:
    """The batch limits a run's config sets (trainer.limit_*_batches below 1.0, fast_dev_run, overfit_batches,
    max_steps), for runs whose summary does not say whether they were full."""
    trainer = (config or {}).get("trainer") or {}
    limits = {}
    for key in LIMIT_KEYS:
        value = trainer.get(key)
        if value in (None, False, 0, -1) or (key.startswith("limit_") and value == 1.0):
            continue
        limits[key] = value
    return limits


def read_yaml(path: Path) -> dict:
    try:
        return yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}


def run_status(folder: Path, summary: dict | None, config: dict) -> tuple[str, str]:
    """(status, error) of one run folder: done | debug | failed | unfinished (see the module docstring)."""
    failed, done = folder / "FAILED", folder / "DONE"
    if failed.is_file() and not (done.is_file() and done.stat().st_mtime >= failed.stat().st_mtime):
        lines = failed.read_text(errors="replace").strip().splitlines()
        return "failed", lines[0] if lines else "(no message)"
    if summary is not None and done.is_file():
        full = summary["full"] if "full" in summary else not config_limits(config)
        return ("done" if full else "debug"), ""
    return "unfinished", ""


def local_runs(logs: Path) -> list[dict]:
    """Every run folder under `logs`: those with a summary.json, a Hydra config (.hydra/config.yaml) or FAILED."""
    folders = {p.parent for p in logs.rglob("summary.json")} | {p.parent for p in logs.rglob("FAILED")}
    folders |= {p.parent.parent for p in logs.rglob(".hydra/config.yaml")}
    runs = []
    for folder in sorted(folders):
        config = read_yaml(folder / ".hydra" / "config.yaml")
        try:
            summary = json.loads((folder / "summary.json").read_text())
        except (OSError, ValueError):
            summary = None
        status, error = run_status(folder, summary, config)
        run = dict(summary or {"row_id": config.get("row_id"), "seed": config.get("seed")})
        run.update(status=status, error=error, dir=str(folder))
        runs.append(run)
    return runs


def wandb_runs(project: str, table: str) -> list[dict]:
    """Runs of W&B group `table`: their config row_id and the best-epoch summary (needs network + API key)."""
    import wandb

    from src.utils.progress import progress

    runs = []
    for r in progress(wandb.Api().runs(project, filters={"group": table}), desc=f"W&B runs of {table}", unit="run"):
        best = {"metric": r.summary.get("best/metric"), "gflops": r.summary.get("best/gflops")}
        if r.state == "finished":
            status = "debug" if config_limits(r.config) else "done"
        else:
            status = "failed" if r.state in ("failed", "crashed") else "unfinished"
        runs.append({"row_id": r.config.get("row_id"), "seed": r.config.get("seed"), "best": best,
                     "status": status, "error": f"W&B state {r.state}" if status == "failed" else "", "dir": r.url})
    return runs


def _fmt(x, nd=1):
    return "" if x is None else f"{x:.{nd}f}"


def summarise(table: str, spec: dict, runs: list[dict]) -> list[dict]:
    out = []
    for row in spec.get("rows", []):
        rec = {k: row.get(k, "") for k in ROW_KEYS}
        rec.update(paper=row.get("metric", row.get("cpu_ms")), paper_gflops=row.get("gflops"), note=row.get("note", ""))
        if row.get("cited"):
            rec.update(status="cited", runs=0, ours=None, ours_std=None, gflops=None, delta=None, ratios=[])
            out.append(rec)
            continue
        rid = row_id(table, row)
        mine = [r for r in runs if r.get("row_id") == rid]
        done = [r for r in mine if r["status"] == "done" and (r.get("best") or {}).get("metric") is not None]
        vals = [r["best"]["metric"] for r in done]
        gfl = [r["best"]["gflops"] for r in done if r["best"].get("gflops") is not None]
        rec.update(row_id=rid, runs=len(done), ours=statistics.fmean(vals) if vals else None,
                   ours_std=statistics.stdev(vals) if len(vals) > 1 else None,
                   gflops=statistics.fmean(gfl) if gfl else None,
                   ratios=(done[0]["best"].get("ratios") or []) if done else [],
                   status=row_status(done, mine),
                   failed=[f"{r['dir']}: {r['error']}" for r in mine if r["status"] == "failed"])
        rec["delta"] = rec["ours"] - rec["paper"] if rec["ours"] is not None and rec["paper"] is not None else None
        out.append(rec)
    return out


def row_status(done: list[dict], mine: list[dict]) -> str:
    """done if a full finished run counts; else what the other runs of the row are, most hopeful first."""
    if done:
        return "done"
    for status in ("unfinished", "failed", "debug"):
        if any(r["status"] == status for r in mine):
            return status
    return "missing"


def latency_rows(spec: dict, bench: Path) -> list[dict]:
    """Table S5: the paper's CPU latencies next to ours from `make bench` (as ratios to TSM, the only
    figures comparable across machines)."""
    data = json.loads(bench.read_text())["latency"] if bench.is_file() else {}
    paper_tsm = next((r["cpu_ms"] for r in spec["rows"] if r["method"] == "tsm"), None)
    out = []
    for row in spec["rows"]:
        key = {"tsm": "tsm_r50", "afnet_tsm": f"afnet_tsm_r50@{row.get('rt', 0):.2f}"}.get(row["method"])
        ours = data.get(key) if key else None
        rec = {k: row.get(k, "") for k in ROW_KEYS}
        rec.update(paper=row["cpu_ms"], paper_ratio=row["cpu_ms"] / paper_tsm if paper_tsm else None,
                   ours=ours["median"] if ours else None, ours_ratio=ours["ratio_to_tsm"] if ours else None,
                   status="cited" if row.get("cited") else ("done" if ours else "missing"))
        out.append(rec)
    return out


def output_files(table: str, rows: list[dict], out_dir: Path) -> list[Path]:
    """The files write_outputs writes for these rows."""
    files = [out_dir / "results.md", out_dir / "results.csv"]
    if table != "S5":
        files.append(out_dir / "accuracy_vs_gflops.png")
        if any(r.get("ratios") for r in rows):
            files.append(out_dir / "ratio_per_block.png")
    return files


def committed(paths: list[Path]) -> list[Path]:
    """The existing `paths` that git tracks (committed results); outside a git checkout every existing one."""
    existing = [p for p in paths if p.exists()]
    if not existing:
        return []
    try:
        proc = subprocess.run(["git", "ls-files", "--", *[p.resolve().name for p in existing]], capture_output=True,
                              text=True, cwd=existing[0].resolve().parent, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return existing
    if proc.returncode != 0:
        return existing
    tracked = set(proc.stdout.split())
    return [p for p in existing if p.name in tracked]


def write_outputs(table: str, spec: dict, rows: list[dict], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    latency = table == "S5"
    cols = (["method", "backbone", "frames", "rt", "paper", "paper_ratio", "ours", "ours_ratio", "status"]
            if latency
            else ["method", "backbone", "frames", "rt", "rs", "fusion", "tau_schedule", "paper", "ours", "ours_std",
                  "delta", "paper_gflops", "gflops", "runs", "status"])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    write_atomic(out_dir / "results.csv", buf.getvalue())
    metric = spec.get("metric", "")
    source = "published values from paper-tables.yaml" if any(r.get("paper") is not None for r in rows) else \
        "no published values (a table of this suite's own)"
    lines = [f"# {table}: {spec.get('title', '')}", "", f"Metric: {metric}; {source}.", ""]
    if latency:
        lines += ["| method | backbone | paper CPU ms | paper ÷ TSM | ours ms | ours ÷ TSM | status |",
                  "|" + "---|" * 7]
        for r in rows:
            lines.append(f"| {r['method']} | {r['backbone']} | {r['paper']} | {_fmt(r['paper_ratio'], 3)} | "
                         f"{_fmt(r['ours'])} | {_fmt(r['ours_ratio'], 3)} | {r['status']} |")
    else:
        lines += ["| method | backbone | frames | RT | RS | fusion | τ decay | paper | ours | Δ | paper GFLOPs |"
                  " our GFLOPs | runs | status |", "|" + "---|" * 14]
        for r in rows:
            ours = _fmt(r["ours"], 2) + (f" ± {r['ours_std']:.2f}" if r.get("ours_std") is not None else "")
            paper = "" if r["paper"] is None else r["paper"]
            lines.append(f"| {r['method']} | {r['backbone']} | {r['frames']} | {r['rt']} | {r['rs']} | {r['fusion']} |"
                         f" {r['tau_schedule']} | {paper} | {ours} | {_fmt(r['delta'], 2)} | "
                         f"{_fmt(r['paper_gflops'])} | {_fmt(r['gflops'], 3)} | {r['runs']} | {r['status']} |")
    notes = [f"- {r['method']} {r['backbone']} {r['frames']}f: {r['note']}" for r in rows if r.get("note")]
    if notes:
        lines += ["", "Notes:", *notes]
    failed = [f"- {r['method']} {r['backbone']} {r['frames']}f: {f}" for r in rows for f in r.get("failed") or []]
    if failed:
        lines += ["", "Failed runs (not counted):", *failed]
    figures = [] if latency else plot(table, rows, out_dir, metric)
    lines += ["", *[f"![{p.stem}]({p.name})" for p in figures]]
    write_atomic(out_dir / "results.md", "\n".join(lines) + "\n")
    return [out_dir / "results.md", out_dir / "results.csv", *figures]


def plot(table: str, rows: list[dict], out_dir: Path, metric: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    fig, ax = plt.subplots(figsize=(6, 4))
    methods = sorted({r["method"] for r in rows})
    colors = {m: f"C{i}" for i, m in enumerate(methods)}
    for r in rows:
        label = f"{r['method']} {r['backbone']} {r['frames']}f" + (f" rt{r['rt']}" if r["rt"] != "" else "")
        if r.get("paper") is not None and r.get("paper_gflops") is not None:
            ax.scatter(r["paper_gflops"], r["paper"], facecolors="none", edgecolors=colors[r["method"]], s=60)
            ax.annotate(label, (r["paper_gflops"], r["paper"]), fontsize=6)
        if r.get("ours") is not None and r.get("gflops") is not None:
            first = r["method"] not in ax.get_legend_handles_labels()[1]
            ax.errorbar(r["gflops"], r["ours"], yerr=r.get("ours_std") or 0, fmt="o", color=colors[r["method"]],
                        label=r["method"] if first else None)
            ax.annotate(label, (r["gflops"], r["ours"]), fontsize=6)
    ax.set_xlabel("GFLOPs per video (GMACs)")
    ax.set_ylabel(metric)
    if ax.get_legend_handles_labels()[1]:
        ax.legend(fontsize=7)
    ax.set_title(f"{table}: paper (hollow) vs ours (filled)")
    fig.tight_layout()
    files.append(out_dir / "accuracy_vs_gflops.png")
    save_figure(fig, files[-1])
    with_ratios = [r for r in rows if r.get("ratios")]
    if with_ratios:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for r in with_ratios:
            ax.plot(range(len(r["ratios"])), r["ratios"], marker="o",
                    label=f"{r['method']} {r['backbone']} rt{r['rt']}")
        ax.set_xlabel("focal block (mask index)")
        ax.set_ylabel("realised selection ratio")
        ax.set_ylim(0, 1.05)
        ax.legend(fontsize=6)
        fig.tight_layout()
        files.append(out_dir / "ratio_per_block.png")
        save_figure(fig, files[-1])
    return files


def save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(prog="python -m src.report", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("table", help="a table of --tables, e.g. S1 or demo")
    ap.add_argument("--tables", type=Path, default=TABLES, help="paper-tables.yaml (or a demo table file)")
    ap.add_argument("--logs", type=Path, default=ROOT / "logs", help="run folders to scan (local source)")
    ap.add_argument("--source", choices=("local", "wandb"), default="local")
    ap.add_argument("--project", default="afnet", help="W&B entity/project (wandb source)")
    ap.add_argument("--out", type=Path, default=ROOT / "experiments", help="writes <out>/<table>/")
    ap.add_argument("--overwrite", action="store_true", help="replace results that git tracks (committed ones)")
    args = ap.parse_args(argv)
    tables = load_tables(args.tables)
    if args.table not in tables or "rows" not in tables[args.table]:
        raise SystemExit(f"table {args.table!r}: choose one of {', '.join(k for k in tables if 'rows' in tables[k])}")
    spec = tables[args.table]
    if args.table == "S5":
        rows = latency_rows(spec, args.out / "S5" / "bench.json")
    else:
        if args.source == "local" and not args.logs.is_dir():
            print(f"error: --logs {args.logs}: no such folder, so no runs to report (train with `make table "
                  f"T={args.table}`, or pass the folder holding runs/ and multiruns/)", file=sys.stderr)
            sys.exit(2)
        runs = local_runs(args.logs) if args.source == "local" else wandb_runs(args.project, args.table)
        rows = summarise(args.table, spec, runs)
    out_dir = args.out / args.table
    in_the_way = [] if args.overwrite else committed(output_files(args.table, rows, out_dir))
    if in_the_way:
        print(f"error: {', '.join(map(str, in_the_way))}: committed results (tracked by git); pass --overwrite to "
              "replace them, or --out DIR to write elsewhere", file=sys.stderr)
        sys.exit(2)
    for p in write_outputs(args.table, spec, rows, out_dir):
        print(p)
    return rows


if __name__ == "__main__":
    main()
