"""Tiny copies of each dataset's official download (annotation files in the official formats + media), and
`make_official_copy(dataset, root)`, which also runs `prepare` so the result is ready to train on.

Every class name is written to the label files (174 / 27 / 200 classes) but only a few videos have media; the
rest are reported missing by prepare, which keeps generation cheap (~0.1-0.5 s per dataset). Frame i of every
video is a uniform grey of level `grey(i)`, so a test can tell from a clip which frames were read.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from src.data.prepare import SPECS, prepare

FRAME_HW = (32, 40)
NUM_CLASSES = {"sthv1": 174, "sthv2": 174, "jester": 27, "minik": 200, "activitynet": 200}
ODD_ID = "vidé o 1"        # a video id with a space and a non-ASCII letter


def grey(i: int) -> int:
    """The grey level of frame i (1-based)."""
    return min(255, 10 + 12 * i)


def frames_array(n: int, hw=FRAME_HW) -> np.ndarray:
    return np.stack([np.full((*hw, 3), grey(i), np.uint8) for i in range(1, n + 1)])


def write_frames(folder: Path, n: int, template: str, hw=FRAME_HW) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames_array(n, hw), 1):
        Image.fromarray(f).save(folder / template.format(i), quality=95)


def write_video(path: Path, n: int, hw=FRAME_HW, fps: int = 12) -> None:
    """H.264 mp4, or VP9 for a .webm path (Sth-Sth V2 ships webm)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    codec = "libvpx-vp9" if path.suffix == ".webm" else "libx264"
    with av.open(str(path), "w") as out:
        opts = {"threads": "1"} if codec == "libvpx-vp9" else {"crf": "18", "threads": "1", "x264-params": "mbtree=0"}
        stream = out.add_stream(codec, rate=fps, options=opts)
        stream.width, stream.height, stream.pix_fmt = hw[1], hw[0], "yuv420p"
        for f in frames_array(n, hw):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(stream.encode())


def class_names(dataset: str) -> list[str]:
    """Label-file class names; V2's are templates without brackets, so `[something]` resolves to them."""
    k = NUM_CLASSES[dataset]
    if dataset in ("sthv1", "sthv2"):
        return [f"Moving something {i:03d} away from something" for i in range(k)]
    if dataset == "jester":
        return [f"Gesture {i:02d}" for i in range(k)]
    return [f"activity {i:03d}" for i in range(k)]


# (id, num_frames, label) of the videos that get media; the val split has one per dataset.
def media_plan(dataset: str, odd: bool) -> dict[str, list[tuple[str, int, int]]]:
    base = 1000 if dataset in ("sthv1", "sthv2", "jester") else 0
    ids = [str(base + i) if base else f"yt{i:09d}" for i in range(5)]
    if odd and dataset in ("minik", "activitynet"):
        ids[1] = ODD_ID
    return {"train": [(ids[0], 9, 3), (ids[1], 12, 0), (ids[2], 7, 5), (ids[3], 10, 3)], "val": [(ids[4], 8, 5)]}


def _write_semicolon(src: Path, prefix: str, names: list[str], plan, template: str, media: Path,
                     listed: list[str] | None = None) -> None:
    """listed: the labels file's order of the class names (default: `names`)."""
    (src / f"{prefix}-labels.csv").write_text("".join(n + "\n" for n in listed or names), encoding="utf-8")
    for split, official in (("train", "train"), ("val", "validation")):
        rows = [f"{vid};{names[y]}\n" for vid, _, y in plan[split]]
        (src / f"{prefix}-{official}.csv").write_text("".join(rows), encoding="utf-8")
        for vid, n, _ in plan[split]:
            write_frames(media / vid, n, template)


def unsorted(names: list[str]) -> list[str]:
    """The class names in an order that is not the sorted one (odd positions first)."""
    return names[1::2] + names[0::2]


def write_official(dataset: str, src: Path, odd: bool = True, broken: bool = False,
                   shuffle_classes: bool = False) -> dict:
    """Write the official-format files of `dataset` under src; returns the media plan. broken: one extra
    train video whose file is not a video (prepare must report and skip it). shuffle_classes: the V1 / Jester
    labels file lists the classes in `unsorted` order; Mini-Kinetics and ActivityNet get an official class list
    (classInd.txt, `index name` lines, 1-based) in that order."""
    src.mkdir(parents=True, exist_ok=True)
    names, plan = class_names(dataset), media_plan(dataset, odd)
    if dataset == "sthv1":
        _write_semicolon(src, "something-something-v1", names, plan, "{:05d}.jpg", src / "20bn-something-something-v1",
                         unsorted(names) if shuffle_classes else None)
    elif dataset == "jester":
        _write_semicolon(src, "jester-v1", names, plan, "{:05d}.jpg", src / "20bn-jester-v1",
                         unsorted(names) if shuffle_classes else None)
    elif dataset == "sthv2":
        # labels.json order is not the alphabetical one: the indices are the classes' order
        order = list(reversed(names))
        (src / "something-something-v2-labels.json").write_text(json.dumps({n: str(i) for i, n in enumerate(order)}))
        for split, official in (("train", "train"), ("val", "validation")):
            items = []
            for vid, n, y in plan[split]:
                template = order[y].replace("something", "[something]")
                items.append({"id": vid, "label": template.replace("[something]", "a cup"), "template": template,
                              "placeholders": ["a cup", "a cup"]})
                write_video(src / "20bn-something-something-v2" / f"{vid}.webm", n)
            (src / f"something-something-v2-{official}.json").write_text(json.dumps(items))
    elif dataset == "minik":
        # Kinetics-400 CSVs cover all 200 classes; the split files name one id per class plus the media ones
        rows = ["label,youtube_id,time_start,time_end,split\n"]
        extra = [(f"nomedia{k:04d}", k) for k in range(len(names))]
        for split in ("train", "val"):
            for vid, n, y in plan[split]:
                rows.append(f'"{names[y]}",{vid},10,20,{split}\n')
                write_video(src / "videos" / split / names[y] / f"{vid}_000010_000020.mp4", n)
        rows += [f'"{names[y]}",{vid},0,10,train\n' for vid, y in extra]
        (src / "kinetics_train.csv").write_text("".join(rows), encoding="utf-8")
        (src / "train_ytid_list.txt").write_text("".join(v + "\n" for v, *_ in plan["train"] + extra),
                                                 encoding="utf-8")
        (src / "val_ytid_list.txt").write_text("".join(v + "\n" for v, *_ in plan["val"]), encoding="utf-8")
    elif dataset == "activitynet":
        db = {f"nomedia{k:04d}": {"subset": "training", "duration": 10.0, "url": "",
                                  "annotations": [{"label": n, "segment": [0.0, 5.0]}]} for k, n in enumerate(names)}
        for split, subset in (("train", "training"), ("val", "validation")):
            for vid, n, y in plan[split]:
                # a second, different annotation: the label is the first one's
                db[vid] = {"subset": subset, "duration": 10.0, "url": "", "annotations": [
                    {"label": names[y], "segment": [1.0, 4.0]}, {"label": names[(y + 1) % len(names)],
                                                                 "segment": [5.0, 6.0]}]}
                write_video(src / "videos" / f"v_{vid}.mp4", n)
        db["testvideo"] = {"subset": "testing", "duration": 5.0, "url": "", "annotations": []}
        (src / "activity_net.v1-3.min.json").write_text(json.dumps({"version": "VERSION 1.3", "database": db}),
                                                        encoding="utf-8")
    else:
        raise ValueError(dataset)
    if shuffle_classes and dataset in ("minik", "activitynet"):
        (src / "classInd.txt").write_text("".join(f"{i} {n}\n" for i, n in enumerate(unsorted(names), 1)),
                                          encoding="utf-8")
    if broken:
        if SPECS[dataset].shipped != "video":
            raise ValueError(f"{dataset} ships frames: no video to break")
        _add_broken_video(dataset, src, names)
    return plan


def _add_broken_video(dataset: str, src: Path, names: list[str]) -> None:
    vid = "broken0001" if dataset != "sthv2" else "99999"
    if dataset == "sthv2":
        path = src / "something-something-v2-train.json"
        items = json.loads(path.read_text())
        t = names[0].replace("something", "[something]")
        items.append({"id": vid, "label": t, "template": t, "placeholders": []})
        path.write_text(json.dumps(items))
        (src / "20bn-something-something-v2" / f"{vid}.webm").write_bytes(b"\x1aE\xdf\xa3 not really a webm" * 10)
        return
    if dataset == "minik":
        with open(src / "kinetics_train.csv", "a", encoding="utf-8") as f:
            f.write(f'"{names[0]}",{vid},0,10,train\n')
        with open(src / "train_ytid_list.txt", "a", encoding="utf-8") as f:
            f.write(vid + "\n")
        (src / "videos" / f"{vid}_000000_000010.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 garbage" * 10)
        return
    path = src / "activity_net.v1-3.min.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    doc["database"][vid] = {"subset": "training", "annotations": [{"label": names[0], "segment": [0, 1]}]}
    path.write_text(json.dumps(doc), encoding="utf-8")
    (src / "videos" / f"v_{vid}.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 garbage" * 10)


def make_official_copy(dataset: str, root: str | Path, odd: bool = True, broken: bool = False,
                       shuffle_classes: bool = False, **prepare_kw) -> dict:
    """Official-format files under <root>/official/<dataset>, prepared into <root>/data/<config dir>.

    Returns {dataset, data_root, src, out, classes, plan, summary, overrides}: `overrides` select the dataset
    in `python -m src.train` / `hydra.compose(config_name="train")` (the path quoted: it may hold spaces)."""
    root = Path(root)
    src, data_root = root / "official" / dataset, root / "data"
    out = data_root / SPECS[dataset].dir
    plan = write_official(dataset, src, odd=odd, broken=broken, shuffle_classes=shuffle_classes)
    summary = prepare(dataset, src, out, **prepare_kw)
    classes = (out / "classes.txt").read_text(encoding="utf-8").splitlines()
    return {"dataset": dataset, "data_root": data_root, "src": src, "out": out, "classes": classes, "plan": plan,
            "summary": summary, "overrides": [f"dataset={dataset}", f"data_root='{data_root}'"]}
