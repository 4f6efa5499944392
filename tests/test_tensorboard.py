"""`logger=tensorboard`: event files in the run folder, or one line naming the extra when it is missing."""

import importlib.util

import pytest

from src.train import train
from src.utils.config import ConfigError
from src.utils.loggers import check_logger_packages
from tests.helpers import compose_train, tiny_backbone, tiny_overrides

HAVE_TB = any(importlib.util.find_spec(m) for m in ("tensorboard", "tensorboardX"))


@pytest.mark.skipif(not HAVE_TB, reason="tensorboard extra not installed (pip install -e .[tensorboard])")
def test_tensorboard_logger_writes_events(tiny_data_root, tmp_path):
    cfg = compose_train([*tiny_overrides(tiny_data_root), *tiny_backbone("r18"), "model=tsm", "logger=tensorboard",
                         "trainer.max_epochs=1", "++trainer.limit_train_batches=2", "++trainer.limit_val_batches=1"],
                        tmp_path)
    train(cfg)
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_missing_tensorboard_names_the_extra(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("tensorboard", "tensorboardX") else real(name, *a))
    with pytest.raises(ConfigError, match=r"logger\.tensorboard: .*pip install -e '\.\[tensorboard\]'"):
        check_logger_packages(compose_train(["logger=tensorboard"], tmp_path))
