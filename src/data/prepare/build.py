"""From official annotations + media to this suite's dataset folder:

  <out>/classes.txt                       one class name a line, line k is label k
  <out>/{train,val}_videofolder.txt       `<id> <num_frames> <label>` (frames counted on disk)
  <out>/frames/<id>/<template>            frame folders (extracted, or a link to the shipped frames)
  <out>/{train,val}_videos.txt            with --no-extract: `<file> <label>`, files under <out>/videos (a link)
  <out>/prepare_report.txt                every video left out of the lists, and why

Videos with fewer than MIN_FRAMES frames are left out. The lists, classes.txt, the report and the links are
written only at the end of a run that listed at least one video, each atomically: a run that fails (or lists
nothing, e.g. a wrong --frames-from) leaves the earlier ones as they were and writes prepare_report.failed.txt.
A frame folder only gets its final name once complete, so an interrupted run is resumed by running it again.
Progress goes to stderr as it goes (a bar on a terminal, a line every 30 s in a log).
"""

from __future__ import annotations

import multiprocessing as mp
import re
import signal
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from src.data.prepare import annotations, media
from src.utils.files import write_atomic
from src.utils.progress import progress

MIN_FRAMES = 3
SPLITS = ("train", "val")


@dataclass(frozen=True)
class DatasetSpec:
    dir: str                      # folder name under data_root (conf/dataset/<name>.yaml)
    template: str                 # frame file names, numbered from 1
    shipped: str                  # "frames" (official download is frame folders) or "video"
    media_dirs: tuple[str, ...]   # where the media usually sit under --src


SPECS = {
    "sthv1": DatasetSpec("something_v1", "{:05d}.jpg", "frames", ("20bn-something-something-v1", "frames")),
    "sthv2": DatasetSpec("something_v2", "{:06d}.jpg", "video", ("20bn-something-something-v2", "videos")),
    "jester": DatasetSpec("jester", "{:05d}.jpg", "frames", ("20bn-jester-v1", "frames")),
    "minik": DatasetSpec("mini_kinetics", "image_{:05d}.jpg", "video", ("videos", "kinetics400", "train_256")),
    "activitynet": DatasetSpec("activitynet", "image_{:05d}.jpg", "video", ("videos", "v1-3")),
}
KINETICS_STEM = re.compile(r"(.+)_\d{6}_\d{6}")   # <youtube_id>_<start>_<end>, the usual download naming


def media_dir(spec: DatasetSpec, src: Path, given: Path | None) -> Path:
    if given:
        return given
    for name in spec.media_dirs:
        if (src / name).is_dir():
            return src / name
    return src


def video_lookup(videos: dict[str, Path]) -> dict[str, Path]:
    """Keys a video can be found under: its stem, the stem without ActivityNet's `v_` prefix, and the
    YouTube id of Kinetics' `<id>_<start>_<end>` names."""
    keys: dict[str, Path] = {}
    for stem, p in videos.items():
        for k in (stem, stem[2:] if stem.startswith("v_") else None,
                  m.group(1) if (m := KINETICS_STEM.fullmatch(stem)) else None):
            if k:
                keys.setdefault(k, p)
    return keys


def _extract_job(job: tuple) -> tuple[str, int, str]:
    """(status, num_frames, reason) for one video; runs in a worker. status: done | extracted | failed."""
    video, folder, template, fps, short_side = job
    have = media.frame_indices(folder, template)
    if have:  # a folder under its final name is complete (see media.extract_frames)
        return "done", len(have), ""
    try:
        return "extracted", media.extract_frames(video, folder, template, fps, short_side), ""
    except Exception as e:  # noqa: BLE001 - any decoder failure is reported, never fatal
        return "failed", 0, f"decode failed: {type(e).__name__}: {e}".replace("\n", " ")


def _count_job(job: tuple) -> tuple[str, int, str]:
    from src.data.readers import count_frames

    try:
        n = count_frames(job[0])
    except Exception as e:  # noqa: BLE001 - any decoder failure is reported, never fatal
        return "failed", 0, f"decode failed: {type(e).__name__}: {e}".replace("\n", " ")
    return ("counted", n, "") if n else ("failed", 0, "no decodable frame")


def _frames_job(job: tuple) -> tuple[str, int, str]:
    """Shipped frames: (done, frames in the folder, "") or (missing, 0, why)."""
    folder, template = job
    n = len(media.frame_indices(folder, template))
    return ("done", n, "") if n else ("missing", 0, "no frame folder")


def _ignore_interrupts() -> None:
    # Ctrl-C is the main process's: it stops the pool (finished frame folders stay, a re-run resumes)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run(fn, jobs: list, workers: int, desc: str = ""):
    if workers <= 1 or len(jobs) <= 1:
        return [fn(j) for j in progress(jobs, desc=desc)]
    with mp.get_context("fork").Pool(workers, initializer=_ignore_interrupts) as pool:
        return list(progress(pool.imap(fn, jobs, chunksize=4), total=len(jobs), desc=desc))


def prepare(dataset: str, src: Path, out: Path, frames_from: Path | None = None, fps: float | None = None,
            short_side: int | None = None, workers: int = 1, extract: bool = True,
            train_ids: Path | None = None, val_ids: Path | None = None) -> dict:
    """Build `out` for `dataset` from the official files under `src`; returns the summary (also printed).
    `summary["written"]` is False when nothing could be listed (the earlier outputs were left as they were)."""
    t0 = time.time()
    spec = SPECS[dataset]
    src, out = Path(src), Path(out)
    reader = annotations.READERS[dataset]
    ann = reader(src, train_ids, val_ids) if dataset == "minik" else reader(src)
    mdir = media_dir(spec, src, Path(frames_from) if frames_from else None)
    if not mdir.is_dir():
        raise FileNotFoundError(f"--frames-from {mdir}: no such folder")
    report = [f"# {n}" for n in ann.notes]
    summary: dict = {"dataset": dataset, "out": str(out), "classes": len(ann.classes), "media": str(mdir)}
    files = {"classes.txt": "".join(c + "\n" for c in ann.classes)}

    frames_root = out / "frames"
    found = {} if spec.shipped == "frames" else video_lookup(media.index_videos(mdir))
    for split in SPLITS:
        pairs = ann.splits.get(split, [])
        lines, status = [], Counter()
        if spec.shipped == "frames":  # counted where they are: out/frames becomes a link to mdir on success
            results = _run(_frames_job, [(mdir / vid, spec.template) for vid, _ in pairs], workers,
                           f"{split}: counting frames")
        else:
            if extract:
                out.mkdir(parents=True, exist_ok=True)
            todo = [(vid, found.get(vid)) for vid, _ in pairs]
            jobs = [(p, frames_root / vid, spec.template, fps, short_side) for vid, p in todo if p is not None]
            done = iter(_run(_extract_job if extract else _count_job, jobs, workers,
                             f"{split}: {'extracting' if extract else 'counting'} frames"))
            results = [next(done) if p is not None else ("missing", 0, "no video file") for _, p in todo]
        for (vid, label), (state, n, why) in zip(pairs, results):
            if state in ("missing", "failed"):
                status[state] += 1
                report.append(f"{split}\t{vid}\t{why}")
                continue
            if n < MIN_FRAMES:
                status["too_short"] += 1
                report.append(f"{split}\t{vid}\t{n} frames < {MIN_FRAMES}")
                continue
            status[state] += 1
            status["listed"] += 1
            if extract or spec.shipped == "frames":
                lines.append(f"{vid} {n} {label}\n")
            else:
                lines.append(f"{found[vid].relative_to(mdir).as_posix()} {label}\n")
        name = f"{split}_videofolder.txt" if extract or spec.shipped == "frames" else f"{split}_videos.txt"
        files[name] = "".join(lines)
        summary[split] = {"annotated": len(pairs), **status}
    summary["left_out"] = sum(1 for r in report if not r.startswith("#"))
    summary["written"] = any(summary[sp].get("listed") for sp in SPLITS)
    text = "".join(r + "\n" for r in report)
    out.mkdir(parents=True, exist_ok=True)
    if summary["written"]:
        if spec.shipped == "frames" and mdir.resolve() != frames_root.resolve():
            media.link_or_use(mdir, frames_root)
        elif spec.shipped == "video" and not extract:
            media.link_or_use(mdir, out / "videos")
        for name, content in files.items():
            write_atomic(out / name, content)
        write_atomic(out / "prepare_report.txt", text)
        (out / "prepare_report.failed.txt").unlink(missing_ok=True)
    else:
        write_atomic(out / "prepare_report.failed.txt", text)
    summary["seconds"] = round(time.time() - t0, 1)
    return summary
