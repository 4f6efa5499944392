"""Each real dataset, from a tiny copy of its official files through `prepare`, trains with `src.train`."""

import pytest
import torch

from src.train import train
from tests.helpers import compose_train
from tests.helpers.official_data import make_official_copy


@pytest.mark.parametrize("dataset", ["sthv1", "sthv2", "jester", "minik", "activitynet"])
def test_fast_dev_run_on_a_prepared_official_copy(dataset, tmp_path):
    copy = make_official_copy(dataset, tmp_path)
    cfg = compose_train([*copy["overrides"], "debug=fast", "model=afnet", "backbone=r18", "backbone.options.width=8",
                         "num_segments=4", "batch_size=2", "dataset.scale_size=[32,40]", "dataset.crop_size=32"],
                        tmp_path / "run")
    num_classes = {"sthv1": 174, "sthv2": 174, "jester": 27, "minik": 200, "activitynet": 200}[dataset]
    assert cfg.dataset.num_classes == num_classes == len(copy["classes"])
    seen = []

    from lightning.pytorch import Callback

    class Batches(Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            seen.append((tuple(batch[0].shape), batch[1].clone()))

    result = train(cfg, callbacks=[Batches()])
    x_shape, y = seen[0]
    assert x_shape == (2, 4, 3, 32, 32)
    assert y.dtype == torch.int64 and all(0 <= int(v) < num_classes for v in y)
    metric = "mAP" if dataset == "activitynet" else "top1"
    assert f"val/{metric}" in result["metrics"]


def test_jester_r34_afnet_on_a_prepared_copy(tmp_path):
    """`python -m src.train dataset=jester backbone=r34 rt=0.5` on a tiny copy (issue 4, point 2), smoke-sized."""
    copy = make_official_copy("jester", tmp_path)
    cfg = compose_train([*copy["overrides"], "backbone=r34", "rt=0.5", "debug=fast", "backbone.options.width=8",
                         "batch_size=2", "dataset.scale_size=[32,40]", "dataset.crop_size=32"], tmp_path / "run")
    assert train(cfg)["metrics"]["val/top1"] >= 0
