"""check: a prepared dataset passes; each kind of damage is reported at its list file:line, exit code 1."""

import re
import shutil

import pytest

from src.data.check import main as check_main
from src.data.check import run_check
from tests.helpers.official_data import make_official_copy


@pytest.fixture
def sthv1(tmp_path):
    d = make_official_copy("sthv1", tmp_path)
    d["frames"] = d["src"] / "20bn-something-something-v1"   # <out>/frames links here
    d["list"] = d["out"] / "train_videofolder.txt"
    return d


def problems(d, *extra):
    return run_check(d["dataset"], [*d["overrides"][1:], *extra]).problems


def only_problem(d, lineno: int) -> str:
    found = problems(d)
    assert len(found) >= 1 and all(p.startswith(f"{d['list']}:{lineno}: ") for p in found), found
    return " | ".join(found)


def test_clean_dataset_exit_0(sthv1, capsys):
    assert check_main(["sthv1", *sthv1["overrides"][1:]]) == 0
    assert "check sthv1: OK" in capsys.readouterr().out


def test_frame_deleted(sthv1):
    (sthv1["frames"] / "1001" / "00004.jpg").unlink()
    assert "listed 12 frames, 11 of frames 1..12 on disk" in only_problem(sthv1, 2)


def test_last_frame_missing(sthv1):
    (sthv1["frames"] / "1002" / "00007.jpg").unlink()
    assert "last frame missing" in only_problem(sthv1, 3)


def test_folder_missing(sthv1):
    shutil.rmtree(sthv1["frames"] / "1003")
    assert "frame folder missing" in only_problem(sthv1, 4)


def test_label_out_of_range_and_exit_code(sthv1, capsys):
    lines = sthv1["list"].read_text().splitlines()
    lines[1] = "1001 12 174"
    sthv1["list"].write_text("\n".join(lines) + "\n")
    assert "label 174 outside [0, 174)" in only_problem(sthv1, 2)
    assert check_main(["sthv1", *sthv1["overrides"][1:]]) == 1
    assert f"{sthv1['list']}:2: label 174" in capsys.readouterr().out


def test_class_count_mismatch(sthv1):
    found = problems(sthv1, "dataset.num_classes=10")
    assert any("174 classes, but the config says num_classes=10" in p for p in found)


def test_malformed_line_named(sthv1):
    sthv1["list"].write_text("1000 9 3\n1001 twelve 0\n")
    found = problems(sthv1)
    assert any(f"{sthv1['list']}:2:" in p for p in found)


@pytest.fixture
def anet_videos(tmp_path):
    d = make_official_copy("activitynet", tmp_path, extract=False)
    out = d["out"]
    d["extra"] = ["dataset.format=video", f"dataset.root={out}/videos", f"dataset.train_list={out}/train_videos.txt",
                  f"dataset.val_list={out}/val_videos.txt"]
    d["list"] = out / "train_videos.txt"
    return d


def test_videos_pass_then_zero_length_and_truncated_fail(anet_videos):
    d = anet_videos
    assert problems(d, *d["extra"]) == []
    videos = d["src"] / "videos"
    (videos / "v_yt000000000.mp4").write_bytes(b"")
    data = (videos / "v_yt000000002.mp4").read_bytes()
    (videos / "v_yt000000002.mp4").write_bytes(data[: len(data) // 2])
    found = problems(d, *d["extra"])
    assert any(p.startswith(f"{d['list']}:1: zero-length video") for p in found), found
    assert any(p.startswith(f"{d['list']}:3: ") and ("truncated" in p or "no decodable" in p) for p in found), found
    assert len(found) == 2


def test_truncated_with_header_kept(anet_videos):
    """A faststart file keeps its header and loses trailing frames: decodes fewer frames than announced."""
    import av
    import numpy as np

    d = anet_videos
    rng = np.random.default_rng(0)   # noise frames: the frame data, not the header, make up most of the file
    path = d["src"] / "videos" / "v_yt000000003.mp4"
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=12, options={"threads": "1", "g": "1"})
        stream.width, stream.height, stream.pix_fmt = 40, 32, "yuv420p"
        for _ in range(10):
            f = rng.integers(0, 256, (32, 40, 3), dtype=np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        out.mux(stream.encode())
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * 0.6)])
    found = problems(d, *d["extra"])
    assert len(found) == 1 and found[0].startswith(f"{d['list']}:4: "), found
    assert re.search(r"truncated: decodes [1-9] of the 10 frames its header announces", found[0]), found
