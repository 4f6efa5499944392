"""VideoLitModule's steps never wait for the host: on the meta device (CPU lane) any `.item()`, `float()`,
`.tolist()` or data-dependent shape fails, and on CUDA (gpu lane) torch's sync debug mode raises on a sync."""

from __future__ import annotations

import pytest
import torch

from src.lit.video_module import VideoLitModule
from src.models import build_video_model

pytestmark = pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")


def module(method: str, device: str) -> VideoLitModule:
    options = {} if method in ("tsn", "tsm") else {"focal_compute": "masked"}  # sliced may sync once per block
    net = build_video_model(method, "r18", num_classes=5, num_segments=4, width=8, **options)
    return VideoLitModule(net, num_classes=5, rt=0.5, macs_input_size=32).to(device)


def batch(device: str):
    return torch.randn(2, 4, 3, 32, 32, device=device), torch.tensor([1, 3], device=device)


@pytest.mark.parametrize("method", ["afnet_tsm", "afnet_soft", "tsm"])
def test_steps_make_no_host_read_on_the_meta_device(method):
    m = module(method, "meta")
    loss = m.training_step(batch("meta"), 0)
    assert loss.device.type == "meta" and loss.dtype == torch.float32
    m.eval()
    with torch.no_grad():
        m.validation_step(batch("meta"), 0)
    if method != "tsm":
        assert m.val_ratios.ratio_sum.device.type == "meta" and m.val_ratios.ratio_sum.numel() == m.net.num_masks


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [None, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("method", ["afnet_tsm", "afnet_soft", "tsm"])
def test_steps_never_synchronise_on_cuda(method, dtype):
    m = module(method, "cuda")
    x, y = batch("cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = m.training_step((x, y), 0)
            loss.backward()
            m.eval()
            with torch.no_grad():
                m.validation_step((x, y), 0)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(loss).item() and loss.dtype == torch.float32
