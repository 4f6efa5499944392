"""Training steps through Lightning in every precision: the loss stays finite and gradients reach the navigation.

Default lane: a CPU subset (tiny ResNet-18 AFNet-TSM and TSM, 32-true and bf16-mixed), so CI catches dtype bugs
without a GPU. GPU lane (`make test-gpu`): TSN / TSM / AFNet / AFNet-TSM / AFNet-soft on ResNet-18, ResNet-50 and
MobileNetV3 in 32-true, bf16-mixed and 16-mixed, and validation with the sliced focal path equal to the masked one.
"""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch import Callback
from torch.utils.data import DataLoader, TensorDataset

from src.lit.video_module import VideoLitModule
from src.models import build_video_model

METHODS = ("tsn", "tsm", "afnet", "afnet_tsm", "afnet_soft")
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
T, K = 4, 5


def tiny_net(method: str, backbone: str, **options):
    size = {"width_mult": 0.25} if backbone == "mbv3" else {"width": 8}
    return build_video_model(method, backbone, num_classes=K, num_segments=T, **size, **options)


def clips(videos: int = 12, size: int = 32, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(videos, T, 3, size, size, generator=g)
    return TensorDataset(x, torch.randint(0, K, (videos,), generator=g))


class GradientProbe(Callback):
    """Per optimiser step: the loss, and the navigation's gradient (after AMP unscaling) as (all finite, |g| sum)."""

    def __init__(self):
        self.losses, self.nav = [], []

    def on_before_optimizer_step(self, trainer, module, optimizer):
        grads = [p.grad for n, p in module.net.named_parameters()
                 if any(part.startswith("nav") for part in n.split(".")) and p.grad is not None]
        if grads:
            self.nav.append((all(bool(torch.isfinite(g).all()) for g in grads),
                             sum(float(g.float().abs().sum()) for g in grads)))

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


def train_steps(method: str, backbone: str, accelerator: str, precision: str) -> GradientProbe:
    """One epoch of 3 SGD steps of a tiny net through Lightning on random clips; returns what the probe saw."""
    pl.seed_everything(0)
    net = tiny_net(method, backbone)
    module = VideoLitModule(net, num_classes=K, optim={"lr": 0.01}, lambda_rt=1.0, rt=0.5,
                            tau_schedule={"kind": "exponential", "t0": 1.0, "t1": 0.01, "t_end": 10},
                            macs_input_size=32)
    probe = GradientProbe()
    trainer = pl.Trainer(accelerator=accelerator, devices=1, precision=precision, max_epochs=1, logger=False,
                         callbacks=[probe], enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0)
    trainer.fit(module, train_dataloaders=DataLoader(clips(), batch_size=4))
    return probe


def check_probe(probe: GradientProbe, method: str) -> None:
    assert len(probe.losses) == 3 and all(torch.isfinite(torch.tensor(probe.losses))), probe.losses
    if method.startswith("afnet"):
        # every step's gradient finite, or skipped by the fp16 scaler and then finite; at least one that moves
        assert probe.nav and any(finite and total > 0 for finite, total in probe.nav), probe.nav
    else:
        assert not probe.nav


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
@pytest.mark.parametrize("method", ["afnet_tsm", "tsm"])
def test_cpu_training_steps(method, precision):
    check_probe(train_steps(method, "r18", "cpu", precision), method)


def test_cpu_soft_selection_trains_its_navigation_under_bf16():
    check_probe(train_steps("afnet_soft", "r18", "cpu", "bf16-mixed"), "afnet_soft")


@pytest.mark.gpu
@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("backbone", ["r18", "r50", "mbv3"])
@pytest.mark.parametrize("method", METHODS)
def test_gpu_training_steps(method, backbone, precision):
    check_probe(train_steps(method, backbone, "gpu", precision), method)


# bf16 keeps 8 bits of mantissa: sliced and masked add the same terms in other orders, so logits agree to ~1e-2
SLICED_TOLERANCE = {"32-true": 1e-4, "bf16-mixed": 5e-2}


@pytest.mark.gpu
@pytest.mark.parametrize("precision", list(SLICED_TOLERANCE))
@pytest.mark.parametrize("method,backbone", [("afnet", "r50"), ("afnet_tsm", "r18"), ("afnet_tsm", "mbv3")])
def test_gpu_validation_sliced_equals_masked(method, backbone, precision):
    """Through Lightning on CUDA: the sliced focal path validates like the masked one (same masks, ratios and
    GMACs; logits within the tolerance of the precision). Every mask selects half the frames (a forced ratio)."""
    pl.seed_everything(0)
    net = tiny_net(method, backbone)
    net.set_forced_ratio(0.5)
    data = DataLoader(clips(videos=8, seed=1), batch_size=4)
    results, logits = {}, {}
    for path in ("masked", "sliced"):
        net.focal_compute = path
        module = VideoLitModule(net, num_classes=K, macs_input_size=32)
        trainer = pl.Trainer(accelerator="gpu", devices=1, precision=precision, logger=False,
                             enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
        trainer.validate(module, dataloaders=data, verbose=False)
        results[path] = module.last_eval_metrics
        x = next(iter(data))[0].cuda()
        module.cuda().eval()
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision != "32-true"):
            out = module.net(x)
        logits[path] = out.logits.float()
        assert float(torch.stack([m.float().mean() for m in out.masks]).mean()) == 0.5
    for key in ("val/ratio", "val/gflops"):
        assert results["sliced"][key] == pytest.approx(results["masked"][key], rel=1e-6), key
    scale = float(logits["masked"].abs().max()) + 1.0
    torch.testing.assert_close(logits["sliced"], logits["masked"], rtol=0, atol=SLICED_TOLERANCE[precision] * scale)
