"""ImageNet pretraining of an AF backbone, then its checkpoint initialising a video AFNet (by name and shape)."""

from pathlib import Path

import numpy as np
from PIL import Image

from src.models import build_video_model
from src.models.checkpoints import load_pretrained
from src.train import train
from tests.helpers import compose_train


def image_folder(root: Path, classes: int = 3, per_class: int = 4) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in range(classes):
            d = root / split / f"n{c:08d}"
            d.mkdir(parents=True)
            for i in range(per_class):
                Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(d / f"img_{i}.JPEG")
    return root


def test_pretrain_then_initialise_a_video_model(tmp_path):
    image_folder(tmp_path / "data" / "imagenet")
    cfg = compose_train(["experiment=pretrain_imagenet", "backbone=r50", "backbone.options.width=8",
                         f"data_root={tmp_path / 'data'}", "dataset.num_classes=3", "dataset.crop_size=32",
                         "dataset.resize_size=36", "global_batch_size=4", "num_workers=0", "trainer.max_epochs=1",
                         "trainer.enable_progress_bar=false"], tmp_path / "run")
    result = train(cfg)
    assert cfg.num_segments == 1 and result["metrics"]["val/top1"] >= 0
    ckpt = Path(result["last_ckpt"])
    video = build_video_model("afnet", "r50", 174, 8, width=8)
    report = load_pretrained(video, ckpt)
    assert {"fc.weight", "fc.bias"} <= set(report["skipped"])  # 3-way head vs 174-way
    assert any(".nav." in k for k in report["skipped"])        # navigation W2 depends on T (1 vs 8)
    assert "stem.0.weight" in report["loaded"] and len(report["loaded"]) > 500
