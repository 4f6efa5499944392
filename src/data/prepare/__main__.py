"""CLI: `python -m src.data.prepare <dataset> --src DIR --out DIR [--frames-from DIR --fps F --short-side S
--workers W --no-extract]`. Prints progress (stderr) and a summary table. Exit status: 0 lists written, 1 nothing
could be listed (earlier lists kept; why in <out>/prepare_report.failed.txt), 2 bad arguments or annotations,
130 interrupted (finished frame folders are kept: run it again to resume)."""

from __future__ import annotations

import argparse
import json
import sys

from src.data.prepare.annotations import AnnotationError
from src.data.prepare.build import SPECS, prepare

EXPECTED_FILES = {
    "sthv1": "something-something-v1-{labels,train,validation}.csv + 20bn-something-something-v1/<id>/%05d.jpg",
    "sthv2": "something-something-v2-{labels,train,validation}.json + 20bn-something-something-v2/<id>.webm",
    "jester": "jester-v1-{labels,train,validation}.csv + 20bn-jester-v1/<id>/%05d.jpg",
    "minik": "Kinetics-400 CSVs (label,youtube_id,time_start,time_end,split) + train_ytid_list.txt / "
             "val_ytid_list.txt (Mini-Kinetics-200 ids, one a line) + the video files",
    "activitynet": "activity_net.v1-3.min.json + the videos (v_<id>.mp4 or <id>.<ext>)",
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m src.data.prepare", description=__doc__,
                                 epilog="\n".join(f"{k}: {v}" for k, v in EXPECTED_FILES.items()),
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", choices=sorted(SPECS))
    ap.add_argument("--src", required=True, help="the official download (annotation files; media found below)")
    ap.add_argument("--out", required=True, help="the dataset root, e.g. ${data_root}/" + "<dir of the config>")
    ap.add_argument("--frames-from", default=None,
                    help="folder of the media: video files to extract (sthv2, minik, activitynet) or frame folders "
                         "(sthv1, jester); default: the usual folder name under --src, else --src")
    ap.add_argument("--fps", type=float, default=None, help="frames kept per second (default: every frame)")
    ap.add_argument("--short-side", type=int, default=None, help="resize frames to this shorter side (default: native)")
    ap.add_argument("--workers", type=int, default=1, help="parallel decoding processes")
    ap.add_argument("--no-extract", action="store_true",
                    help="video datasets: write {train,val}_videos.txt for format=video instead of extracting frames")
    ap.add_argument("--train-ids", default=None, help="minik: the train id list (default: found under --src)")
    ap.add_argument("--val-ids", default=None, help="minik: the val id list (default: found under --src)")
    args = ap.parse_args(argv)
    for flag, value in (("--workers", args.workers), ("--fps", args.fps), ("--short-side", args.short_side)):
        if value is not None and value <= 0:
            ap.error(f"{flag} {value}: expected a positive number")
    try:
        s = prepare(args.dataset, args.src, args.out, args.frames_from, args.fps, args.short_side, args.workers,
                    not args.no_extract, args.train_ids, args.val_ids)
    except (AnnotationError, FileNotFoundError) as e:
        print(f"error: {e}; expected under --src: {EXPECTED_FILES[args.dataset]}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished frame folders are kept, lists unchanged; run the same command to resume",
              file=sys.stderr)
        return 130
    print(f"{s['dataset']}: {s['classes']} classes -> {s['out']}  (media: {s['media']}, {s['seconds']} s)")
    for split in ("train", "val"):
        row = s[split]
        print(f"  {split:5s} annotated {row['annotated']:7d}  listed {row.get('listed', 0):7d}  "
              + "  ".join(f"{k} {v}" for k, v in sorted(row.items()) if k not in ("annotated", "listed")))
    if not s["written"]:
        print(f"  nothing listed: earlier lists left as they were; why: {s['out']}/prepare_report.failed.txt")
    elif s["left_out"]:
        print(f"  {s['left_out']} videos left out: see {s['out']}/prepare_report.txt")
    if s["written"] and args.no_extract and SPECS[args.dataset].shipped == "video":
        print(f"  train with: dataset.format=video dataset.root={s['out']}/videos "
              f"dataset.train_list={s['out']}/train_videos.txt dataset.val_list={s['out']}/val_videos.txt")
    print(json.dumps(s))
    return 0 if s["written"] else 1


if __name__ == "__main__":
    sys.exit(main())
