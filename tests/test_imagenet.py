"""ImageFolderDataModule (ImageNet layout) built from conf/dataset/imagenet.yaml, and check on it."""

import numpy as np
import pytest
import torch
from helpers import compose_train
from hydra.utils import instantiate
from PIL import Image

from src.data.check import run_check
from src.data.imagenet import random_resized_box
from src.data.transforms import MEAN, STD

WNIDS = ["n02", "n01", "n03"]   # written unsorted: labels follow the sorted folder names


@pytest.fixture
def imagenet_root(tmp_path):
    root = tmp_path / "imagenet"
    for split, per_class in (("train", 3), ("val", 1)):
        for wnid in WNIDS:
            level = 40 + 60 * int(wnid[-1])    # class k is a uniform grey of level 40 + 60 k
            for j in range(per_class):
                d = root / split / wnid
                d.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.full((30 + 7 * j, 50, 3), level, np.uint8)).save(d / f"img{j}.JPEG", quality=95)
    (root / "train" / "n01" / "notes.txt").write_text("not an image")
    return tmp_path


def make_dm(data_root, *extra):
    cfg = compose_train(["dataset=imagenet", f"data_root={data_root}", "batch_size=3", "num_workers=0",
                         "dataset.num_classes=3", "dataset.crop_size=24", "dataset.resize_size=28", *extra])
    return instantiate(cfg.dataset)


def test_batches_labels_and_val_centre_crop(imagenet_root):
    dm = make_dm(imagenet_root)
    dm.setup("fit")
    assert len(dm.datasets["train"]) == 9 and len(dm.datasets["val"]) == 3
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (3, 3, 24, 24) and y.shape == (3,) and y.dtype == torch.int64
    x, y = next(iter(dm.val_dataloader()))
    assert y.tolist() == [0, 1, 2]
    level = ((x * STD[0] + MEAN[0]) * 255).mean(dim=(1, 2, 3))
    assert torch.allclose(level, torch.tensor([100.0, 160.0, 220.0]), atol=3)   # n01, n02, n03


def test_train_crops_are_deterministic_per_seed(imagenet_root):
    a, b, c = make_dm(imagenet_root), make_dm(imagenet_root), make_dm(imagenet_root, "seed=1")
    for dm in (a, b, c):
        dm.setup("fit")
    assert torch.equal(a.datasets["train"][4][0], b.datasets["train"][4][0])
    assert torch.equal(a.datasets["train"][13][0], b.datasets["train"][13][0])   # epoch 1, item 4
    boxes = {random_resized_box(100, 120, np.random.default_rng(s)) for s in range(20)}
    assert len(boxes) > 10 and all(0 < h <= 100 and 0 < w <= 120 for _, _, h, w in boxes)


def test_wrong_class_count_fails(imagenet_root):
    from src.data import DataConfigError

    dm = make_dm(imagenet_root, "dataset.num_classes=1000")
    with pytest.raises(DataConfigError, match="3 class folders"):
        dm.setup("fit")


def test_check_imagenet(imagenet_root):
    ok = [f"data_root={imagenet_root}", "dataset.num_classes=3"]
    assert run_check("imagenet", ok).problems == []
    (imagenet_root / "imagenet" / "val" / "n04").mkdir()
    found = run_check("imagenet", ok).problems
    assert any("4 class folders, but num_classes=3" in p for p in found)
    assert any("different class folders" in p for p in found) and any("empty class folder" in p for p in found)
