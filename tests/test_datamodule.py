import shutil

import pytest
import torch

from src.data import DataConfigError, VideoDataModule
from src.data.lists import ListFormatError
from src.data.sampling import centre_indices
from tests.helpers import TINY_SYNTHETIC


def make_dm(root, fmt="frames", **kw):
    s = root / "synthetic"
    args = dict(name="synthetic", num_classes=6, root=s / ("frames" if fmt == "frames" else "videos"),
                train_list=s / f"train_{'frames' if fmt == 'frames' else 'videos'}.txt",
                val_list=s / f"val_{'frames' if fmt == 'frames' else 'videos'}.txt", classes_file=s / "classes.txt",
                format=fmt, template="img_{:05d}.jpg", num_segments=4, scale_size=(32, 32), crop_size=32,
                flip=False, batch_size=4)
    return VideoDataModule(**{**args, **kw})


@pytest.mark.parametrize("fmt", ["frames", "video"])
def test_batches_from_frames_and_videos(tiny_data_root, fmt):
    dm = make_dm(tiny_data_root, fmt)
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 4, 3, 32, 32) and y.shape == (4,) and y.dtype == torch.int64
    x, y = next(iter(dm.val_dataloader()))
    assert x.shape[1:] == (4, 3, 32, 32)
    assert dm.classes[0] == "moving right" and len(dm.classes) == 6


def test_eval_indices_and_views(tiny_data_root):
    dm = make_dm(tiny_data_root, test_num_clips=2, test_num_crops=3)
    dm.setup("test")
    ds = dm.datasets["test"]
    n = ds.records[0].num_frames
    assert ds.indices_for(0)[:4] == [int(n / 4 * (i + 0.25)) + 1 for i in range(4)]
    x, _ = ds[0]
    assert x.shape == (6, 4, 3, 32, 32)  # 2 clips x 3 crops
    dm1 = make_dm(tiny_data_root)
    dm1.setup("validate")
    assert dm1.datasets["val"].indices_for(0) == centre_indices(n, 4)


def test_frames_and_videos_give_the_same_clip(tiny_data_root):
    a, b = make_dm(tiny_data_root, "frames"), make_dm(tiny_data_root, "video")
    a.setup("validate"), b.setup("validate")
    xa, xb = a.datasets["val"][3][0], b.datasets["val"][3][0]
    assert (xa - xb).abs().mean() < 0.25  # JPEG vs H.264 (4:2:0 chroma) of the same 32 px frames


def test_training_order_is_a_function_of_seed_and_epoch(tiny_data_root):
    dm = make_dm(tiny_data_root)
    dm.setup("fit")
    first = [y.tolist() for _, y in dm.train_dataloader()]
    again = [y.tolist() for _, y in dm.train_dataloader()]
    assert first == again


def test_missing_root_names_the_key_and_the_fix(tmp_path):
    dm = VideoDataModule(name="jester", num_classes=27, root=tmp_path / "nope", train_list="t", val_list="v",
                         prepare_hint="python -m src.data.prepare jester --src ... --out ...")
    with pytest.raises(DataConfigError, match=r"dataset\.root=.*nope.*python -m src.data.prepare jester"):
        dm.check_paths()


def test_bad_list_line_fails_in_setup_with_file_and_line(tiny_data_root, tmp_path):
    src = tiny_data_root / "synthetic"
    lst = tmp_path / "val.txt"
    lines = (src / "val_frames.txt").read_text().splitlines()
    lines[2] = lines[2].rsplit(" ", 1)[0] + " 99"
    lst.write_text("\n".join(lines) + "\n")
    dm = make_dm(tiny_data_root, val_list=lst)
    with pytest.raises(ListFormatError, match=f"{lst}:3: label outside"):
        dm.setup("validate")


def test_unreadable_samples_are_replaced_counted_and_capped(tiny_data_root, tmp_path):
    copy = tmp_path / "synthetic"
    shutil.copytree(tiny_data_root / "synthetic", copy)
    dm = make_dm(tmp_path, max_bad_fraction=0.5)
    dm.setup("validate")
    read = dm.datasets["val"].indices_for(1)[-1]
    (copy / "frames" / "val_00001" / f"img_{read:05d}.jpg").unlink()     # a missing frame that is read
    shutil.rmtree(copy / "frames" / "val_00002")                          # a missing folder
    xs = [dm.datasets["val"][i] for i in range(6)]
    assert all(x.shape == (4, 3, 32, 32) for x, _ in xs)
    # item 1 fails, and so does its replacement (item 2); item 2 fails once: 3 bad reads, 6 good
    assert dm.pop_bad_samples() == (9, 3)
    assert dm.pop_bad_samples() == (0, 0)
    strict = make_dm(tmp_path, max_bad_fraction=0.0)
    strict.setup("validate")
    with pytest.raises(RuntimeError, match="max_bad_fraction"):
        for i in range(30):
            strict.datasets["val"][i % 6]


@pytest.mark.parametrize("name", ["synthetic", "synthetic_video"])
def test_synthetic_configs_build_a_working_datamodule(tiny_data_root, name, tmp_path):
    from hydra.utils import instantiate

    from tests.helpers import compose_train

    cfg = compose_train([f"dataset={name}", f"data_root={tiny_data_root}", "num_segments=4", "batch_size=2",
                         "num_workers=0"], tmp_path)
    cfg.dataset.generate = {**cfg.dataset.generate, **TINY_SYNTHETIC}  # the tiny dataset already generated
    cfg.dataset.scale_size, cfg.dataset.crop_size = [32, 32], 28
    dm = instantiate(cfg.dataset)
    assert dm.flip is False and dm.format == ("frames" if name == "synthetic" else "video")
    dm.check_paths()
    dm.prepare_data()  # finds the finished dataset: nothing to do
    dm.setup("fit")
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (2, 4, 3, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert len(dm.classes) == cfg.dataset.num_classes


@pytest.mark.parametrize("protocol,views", [("single", None), ("official_val", None), ("dense", 10),
                                            ("multi_clip", 30), ("twice", 6)])
def test_test_protocols_from_config(tiny_data_root, protocol, views, tmp_path):
    from hydra.utils import instantiate

    from src.data.sampling import eval_clips_indices
    from tests.helpers import compose_train

    cfg = compose_train([f"test_protocol={protocol}", f"data_root={tiny_data_root}", "num_segments=4",
                         "dataset.scale_size=[32,40]", "dataset.crop_size=32", "num_workers=0"], tmp_path)
    dm = instantiate(cfg.dataset)
    dm.setup("test")
    ds = dm.datasets["test"]
    x, _ = ds[0]
    assert x.shape == ((4, 3, 32, 32) if views is None else (views, 4, 3, 32, 32))
    n = ds.records[0].num_frames
    expected = eval_clips_indices(cfg.test_protocol.sampler, n, 4, cfg.test_protocol.num_clips)
    assert ds.indices_for(0) == [i for clip in expected for i in clip]


def test_bad_test_sampler_names_the_key(tiny_data_root):
    with pytest.raises(DataConfigError, match=r"dataset\.test_sampler='nope'"):
        make_dm(tiny_data_root, test_sampler="nope")
