"""Run-to-run spread of `make bench`: `python -m src.bench.runs [experiments/S5/runs/*.json] [--out F.md]`.

Every `make bench` also keeps its JSON under experiments/S5/runs/. This groups those runs by setting (clip
length and size, machine: CPU and its vector ISA, cores, threads, torch; prepacked convs; stem chunks) and, per
latency row and per training step, gives the ratio to the reference (ratio of medians) over the runs as
min / median / max, next to the noise each run reports itself: the min / max of its per-round paired ratios.
`within noise` says whether every run's ratio lies inside every other run's per-round [min, max], i.e. whether
one run reproduces another within the noise the other reported. Runs that carry a 90% bootstrap interval of
their ratio (`common.ratio_interval`) are also checked: every run's ratio against each of those intervals,
the stricter test; a "no" there means the machine drifted between runs by more than one run's sampling noise.
Older runs (an `allocator` key; a training step per memory layout with its ratio inside) are read as well.
"""
from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

RUNS = Path(__file__).resolve().parents[2] / "experiments" / "S5" / "runs"


def load_runs(paths: list[Path]) -> list[dict]:
    """The bench JSONs at `paths`, each with its file name as `run`; a file that is not a bench JSON is named."""
    runs = []
    for p in paths:
        try:
            run = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise SystemExit(f"{p}: not a readable bench JSON ({e})") from e
        if "latency" not in run:
            raise SystemExit(f"{p}: no 'latency' key, not written by src.bench --device cpu")
        for name, row in run["latency"].items():
            for key in ("ratio_to_tsm", "paired_ratio"):
                if key not in row:
                    raise SystemExit(f"{p}: latency row {name!r} has no {key!r} (written by an older src.bench)")
        runs.append({**run, "run": p.name})
    return runs


def spread(entries: list[dict]) -> dict:
    """entries: one {"ratio", "paired": {"min", "max"}, "ci": {"lo", "hi"} or None} per run -> the ratio's
    min / median / max over the runs, the widest per-round range, whether each run's ratio is inside every
    other run's range, and over the runs that have a 90% interval (`ci_runs` of them; None where none has):
    the widest interval and whether every run's ratio is inside each of those intervals."""
    ratios = [e["ratio"] for e in entries]
    inside = all(o["paired"]["min"] <= e["ratio"] <= o["paired"]["max"] for e in entries for o in entries)
    cis = [e["ci"] for e in entries if e.get("ci")]
    return {"runs": len(entries), "min": min(ratios), "median": statistics.median(ratios), "max": max(ratios),
            "round_min": min(e["paired"]["min"] for e in entries),
            "round_max": max(e["paired"]["max"] for e in entries), "within_noise": inside, "ci_runs": len(cis),
            "ci_lo": min(c["lo"] for c in cis) if cis else None,
            "ci_hi": max(c["hi"] for c in cis) if cis else None,
            "within_ci": all(c["lo"] <= r <= c["hi"] for r in ratios for c in cis) if cis else None}


def setting(run: dict) -> str:
    """What must match for two runs' ratios to be comparable: clip size, machine and threads, whether the convs
    ran on prepacked weights and the stems frame-chunked (a run without those keys did neither), and for older
    runs glibc's malloc keeping freed memory (`allocator: keep`)."""
    chunk = run.get("stem_chunk_frames", 0)
    return (f"{run.get('frames', '?')} frames, {run.get('size', '?')}², {run.get('machine', 'unknown machine')}"
            f"{', prepacked convs' if run.get('prepack') else ''}"
            f"{f', stems in {chunk}-frame chunks' if chunk else ''}"
            f"{', malloc keeps freed memory' if run.get('allocator') == 'keep' else ''}")


def train_entries(run: dict) -> dict[str, dict]:
    """{"train <layout>": {"ratio", "paired", "ci"}} of a run's training step: one entry today (the AFNet-R50
    row of `train_step.models`), one per memory layout in older runs."""
    step = run.get("train_step", {})
    if "models" in step:
        row = step["models"].get("afnet_r50")
        if not row or row.get("ratio_to_tsn") is None:
            return {}
        return {f"train {step.get('layout', 'nchw')}": {"ratio": row["ratio_to_tsn"], "paired": row["paired_ratio"],
                                                         "ci": row.get("ratio_ci90")}}
    return {f"train {layout}": {"ratio": v["ratio"], "paired": v["paired_ratio"], "ci": v.get("ratio_ci90")}
            for layout, v in step.items() if isinstance(v, dict) and "ratio" in v}


def summarise(runs: list[dict]) -> dict[str, dict[str, dict]]:
    """{setting: {row name or "train <layout>": spread}} over the runs of that setting that have that row."""
    out: dict[str, dict[str, dict]] = {}
    for key in sorted({setting(r) for r in runs}):
        group = [r for r in runs if setting(r) == key]
        rows: dict[str, list[dict]] = {}
        for r in group:
            for name, v in r["latency"].items():
                rows.setdefault(name, []).append({"ratio": v["ratio_to_tsm"], "paired": v["paired_ratio"],
                                                  "ci": v.get("ratio_ci90")})
            for name, entry in train_entries(r).items():
                rows.setdefault(name, []).append(entry)
        out[key] = {name: spread(entries) for name, entries in rows.items()}
    return out


def markdown(summary: dict[str, dict[str, dict]], runs: list[dict]) -> str:
    lines = ["# make bench: spread over runs", "",
             "Ratio to TSM-R50 (latency rows) or to TSN-R50 (training rows) per run, as the ratio of medians; "
             "`per-round range` is the widest [min, max] of the runs' own per-round paired ratios; `90% intervals` "
             "spans the runs' bootstrap intervals of their ratio (where the runs have one), and "
             "`within 90%` says whether every run's ratio lies inside each of those intervals.", ""]
    for key, rows in summary.items():
        names = [r["run"] for r in runs if setting(r) == key]
        lines += [f"## {key}: {len(names)} run{'s' * (len(names) != 1)}", "", ", ".join(names), "",
                  "| row | runs | min | median | max | per-round range | within noise | 90% intervals | within 90% |",
                  "|" + "---|" * 9]
        for name, s in rows.items():
            ci = "–" if s["ci_lo"] is None else f"[{s['ci_lo']:.3f}, {s['ci_hi']:.3f}]"
            if s["ci_lo"] is not None and s["ci_runs"] < s["runs"]:
                ci += f" ({s['ci_runs']} of {s['runs']} runs)"
            in_ci = "–" if s["within_ci"] is None else ("yes" if s["within_ci"] else "no")
            lines.append(f"| {name} | {s['runs']} | {s['min']:.3f} | {s['median']:.3f} | {s['max']:.3f} | "
                         f"[{s['round_min']:.3f}, {s['round_max']:.3f}] | {'yes' if s['within_noise'] else 'no'} | "
                         f"{ci} | {in_ci} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("paths", nargs="*", type=Path, help=f"bench JSONs (default: {RUNS}/*.json)")
    ap.add_argument("--out", type=Path, help="also write the tables here (Markdown)")
    args = ap.parse_args(argv)
    paths = args.paths or sorted(RUNS.glob("*.json"))
    if not paths:
        raise SystemExit(f"no bench JSONs given and none in {RUNS} (run `make bench` first)")
    runs = load_runs(paths)
    summary = summarise(runs)
    text = markdown(summary, runs)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return summary


if __name__ == "__main__":
    main()
