"""Small stand-ins for a video DataModule and an AFNet-like net, to test the training loop by itself, and a
callback that holds a training process at a known step so a test can kill it there."""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningDataModule
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from src.data.resumable import EpochSampler, ResumableLoader, ignore_stop_signals, resume_start_fn
from src.models.output import VideoOutput


class RandomVideoDataModule(LightningDataModule):
    """Fixed random clips whose label is the sign pattern of the first pixel's mean over time (learnable)."""

    def __init__(self, name="fake", num_classes=4, metric="top1", num_segments=4, crop_size=16, num_videos=48,
                 batch_size=8, seed=0, num_workers=0, **_):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(num_videos, num_segments, 3, crop_size, crop_size, generator=g)
        y = torch.randint(0, num_classes, (num_videos,), generator=g)
        x[:, :, 0] += y.view(-1, 1, 1, 1).float()  # make it learnable
        self.data, self.batch_size, self.seed = TensorDataset(x, y), batch_size, seed
        self.num_classes, self.num_workers = num_classes, num_workers

    def check_paths(self):
        pass

    def train_dataloader(self):
        sampler = EpochSampler(len(self.data), self.seed)
        sampler.set_epoch(self.trainer.current_epoch if self.trainer else 0)
        sampler.start_fn = resume_start_fn(self.trainer, self.batch_size)
        workers = self.num_workers
        return ResumableLoader(self.data, batch_size=self.batch_size, sampler=sampler, num_workers=workers,
                               persistent_workers=workers > 0, worker_init_fn=ignore_stop_signals if workers else None,
                               multiprocessing_context="fork" if workers else None)

    def val_dataloader(self):
        return DataLoader(self.data, batch_size=self.batch_size)


class TinyMaskedNet(nn.Module):
    """Per-frame conv features, one Gumbel-free 'mask' from a learnable logit per frame, avg consensus."""

    def __init__(self, num_classes=4, num_segments=4, method="afnet", backbone="r18", **_):
        super().__init__()
        self.num_segments = num_segments
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.conv.focal_mask_index = 0  # gated by the mask, as a focal block's convs
        self.nav = nn.Linear(8, 1)
        self.fc = nn.Linear(8, num_classes)
        self.tau = 1.0
        self.forced = None

    def set_temperature(self, tau):
        self.tau = tau

    def set_forced_ratio(self, r):
        self.forced = r

    def forward(self, x):
        x = x.flatten(0, 1) if x.dim() == 5 else x
        f = self.conv(x).relu().mean((2, 3))
        soft = torch.sigmoid(self.nav(f))
        hard = (soft > 0.5).float()
        mask = (hard - soft.detach() + soft).view(-1, 1, 1, 1)
        logits = self.fc(f * mask.view(-1, 1))
        return VideoOutput(logits.view(-1, self.num_segments, logits.shape[-1]).mean(1), masks=[mask])


class HoldAtStep(Callback):
    """After optimiser step `step`, write `marker` and sleep: the process then sits at a known point (mid-epoch,
    after whatever checkpoints came before) until the test kills or stops it, however fast the machine trains.
    It holds once: not when `marker` exists (a resumed run with the same settings passes the step).
    Added to a `python -m src.train` run as `+callbacks.hold._target_=tests.helpers.fakes.HoldAtStep` (and its args)."""

    def __init__(self, step: int, marker: str, seconds: float = 3600):
        self.step, self.marker, self.seconds = step, Path(marker), seconds

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step and not self.marker.exists():
            self.marker.write_text(str(self.step))
            end = time.time() + self.seconds
            while time.time() < end and not trainer.received_sigterm:  # a stop signal ends the hold
                time.sleep(0.05)


class FailIf(Callback):
    """Raises at the first training batch of the run whose seed is `bad_seed` while the environment holds
    AFNET_TEST_FAIL=1: a job of a sweep that fails on one launch and succeeds on the next."""

    def __init__(self, seed: int, bad_seed: int):
        self.seed, self.bad_seed = seed, bad_seed

    def on_train_batch_start(self, trainer, *args) -> None:
        if self.seed == self.bad_seed and os.environ.get("AFNET_TEST_FAIL") == "1":
            raise RuntimeError("flaky: this job fails while AFNET_TEST_FAIL=1")
