"""Verify a dataset before training: `python -m src.data.check <dataset> [data_root=...] [key=value ...]`.

The dataset config is composed as training composes it (conf/train.yaml + `dataset=<dataset>` + overrides).
For every line of the train / val / test lists: the frame folder or video file exists; for frames, the
first and last frame exist and the frames on disk match the listed count; for videos, the file decodes to
at least 3 frames and as many as its header says (a truncated file decodes fewer); the label is in range.
classes.txt must hold num_classes names. Prints each problem as `file:line: what`, a summary, and exits 1
if there is any problem (2 if the config itself is unusable). `--quick`: trust video headers, decode nothing.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from src.data.lists import ListFormatError, parse_list, read_classes
from src.data.prepare.build import MIN_FRAMES
from src.data.prepare.media import frame_indices


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    rows: list[tuple[str, int, int]] = field(default_factory=list)   # (list file, lines, lines with problems)

    def add(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")


def compose_dataset(name: str, overrides: list[str]) -> dict:
    """conf/dataset/<name>.yaml as training sees it, interpolations resolved."""
    from omegaconf import OmegaConf

    from src.runs import compose

    cfg = compose("train", [f"dataset={name}", *overrides])
    return OmegaConf.to_container(cfg.dataset, resolve=True)


def line_numbers(path: Path) -> list[int]:
    """1-based line numbers of the non-blank lines, i.e. of parse_list's records in order."""
    with open(path, encoding="utf-8") as f:
        return [i for i, line in enumerate(f, 1) if line.strip()]


def video_frames(path: Path, quick: bool) -> tuple[int, int]:
    """(frames the header announces or 0, frames that decode; the header count again when quick)."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            header = int(stream.frames or 0)
            if quick and header:
                return header, header
            decoded = 0
            try:
                for _ in container.decode(stream):
                    decoded += 1
            except av.FFmpegError:
                pass  # a truncated file: the frames decoded so far count
            return header, decoded
    except (OSError, av.FFmpegError, IndexError):
        return 0, 0


def check_record(ds: dict, rec, quick: bool) -> list[str]:
    """Problems of one list entry (empty if fine)."""
    root, problems = Path(ds["root"]), []
    if ds["format"] == "frames":
        folder, n, start = root / rec.path, rec.num_frames, ds.get("start_index", 1)
        template = ds.get("template", "{:05d}.jpg")
        if not folder.is_dir():
            return [f"frame folder missing: {folder}"]
        if not (folder / template.format(start)).is_file():
            problems.append(f"first frame missing: {folder / template.format(start)}")
        if not (folder / template.format(start - 1 + n)).is_file():
            problems.append(f"last frame missing: {folder / template.format(start - 1 + n)}")
        on_disk = sum(1 for i in frame_indices(folder, template) if start <= i < start + n)
        if on_disk != n:
            problems.append(f"listed {n} frames, {on_disk} of frames {start}..{start - 1 + n} on disk")
        extra = len(frame_indices(folder, template)) - on_disk
        if extra:
            problems.append(f"{extra} frame file(s) beyond the listed {n}: the list is stale")
        if n < MIN_FRAMES:
            problems.append(f"{n} frames < {MIN_FRAMES} (such videos are left out of the lists)")
    else:
        path = root / rec.path
        if not path.is_file():
            return [f"video file missing: {path}"]
        if path.stat().st_size == 0:
            return [f"zero-length video: {path}"]
        header, decoded = video_frames(path, quick)
        if decoded == 0:
            problems.append(f"no decodable frame: {path}")
        elif decoded < MIN_FRAMES:
            problems.append(f"{decoded} decodable frames < {MIN_FRAMES}: {path}")
        if decoded and header > decoded:
            problems.append(f"truncated: decodes {decoded} of the {header} frames its header announces: {path}")
    return problems


def check_list(ds: dict, key: str, report: Report, quick: bool) -> None:
    path = Path(ds[key])
    if not path.is_file():
        report.add(str(path), f"dataset.{key}: list file not found. {ds.get('prepare_hint') or ''}".strip())
        return
    try:
        records = parse_list(path, kind=ds["format"])
    except ListFormatError as e:
        report.add(str(path), f"cannot parse: {e}")
        report.rows.append((str(path), 0, 1))
        return
    bad = 0
    for lineno, rec in zip(line_numbers(path), records):
        problems = check_record(ds, rec, quick)
        if any(not 0 <= y < ds["num_classes"] for y in rec.labels):
            problems.append(f"label {rec.label} outside [0, {ds['num_classes']})")
        for p in problems:
            report.add(f"{path}:{lineno}", p)
        bad += bool(problems)
    report.rows.append((str(path), len(records), bad))


def check_imagenet(ds: dict, report: Report) -> None:
    """ImageFolder trees: train/ and val/ with num_classes class folders each, the same names."""
    root, names = Path(ds["root"]), {}
    for split in ("train", "val"):
        d = root / split
        if not d.is_dir():
            report.add(str(d), f"folder missing. {ds.get('prepare_hint') or ''}".strip())
            continue
        names[split] = sorted(p.name for p in d.iterdir() if p.is_dir())
        empty = [c for c in names[split] if not any((d / c).iterdir())]
        if len(names[split]) != ds["num_classes"]:
            report.add(str(d), f"{len(names[split])} class folders, but num_classes={ds['num_classes']}")
        for c in empty:
            report.add(str(d / c), "empty class folder")
        report.rows.append((str(d), len(names[split]), len(empty)))
    if len(names) == 2 and names["train"] != names["val"]:
        report.add(str(root), "train/ and val/ hold different class folders")


def run_check(name: str, overrides: list[str], quick: bool = False) -> Report:
    ds, report = compose_dataset(name, overrides), Report()
    if ds.get("_target_", "").endswith("ImageFolderDataModule"):
        check_imagenet(ds, report)
        return report
    if ds.get("classes_file"):
        try:
            read_classes(ds["classes_file"], ds["num_classes"])
        except FileNotFoundError:
            report.add(ds["classes_file"], "dataset.classes_file not found")
        except ListFormatError as e:
            report.problems.append(str(e))
    if not Path(ds["root"]).is_dir():
        report.add(ds["root"], f"dataset.root not found. {ds.get('prepare_hint') or ''}".strip())
    keys = ["train_list", "val_list"] + (["test_list"] if ds.get("test_list") not in (None, ds["val_list"]) else [])
    for key in keys:
        check_list(ds, key, report, quick)
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m src.data.check", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", help="a conf/dataset/<name>.yaml")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data_root=/data dataset.template=...")
    ap.add_argument("--quick", action="store_true", help="videos: trust the header frame count, decode nothing")
    ap.add_argument("--max-print", type=int, default=200, help="problems printed at most (all are counted)")
    args = ap.parse_args(argv)
    try:
        report = run_check(args.dataset, args.overrides, args.quick)
    except Exception as e:  # noqa: BLE001 - a config that cannot be composed: say why, exit 2
        print(f"error: cannot compose dataset={args.dataset} {' '.join(args.overrides)}: {e}", file=sys.stderr)
        return 2
    for p in report.problems[: args.max_print]:
        print(p)
    if len(report.problems) > args.max_print:
        print(f"... and {len(report.problems) - args.max_print} more")
    for path, n, bad in report.rows:
        print(f"{path}: {n} entries, {bad} with problems")
    verdict = "OK" if not report.problems else f"{len(report.problems)} problem(s)"
    print(f"check {args.dataset}: {verdict}")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
