import os

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("HYDRA_FULL_ERROR", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` are collected in every run and skipped where no CUDA device is visible."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (make test-gpu on a GPU machine)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


TINY_SYNTHETIC = dict(seed=3, train_per_class=3, val_per_class=1, size=32, min_frames=6, max_frames=14)


@pytest.fixture(scope="session")
def tiny_data_root(tmp_path_factory):
    """A data_root holding a tiny built-in dataset (8 classes x 3 train / 1 val videos, 32x32 frames)."""
    from src.data.synthetic import generate

    root = tmp_path_factory.mktemp("data")
    generate(root / "synthetic", **TINY_SYNTHETIC)
    return root


def tiny_overrides(data_root) -> list[str]:
    """Overrides that point the default config at `tiny_data_root` with tiny sizes, on the CPU (the default lane's
    bit-exact checks hold there; the GPU lane chooses its trainer itself)."""
    gen = [f"dataset.generate.{k}={v}" for k, v in TINY_SYNTHETIC.items()]
    return [f"data_root={data_root}", "dataset.scale_size=[32,32]", "dataset.crop_size=32", "batch_size=4",
            "num_workers=0", "trainer=cpu", "trainer.enable_progress_bar=false", *gen]


def tiny_backbone(backbone: str) -> list[str]:
    """Select a backbone at a tiny width (fast enough for CPU smoke tests)."""
    size = "backbone.options.width_mult=0.25" if backbone == "mbv3" else "backbone.options.width=8"
    return [f"backbone={backbone}", size]
