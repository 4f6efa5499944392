"""prepare: official annotation files + media -> lists, classes.txt, frame folders; the result trains."""

import os
import shutil

import pytest
import torch
from helpers import compose_train
from hydra.utils import instantiate

from src.data.check import run_check
from src.data.prepare import media, prepare
from src.data.prepare.__main__ import main as prepare_main
from src.data.prepare.annotations import sthv2_class_name
from src.data.transforms import MEAN, STD
from tests.helpers.official_data import ODD_ID, class_names, grey, make_official_copy, write_video

DATASETS = ["sthv1", "sthv2", "jester", "minik", "activitynet"]


def list_lines(out, split="train", kind="videofolder"):
    return (out / f"{split}_{kind}.txt").read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("dataset", DATASETS)
def test_prepare_then_check_passes(tmp_path, dataset):
    d = make_official_copy(dataset, tmp_path)
    names = class_names(dataset)
    # label order: the labels file's line order (V1, Jester), labels.json indices (V2), sorted names (Kinetics, ANet)
    assert d["classes"] == (list(reversed(names)) if dataset == "sthv2" else names)
    for split in ("train", "val"):
        assert list_lines(d["out"], split) == [f"{v} {n} {y}" for v, n, y in d["plan"][split]]
    report = run_check(dataset, d["overrides"][1:])
    assert report.problems == [] and [r[1:] for r in report.rows] == [(4, 0), (1, 0)]


def test_extracted_frames_follow_the_template_and_video(tmp_path):
    d = make_official_copy("sthv2", tmp_path)
    folder = d["out"] / "frames" / "1000"
    assert sorted(os.listdir(folder)) == [f"{i:06d}.jpg" for i in range(1, 10)]
    from PIL import Image

    levels = [int(round(float(torch.tensor(list(Image.open(folder / f"{i:06d}.jpg").getdata())).float().mean())))
              for i in (1, 5, 9)]
    assert all(abs(a - grey(i)) <= 3 for a, i in zip(levels, (1, 5, 9)))


def test_rerun_skips_finished_videos_and_ignores_leftovers(tmp_path):
    d = make_official_copy("activitynet", tmp_path)
    first = d["out"] / "frames" / "yt000000000" / "image_00001.jpg"
    stamp = first.stat().st_mtime_ns
    (d["out"] / "frames" / ".yt000000002.tmp123").mkdir()        # an interrupted extraction
    shutil.rmtree(d["out"] / "frames" / "yt000000002")
    s = prepare("activitynet", d["src"], d["out"])
    assert s["train"]["done"] == 3 and s["train"]["extracted"] == 1 and s["train"]["listed"] == 4
    assert first.stat().st_mtime_ns == stamp
    assert list_lines(d["out"]) == [f"{v} {n} {y}" for v, n, y in d["plan"]["train"]]


def test_spaces_non_ascii_and_undecodable_video(tmp_path):
    d = make_official_copy("minik", tmp_path / "dir with spaces é", broken=True)
    assert any(line.startswith(f"{ODD_ID} 12 ") for line in list_lines(d["out"]))
    report = (d["out"] / "prepare_report.txt").read_text(encoding="utf-8")
    assert "train\tbroken0001\tdecode failed" in report
    assert d["summary"]["train"]["failed"] == 1 and d["summary"]["train"]["listed"] == 4
    assert not any("broken0001" in line for line in list_lines(d["out"]))
    assert not (d["out"] / "frames" / "broken0001").exists()
    assert run_check("minik", d["overrides"][1:]).problems == []


def test_short_videos_dropped_and_reported(tmp_path):
    d = make_official_copy("sthv1", tmp_path)
    folder = d["src"] / "20bn-something-something-v1" / "1002"
    for i in range(3, 8):
        (folder / f"{i:05d}.jpg").unlink()
    s = prepare("sthv1", d["src"], d["out"])
    assert s["train"]["too_short"] == 1 and s["train"]["listed"] == 3
    assert "train\t1002\t2 frames < 3" in (d["out"] / "prepare_report.txt").read_text()
    assert not any(line.startswith("1002 ") for line in list_lines(d["out"]))


def test_fps_and_short_side(tmp_path):
    video = tmp_path / "v.mp4"
    write_video(video, 24, hw=(32, 48), fps=12)
    n = media.extract_frames(video, tmp_path / "f", "{:05d}.jpg", fps=6, short_side=16)
    assert n == 12 and len(os.listdir(tmp_path / "f")) == 12
    from PIL import Image

    assert Image.open(tmp_path / "f" / "00001.jpg").size == (24, 16)


def test_video_lists_without_extraction(tmp_path):
    d = make_official_copy("activitynet", tmp_path, extract=False)
    assert list_lines(d["out"], "train", "videos")[:2] == ["v_yt000000000.mp4 3", f"v_{ODD_ID}.mp4 0"]
    assert not (d["out"] / "frames").exists()
    out = d["out"]
    report = run_check("activitynet", [*d["overrides"][1:], "dataset.format=video", f"dataset.root={out}/videos",
                                       f"dataset.train_list={out}/train_videos.txt",
                                       f"dataset.val_list={out}/val_videos.txt"])
    assert report.problems == []


def test_cli_summary_and_missing_annotations(tmp_path, capsys):
    d = make_official_copy("sthv2", tmp_path)
    shutil.rmtree(d["out"] / "frames")
    assert prepare_main(["sthv2", "--src", str(d["src"]), "--out", str(d["out"]), "--workers", "2"]) == 0
    assert "train annotated       4  listed       4  extracted 4" in capsys.readouterr().out
    assert list_lines(d["out"], "val") == ["1004 8 5"]
    assert prepare_main(["sthv1", "--src", str(tmp_path / "empty"), "--out", str(tmp_path / "o")]) == 2
    assert "something-something-v1-labels.csv" in capsys.readouterr().err


def test_sthv2_template_to_class_name():
    assert sthv2_class_name("Putting [something] on [something similar]") == "Putting something on something similar"


def test_datamodule_from_config_reads_the_planned_frames(tmp_path):
    d = make_official_copy("sthv1", tmp_path)
    cfg = compose_train([*d["overrides"], "num_segments=4", "batch_size=2", "num_workers=0",
                         "dataset.scale_size=[32,40]", "dataset.crop_size=32"])
    dm = instantiate(cfg.dataset)
    assert dm.num_classes == 174 and not dm.flip
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (2, 4, 3, 32, 32) and y.shape == (2,)
    x, y = next(iter(dm.val_dataloader()))
    assert x.shape == (1, 4, 3, 32, 32) and y.tolist() == [5]
    levels = ((x[0] * STD + MEAN) * 255).mean(dim=(1, 2, 3))
    expected = torch.tensor([float(grey(i)) for i in (2, 4, 6, 8)])   # segment centres of 8 frames, T=4
    assert torch.allclose(levels, expected, atol=3)
