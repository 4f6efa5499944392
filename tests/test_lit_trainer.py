"""Device and precision of the Trainer, resolved when a run starts (src/lit/trainer.py), with CUDA mocked."""

from __future__ import annotations

import pytest
import torch

from src.lit.trainer import build_trainer, resolve_device
from src.utils.config import ConfigError
from tests.helpers import compose_train, group_options


@pytest.fixture
def cuda(monkeypatch):
    """Pretend a CUDA GPU of a given compute capability is visible: cuda((major, minor))."""

    def visible(capability):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)

    return visible


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.mark.parametrize("capability,precision", [((9, 0), "bf16-mixed"), ((8, 0), "bf16-mixed"),
                                                  ((7, 5), "16-mixed"), ((6, 1), "16-mixed")])
def test_auto_and_gpu_pick_bf16_where_the_gpu_has_it(cuda, capability, precision):
    cuda(capability)
    assert resolve_device("auto", None) == ("gpu", precision)
    assert resolve_device("gpu", None) == ("gpu", precision)


def test_cpu_defaults_to_32_true_with_or_without_a_gpu(cuda, no_cuda):
    assert resolve_device("auto", None) == ("cpu", "32-true")
    assert resolve_device("cpu", None) == ("cpu", "32-true")
    cuda((9, 0))
    assert resolve_device("cpu", None) == ("cpu", "32-true")


def test_a_precision_the_user_sets_is_kept(cuda):
    cuda((9, 0))
    assert resolve_device("auto", "32-true") == ("gpu", "32-true")
    assert resolve_device("auto", 16) == ("gpu", "16-mixed")
    assert resolve_device("gpu", "bf16") == ("gpu", "bf16-mixed")
    assert resolve_device("cpu", "bf16-mixed") == ("cpu", "bf16-mixed")


@pytest.mark.parametrize("accelerator,precision,key", [("gpu", None, "trainer.accelerator=gpu"),
                                                       ("cpu", "16-mixed", "trainer.precision=16-mixed"),
                                                       ("cpu", "fp8", "trainer.precision='fp8'")])
def test_impossible_devices_name_their_key(no_cuda, accelerator, precision, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        resolve_device(accelerator, precision)


def test_auto_is_the_default_trainer_and_every_option_leaves_precision_to_the_device(tmp_path):
    assert compose_train([], tmp_path).trainer.accelerator == "auto"
    for option in group_options("trainer"):
        assert compose_train([f"trainer={option}"], tmp_path).trainer.precision is None, option


def test_build_trainer_on_the_cpu(no_cuda, tmp_path):
    cfg = compose_train(["trainer.enable_progress_bar=false"], tmp_path)
    trainer = build_trainer(cfg.trainer, logger=False, enable_checkpointing=False)
    assert trainer.precision == "32-true" and trainer.strategy.root_device.type == "cpu"
    bf16 = build_trainer(cfg.trainer, precision="bf16-mixed", logger=False, enable_checkpointing=False)
    assert bf16.precision == "bf16-mixed"


def test_train_with_trainer_gpu_and_no_gpu_fails_before_any_work(no_cuda, tmp_path):
    from src.train import train

    cfg = compose_train(["trainer=gpu", "data_root=/nonexistent"], tmp_path)
    with pytest.raises(ConfigError, match="trainer.accelerator=gpu: no CUDA device"):
        train(cfg)
