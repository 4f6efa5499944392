"""Readers of each dataset's official annotation files: class names (in label order) and, per split, the
(video id, label) pairs. Pure file parsing, no media access.

Where a file can take more than one name in the wild, `find` tries the official name first, then a glob.

Label order = the order the released checkpoints were trained with, so their class indices mean the same:
- Something-Something V1 and Jester: the class names sorted (Python's `sorted`, by code point), as TSM's label
  scripts write category.txt, whatever the order of the labels file;
- Something-Something V2: the ids of something-something-v2-labels.json;
- Mini-Kinetics and ActivityNet: the order of an official class list placed beside the annotations
  (`CLASS_LISTS`: one name a line, optionally with its index), else the class names sorted, the order of
  the Kinetics label map (alphabetical).
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path


class AnnotationError(ValueError):
    """An official annotation file that is missing or cannot be parsed; the message names the file."""


@dataclass
class Annotations:
    classes: list[str]
    splits: dict[str, list[tuple[str, int]]] = field(default_factory=dict)   # split -> [(video id, label)]
    notes: list[str] = field(default_factory=list)                           # entries skipped, with why


def find(src: Path, names: list[str], pattern: str | None = None) -> Path:
    """The first of `names` under src (or, failing that, the single file matching `pattern`, recursively)."""
    for n in names:
        for p in (src / n, *src.glob(f"*/{n}")):
            if p.is_file():
                return p
    if pattern:
        hits = sorted(src.rglob(pattern))
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise AnnotationError(f"{src}: several files match {pattern!r}: {[str(h) for h in hits]}")
    raise AnnotationError(f"{src}: none of {names} found")


def _semicolon_rows(path: Path) -> list[tuple[int, str, str]]:
    """(line number, id, label) of an `id;label` file (Sth-Sth V1, Jester)."""
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        vid, sep, label = line.partition(";")
        if not sep:
            raise AnnotationError(f"{path}:{lineno}: expected 'id;label': {line!r}")
        rows.append((lineno, vid.strip(), label.strip()))
    return rows


def _semicolon_dataset(src: Path, prefix: str) -> Annotations:
    """Labels file (one class a line) + `id;label` train and validation files; label = index in sorted names."""
    labels_file = find(src, [f"{prefix}-labels.csv"])
    classes = sorted({ln.strip() for ln in labels_file.read_text(encoding="utf-8").splitlines() if ln.strip()})
    index = {c: i for i, c in enumerate(classes)}
    ann = Annotations(classes)
    for split, official in (("train", "train"), ("val", "validation")):
        path = find(src, [f"{prefix}-{official}.csv"])
        pairs = []
        for lineno, vid, label in _semicolon_rows(path):
            if label not in index:
                raise AnnotationError(f"{path}:{lineno}: label {label!r} is not in {labels_file.name}")
            pairs.append((vid, index[label]))
        ann.splits[split] = pairs
    return ann


def sthv1(src: Path) -> Annotations:
    return _semicolon_dataset(src, "something-something-v1")


def jester(src: Path) -> Annotations:
    return _semicolon_dataset(src, "jester-v1")


def sthv2_class_name(template: str) -> str:
    """The labels.json form of a V2 template: "Putting [something] on [something]" -> "Putting something on
    something" (the official files differ only by the brackets)."""
    return re.sub(r"\[([^\]]*)\]", r"\1", template).strip()


def sthv2(src: Path) -> Annotations:
    """labels.json {name: "idx"}; train/validation.json [{id, label, template, placeholders}]. The class comes
    from the template (the `label` field has the placeholders filled with the actual objects)."""
    labels_file = find(src, ["something-something-v2-labels.json"])
    mapping = {k: int(v) for k, v in json.loads(labels_file.read_text(encoding="utf-8")).items()}
    classes = [name for name, _ in sorted(mapping.items(), key=lambda kv: kv[1])]
    if sorted(mapping.values()) != list(range(len(classes))):
        raise AnnotationError(f"{labels_file}: the indices are not 0..{len(classes) - 1}")
    ann = Annotations(classes)
    for split, official in (("train", "train"), ("val", "validation")):
        path = find(src, [f"something-something-v2-{official}.json"])
        pairs = []
        for k, item in enumerate(json.loads(path.read_text(encoding="utf-8"))):
            name = sthv2_class_name(item["template"])
            if name not in mapping:
                raise AnnotationError(f"{path}: entry {k} (id {item['id']}): class {name!r} not in {labels_file.name}")
            pairs.append((str(item["id"]), mapping[name]))
        ann.splits[split] = pairs
    return ann


CLASS_LISTS = ["classInd.txt", "class_list.txt", "category.txt", "categories.txt",
               "kinetics_label_map.txt", "label_map_k400.txt"]


def class_key(name: str) -> str:
    """A class name as lists in the wild spell it: case, quotes, brackets and `_` for spaces do not matter."""
    return " ".join(re.sub(r"[\"'()\[\]]", "", name).replace("_", " ").lower().split())


def read_class_list(path: Path) -> list[str]:
    """Class names of a class-list file in label order: one name a line, optionally with its index before it
    (`12 abseiling`, `12,abseiling`; 0- or 1-based), then ordered by that index."""
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            m = re.fullmatch(r"\s*(\d+)[\s,;:]+(.*\S)\s*", line)
            rows.append((int(m[1]), m[2]) if m else (lineno, line.strip()))
    return [name for _, name in sorted(rows, key=lambda r: r[0])]


def official_order(src: Path, names: set[str], notes: list[str]) -> list[str]:
    """`names` in the order of the first `CLASS_LISTS` file under src (or one folder below), else sorted.
    The list may hold more classes (Kinetics-400's for Mini-Kinetics); it must hold every one of `names`."""
    path = next((p for n in CLASS_LISTS for p in (src / n, *sorted(src.glob(f"*/{n}"))) if p.is_file()), None)
    if path is None:
        notes.append(f"class order: names sorted (no {' / '.join(CLASS_LISTS[:2])} ... under {src})")
        return sorted(names)
    by_key = {class_key(n): n for n in names}
    order = [by_key.pop(class_key(n)) for n in read_class_list(path) if class_key(n) in by_key]
    if by_key:
        raise AnnotationError(f"{path}: classes {sorted(by_key.values())[:3]} of the annotations are not in this "
                              f"class list ({len(by_key)} missing)")
    notes.append(f"class order: {path}")
    return order


def kinetics_rows(path: Path) -> list[dict]:
    """Rows of a Kinetics-400 CSV (`label,youtube_id,time_start,time_end,split[,is_cc]`); [] for any other CSV
    (the test CSV has no label column in some releases, and downloads often hold unrelated CSVs)."""
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    return rows if rows and {"label", "youtube_id"} <= set(rows[0]) else []


def minik(src: Path, train_ids: Path | None = None, val_ids: Path | None = None) -> Annotations:
    """Mini-Kinetics-200: Kinetics-400 CSVs give each YouTube id its label; the split files (one id a line)
    choose the videos. The classes are the Kinetics labels that occur in the split files (200 with the standard
    split), in `official_order`. Ids absent from the CSVs are noted and skipped."""
    label_of: dict[str, str] = {}
    for csv_path in sorted([*src.glob("*.csv"), *src.glob("*/*.csv")]):
        for row in kinetics_rows(csv_path):
            if row.get("label"):
                label_of[row["youtube_id"].strip()] = row["label"].strip()
    if not label_of:
        raise AnnotationError(f"{src}: no Kinetics-400 CSV (label,youtube_id,...) found in it or its subfolders")
    ann = Annotations([])
    chosen: dict[str, list[tuple[str, str]]] = {}
    for split, given, names in (("train", train_ids, ["train_ytid_list.txt", "mini_train_ids.txt"]),
                                ("val", val_ids, ["val_ytid_list.txt", "mini_val_ids.txt"])):
        path = Path(given) if given else find(src, names)
        chosen[split] = []
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            yid = line.strip()
            if not yid:
                continue
            if yid not in label_of:
                ann.notes.append(f"{path}:{lineno}: id {yid} not in the Kinetics CSVs, skipped")
                continue
            chosen[split].append((yid, label_of[yid]))
    ann.classes = official_order(src, {label for pairs in chosen.values() for _, label in pairs}, ann.notes)
    index = {c: i for i, c in enumerate(ann.classes)}
    ann.splits = {s: [(v, index[c]) for v, c in pairs] for s, pairs in chosen.items()}
    return ann


def activitynet(src: Path) -> Annotations:
    """activity_net.v1-3.min.json: classes = the label names over all annotations, in `official_order`; a video's
    label is its first annotation's label (untrimmed videos may hold several segments, nearly always of one class).
    subset training -> train, validation -> val; testing has no labels and is skipped."""
    path = find(src, ["activity_net.v1-3.min.json"], "activity_net*.json")
    database = json.loads(path.read_text(encoding="utf-8"))["database"]
    notes: list[str] = []
    classes = official_order(src, {a["label"] for v in database.values() for a in v.get("annotations", [])}, notes)
    index = {c: i for i, c in enumerate(classes)}
    ann = Annotations(classes, {"train": [], "val": []}, notes)
    for vid, v in database.items():
        split = {"training": "train", "validation": "val"}.get(v.get("subset"))
        if split is None:
            continue
        if not v.get("annotations"):
            ann.notes.append(f"{path}: video {vid} ({v.get('subset')}) has no annotation, skipped")
            continue
        ann.splits[split].append((vid, index[v["annotations"][0]["label"]]))
    return ann


READERS = {"sthv1": sthv1, "sthv2": sthv2, "jester": jester, "minik": minik, "activitynet": activitynet}
