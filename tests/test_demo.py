"""`python -m src.demo`: one video (mp4 or frame folder) through a checkpoint, top-5 and the selection PNG."""

import pytest
import torch
from PIL import Image

from src.demo import main as demo_main
from src.demo import natural_key, read_frames
from tests.helpers import cli, train_tiny_checkpoint


@pytest.fixture(scope="module")
def afnet_ckpt(tiny_data_root, tmp_path_factory):
    return train_tiny_checkpoint(tiny_data_root, tmp_path_factory.mktemp("run"), "afnet_tsm")


def first_val_video(data_root, kind: str):
    root = data_root / "synthetic"
    rel = (root / f"val_{kind}.txt").read_text().split()[0]
    return root / ("videos" if kind == "videos" else "frames") / rel


@pytest.mark.parametrize("kind", ["videos", "frames"])
def test_demo_classifies_a_video_and_draws_the_selection(afnet_ckpt, tiny_data_root, kind, tmp_path, capsys):
    video = first_val_video(tiny_data_root, kind)
    out = tmp_path / "demo.png"
    pred, path = demo_main([str(video), f"ckpt_path={afnet_ckpt}", f"out={out}", "device=cpu"])
    printed = capsys.readouterr().out
    assert path == out and out.is_file()
    assert len(pred.top) == 5 and abs(sum(p for _, p in pred.top) - 1) < 0.5
    assert pred.top[0][0] in printed and "realised ratio" in printed and "GFLOPs" in printed
    assert pred.top[0][0] in (tiny_data_root / "synthetic" / "classes.txt").read_text()  # names, not indices
    assert len(pred.indices) == 4 and len(pred.block_masks) > 0 and all(len(m) == 4 for m in pred.block_masks)
    assert 0 <= pred.ratio <= 1 and pred.gflops > 0
    img = Image.open(out)
    assert img.width > 4 * 96 and img.height > 96 + len(pred.block_masks) * 48


def test_mp4_and_frame_folder_give_the_same_prediction(afnet_ckpt, tiny_data_root, tmp_path):
    a, _ = demo_main([str(first_val_video(tiny_data_root, "videos")), f"ckpt_path={afnet_ckpt}",
                      f"out={tmp_path / 'a.png'}"])
    b, _ = demo_main([str(first_val_video(tiny_data_root, "frames")), f"ckpt_path={afnet_ckpt}",
                      f"out={tmp_path / 'b.png'}"])
    assert a.indices == b.indices and a.top[0][0] == b.top[0][0]


def test_demo_follows_the_test_protocol(afnet_ckpt, tiny_data_root, tmp_path):
    pred, _ = demo_main([str(first_val_video(tiny_data_root, "videos")), f"ckpt_path={afnet_ckpt}",
                         "test_protocol=twice", f"out={tmp_path / 'x.png'}"])
    assert pred.views == 6  # 2 clips x 3 crops


def test_frame_folders_are_read_in_natural_order(tmp_path):
    for i in (1, 2, 10):
        Image.new("RGB", (8, 8), (i, 0, 0)).save(tmp_path / f"f{i}.png")
    assert sorted(["f10.png", "f2.png", "f1.png"], key=lambda n: natural_key(tmp_path / n)) == [
        "f1.png", "f2.png", "f10.png"]
    clip = read_frames(tmp_path, [3, 1])
    assert clip.shape == (2, 8, 8, 3) and clip[:, 0, 0, 0].tolist() == [10, 1]


@pytest.mark.parametrize("args,message", [
    (["nope.mp4", "ckpt_path=CKPT"], "nope.mp4: no such video file or frame folder"),
    (["VIDEO"], "ckpt_path=PATH is required"),
    (["VIDEO", "ckpt_path=CKPT", "topk=x"], "topk='x'"),
    (["VIDEO", "ckpt_path=CKPT", "device=cuda:7"] if not torch.cuda.is_available() else ["VIDEO", "ckpt_path=CKPT",
                                                                                        "device=tpu"], "device="),
])
def test_bad_demo_arguments_are_named(afnet_ckpt, tiny_data_root, args, message, capsys):
    video = str(first_val_video(tiny_data_root, "videos"))
    args = [a.replace("CKPT", str(afnet_ckpt)).replace("VIDEO", video) for a in args]
    with pytest.raises(SystemExit) as e:
        demo_main(args)
    assert e.value.code == 2 and message in capsys.readouterr().err


def test_empty_frame_folder_is_named(afnet_ckpt, tmp_path, capsys):
    with pytest.raises(SystemExit):
        demo_main([str(tmp_path), f"ckpt_path={afnet_ckpt}"])
    assert "no frame images" in capsys.readouterr().err


def test_demo_help():
    proc = cli(["-m", "src.demo", "--help"], timeout=60)
    assert proc.returncode == 0 and "ckpt_path" in proc.stdout and "frame" in proc.stdout


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_demo_on_the_gpu_matches_the_cpu(afnet_ckpt, tiny_data_root, tmp_path):
    video = str(first_val_video(tiny_data_root, "videos"))
    cpu, _ = demo_main([video, f"ckpt_path={afnet_ckpt}", "device=cpu", f"out={tmp_path / 'c.png'}"])
    gpu, _ = demo_main([video, f"ckpt_path={afnet_ckpt}", "device=cuda", f"out={tmp_path / 'g.png'}"])
    assert gpu.top[0][0] == cpu.top[0][0] and abs(gpu.top[0][1] - cpu.top[0][1]) < 1e-3
    assert gpu.block_masks == cpu.block_masks
