import os

import pytest
import torch

from tests.helpers import TINY_SYNTHETIC

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


@pytest.fixture(scope="session")
def tiny_data_root(tmp_path_factory):
    """A data_root holding a tiny built-in dataset (8 classes x 3 train / 1 val videos, 32x32 frames)."""
    from src.data.synthetic import generate

    root = tmp_path_factory.mktemp("data")
    generate(root / "synthetic", **TINY_SYNTHETIC)
    return root
