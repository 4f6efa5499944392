"""Class indices are the ones the released checkpoints were trained with, whatever the order of the label files:
sorted names for Sth-Sth V1 and Jester, the JSON ids for V2, an official class list (else sorted names) for
Mini-Kinetics and ActivityNet."""

import json

import pytest

from src.data.prepare import annotations
from src.data.prepare.annotations import AnnotationError
from tests.helpers.official_data import class_names, make_official_copy, unsorted


def labels(out, split="train") -> list[int]:
    return [int(line.rsplit(" ", 1)[1]) for line in (out / f"{split}_videofolder.txt").read_text().splitlines()]


@pytest.mark.parametrize("dataset", ["sthv1", "jester"])
def test_sorted_names_whatever_the_labels_file_order(tmp_path, dataset):
    d = make_official_copy(dataset, tmp_path, shuffle_classes=True)
    names = class_names(dataset)
    assert d["classes"] == sorted(names) == names and unsorted(names) != names
    assert labels(d["out"]) == [y for _, _, y in d["plan"]["train"]]  # index of the name in the sorted list


def test_sorting_is_by_code_point_as_python_sorts(tmp_path):
    src = tmp_path / "v1"
    src.mkdir()
    (src / "something-something-v1-labels.csv").write_text("pushing something\nMoving something\nHolding it\n")
    (src / "something-something-v1-train.csv").write_text("1;pushing something\n2;Holding it\n")
    (src / "something-something-v1-validation.csv").write_text("3;Moving something\n")
    ann = annotations.sthv1(src)
    assert ann.classes == ["Holding it", "Moving something", "pushing something"]
    assert ann.splits == {"train": [("1", 2), ("2", 0)], "val": [("3", 1)]}


def test_sthv2_uses_the_json_ids(tmp_path):
    d = make_official_copy("sthv2", tmp_path)
    assert d["classes"] == list(reversed(class_names("sthv2")))  # the fixture's ids are the reversed names


@pytest.mark.parametrize("dataset", ["minik", "activitynet"])
def test_official_class_list_sets_the_order_else_sorted(tmp_path, dataset):
    names = class_names(dataset)
    listed = make_official_copy(dataset, tmp_path / "listed", shuffle_classes=True)
    order = unsorted(names)
    assert listed["classes"] == order
    assert labels(listed["out"]) == [order.index(names[y]) for _, _, y in listed["plan"]["train"]]
    plain = make_official_copy(dataset, tmp_path / "plain")
    assert plain["classes"] == sorted(names)


def test_class_list_matches_spellings_and_must_cover_every_class(tmp_path):
    src = tmp_path / "anet"
    src.mkdir()
    db = {"a": {"subset": "training", "annotations": [{"label": "Playing bagpipes", "segment": [0, 1]}]},
          "b": {"subset": "validation", "annotations": [{"label": "Applying sunscreen", "segment": [0, 1]}]}}
    (src / "activity_net.v1-3.min.json").write_text(json.dumps({"database": db}))
    (src / "classInd.txt").write_text("0,playing_bagpipes\n1,Zumba\n2,applying_sunscreen\n")
    ann = annotations.activitynet(src)
    assert ann.classes == ["Playing bagpipes", "Applying sunscreen"] and ann.splits["val"] == [("b", 1)]
    (src / "classInd.txt").write_text("Zumba\nPlaying bagpipes\n")
    with pytest.raises(AnnotationError, match=r"classInd.txt: classes \['Applying sunscreen'\]"):
        annotations.activitynet(src)
