"""Verify a dataset before training: `python -m src.data.check <dataset> [data_root=...] [key=value ...]`.

The dataset config is composed as training composes it (conf/train.yaml + `dataset=<dataset>` + overrides).
For every line of the train / val / test lists: the frame folder or video file exists; for frames, the
first and last frame exist and the frames on disk match the listed count; for videos, the file decodes to
at least 3 frames and as many as its header says (a truncated file decodes fewer); the label is in range.
classes.txt must hold num_classes names. Prints each problem as `file:line: what`, a summary, and exits 1
if there is any problem (2 if the config itself is unusable). `--decode`: also decode every listed frame
(a zero-byte or corrupt JPEG is a problem). `--quick`: trust video headers, decode nothing. Progress goes to
stderr (a bar on a terminal, a line every 30 s in a log).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from src.data.lists import ListFormatError, parse_list, read_classes
from src.data.prepare.build import MIN_FRAMES
from src.data.prepare.media import frame_indices
from src.utils.progress import progress


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    rows: list[tuple[str, int, int]] = field(default_factory=list)   # (list file, lines, lines with problems)
    note: str = ""

    def add(self, where: str, what: str) -> None:
        self.problems.append(f"{where}: {what}")


def compose_dataset(name: str, overrides: list[str]) -> dict:
    """conf/dataset/<name>.yaml as training sees it, interpolations resolved."""
    from omegaconf import OmegaConf

    from src.utils.runs import compose

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


def undecodable_frames(folder: Path, template: str, first: int, n: int) -> list[str]:
    """Problems of decoding frames first..first+n-1 of a folder (zero-byte or corrupt files), one per frame."""
    from src.data.readers import decode_rgb

    problems = []
    for i in range(first, first + n):
        path = folder / template.format(i)
        try:
            data = path.read_bytes()
        except OSError:
            continue  # missing frames are counted by check_record
        if not data:
            problems.append(f"zero-byte frame: {path}")
            continue
        try:
            decode_rgb(data)
        except Exception as e:  # noqa: BLE001 - PIL raises many kinds on a corrupt file
            why = (str(e).splitlines() or [""])[0]
            problems.append(f"undecodable frame: {path} ({type(e).__name__}: {why})")
    return problems


def check_record(ds: dict, rec, quick: bool, decode: bool = False) -> list[str]:
    """Problems of one list entry (empty if fine); `decode`: decode every listed frame too."""
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
        if decode:
            problems += undecodable_frames(folder, template, start, n)
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


def _check_entry(ds: dict, quick: bool, decode: bool, rec) -> list[str]:
    problems = check_record(ds, rec, quick, decode)
    if any(not 0 <= y < ds["num_classes"] for y in rec.labels):
        problems.append(f"label {rec.label} outside [0, {ds['num_classes']})")
    return problems


def check_list(ds: dict, key: str, report: Report, quick: bool, decode: bool = False, workers: int = 1) -> None:
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
    fn = partial(_check_entry, ds, quick, decode)
    pool = mp.get_context("fork").Pool(workers) if workers > 1 else None
    try:
        results = pool.imap(fn, records, chunksize=16) if pool else map(fn, records)
        for lineno, problems in zip(line_numbers(path), progress(results, len(records), f"check {path.name}")):
            for p in problems:
                report.add(f"{path}:{lineno}", p)
            bad += bool(problems)
    finally:
        if pool:
            pool.terminate()
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


def run_check(name: str, overrides: list[str], quick: bool = False, decode: bool = False, workers: int = 1) -> Report:
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
        check_list(ds, key, report, quick, decode, workers)
    if ds["format"] == "frames" and not decode:
        report.note = " (frames counted, not decoded: --decode decodes each one)"
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m src.data.check", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", help="a conf/dataset/<name>.yaml")
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. data_root=/data dataset.template=...")
    ap.add_argument("--quick", action="store_true", help="videos: trust the header frame count, decode nothing")
    ap.add_argument("--decode", action="store_true",
                    help="frames: decode every listed frame (zero-byte and corrupt JPEGs are problems)")
    ap.add_argument("--workers", type=int, default=1, help="parallel checking processes (default 1)")
    ap.add_argument("--max-print", type=int, default=200, help="problems printed at most (all are counted)")
    args = ap.parse_args(argv)
    if args.workers < 1 or args.max_print < 0:
        ap.error(f"--workers {args.workers} / --max-print {args.max_print}: expected --workers >= 1, --max-print >= 0")
    try:
        report = run_check(args.dataset, args.overrides, args.quick, args.decode, args.workers)
    except Exception as e:  # noqa: BLE001 - a config that cannot be composed: say why, exit 2
        from src.utils.config import one_line

        print(f"error: cannot compose dataset={args.dataset} {' '.join(args.overrides)}: {one_line(e)}",
              file=sys.stderr)
        return 2
    for p in report.problems[: args.max_print]:
        print(p)
    if len(report.problems) > args.max_print:
        print(f"... and {len(report.problems) - args.max_print} more")
    for path, n, bad in report.rows:
        print(f"{path}: {n} entries, {bad} with problems")
    verdict = "OK" if not report.problems else f"{len(report.problems)} problem(s)"
    print(f"check {args.dataset}: {verdict}{report.note}")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
