"""ImageNet (ImageFolder layout) for pretraining the AF backbones (SGD, 90 epochs, LR steps at 30 / 60,
5-epoch warm-up, batch 256, as the paper's supplement): images are 1-frame clips.

<root>/train/<wnid>/*.JPEG and <root>/val/<wnid>/*.JPEG; classes are the sorted folder names. Training:
random-resized-crop (area 8-100 %, aspect 3/4-4/3) to 224 and a horizontal flip; validation: shorter side
to 256, centre 224. Batches: (x (N, 3, 224, 224), y (N,)); a video model with num_segments=1 takes them.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import LightningDataModule
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from src.data.datamodule import DataConfigError
from src.data.resumable import EpochSampler, resume_start_fn
from src.data.transforms import normalise

EXTENSIONS = {".jpeg", ".jpg", ".png"}


def scan(split_dir: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    classes = sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    items = [(f, i) for i, c in enumerate(classes) for f in sorted((split_dir / c).iterdir())
             if f.suffix.lower() in EXTENSIONS]
    return classes, items


def random_resized_box(h: int, w: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """(top, left, height, width) of a crop covering 8-100 % of the area with aspect ratio in [3/4, 4/3]."""
    for _ in range(10):
        area = h * w * rng.uniform(0.08, 1.0)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        cw, ch = round(math.sqrt(area * ratio)), round(math.sqrt(area / ratio))
        if 0 < cw <= w and 0 < ch <= h:
            return int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1)), ch, cw
    side = min(h, w)
    return (h - side) // 2, (w - side) // 2, side, side


class ImageFolderDataset(Dataset):
    def __init__(self, items: list[tuple[Path, int]], train: bool, crop: int = 224, resize: int = 256, seed: int = 0):
        self.items, self.train, self.crop, self.resize, self.seed = items, train, crop, resize, seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int):
        epoch, i = divmod(int(key), len(self))
        path, label = self.items[i]
        with Image.open(path) as im:
            x = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1)[None].float()
        h, w = x.shape[-2:]
        if self.train:
            rng = np.random.default_rng((self.seed, epoch, i))
            top, left, ch, cw = random_resized_box(h, w, rng)
            x = F.interpolate(x[..., top: top + ch, left: left + cw], size=(self.crop, self.crop), mode="bilinear",
                              align_corners=False, antialias=True)
            if rng.random() < 0.5:
                x = x.flip(-1)
        else:
            s = self.resize / min(h, w)
            x = F.interpolate(x, size=(max(self.crop, round(h * s)), max(self.crop, round(w * s))), mode="bilinear",
                              align_corners=False, antialias=True)
            top, left = (x.shape[-2] - self.crop) // 2, (x.shape[-1] - self.crop) // 2
            x = x[..., top: top + self.crop, left: left + self.crop]
        return normalise(x)[0], torch.tensor(label, dtype=torch.long)


class ImageFolderDataModule(LightningDataModule):
    """ImageNet-style train/val folders; keys match conf/dataset/imagenet.yaml."""

    def __init__(self, name: str, num_classes: int, root: str, metric: str = "top1", crop_size: int = 224,
                 resize_size: int = 256, batch_size: int = 256, num_workers: int = 8, seed: int = 0,
                 prepare_hint: str | None = None, num_segments: int = 1):
        super().__init__()
        self.name, self.num_classes, self.metric, self.root = name, num_classes, metric, Path(root)
        self.crop_size, self.resize_size, self.batch_size = crop_size, resize_size, batch_size
        self.num_workers, self.seed, self.prepare_hint = num_workers, seed, prepare_hint
        self.datasets: dict[str, ImageFolderDataset] = {}

    def check_paths(self) -> None:
        for split in ("train", "val"):
            if not (self.root / split).is_dir():
                hint = f" {self.prepare_hint}" if self.prepare_hint else ""
                raise DataConfigError(f"dataset.root={self.root}: no '{split}' folder (dataset '{self.name}').{hint}")

    def setup(self, stage: str | None = None) -> None:
        self.check_paths()
        for split in ("train", "val"):
            classes, items = scan(self.root / split)
            if len(classes) != self.num_classes:
                raise DataConfigError(f"{self.root / split}: {len(classes)} class folders, but dataset.num_classes="
                                      f"{self.num_classes}")
            self.datasets[split] = ImageFolderDataset(items, split == "train", self.crop_size, self.resize_size,
                                                      self.seed)

    def pop_bad_samples(self) -> tuple[int, int]:
        return 0, 0

    def _loader(self, ds, sampler, drop_last):
        w = self.num_workers
        return DataLoader(ds, batch_size=self.batch_size, sampler=sampler, num_workers=w, drop_last=drop_last,
                          persistent_workers=w > 0, multiprocessing_context="fork" if w > 0 else None)

    def train_dataloader(self):
        t = self.trainer
        sampler = EpochSampler(len(self.datasets["train"]), self.seed, True, True,
                               *((t.global_rank, t.world_size) if t is not None else (0, 1)))
        sampler.set_epoch(t.current_epoch if t is not None else 0)
        sampler.start_fn = resume_start_fn(t, self.batch_size)
        return self._loader(self.datasets["train"], sampler, True)

    def val_dataloader(self):
        return self._loader(self.datasets["val"], EpochSampler(len(self.datasets["val"]), shuffle=False), False)
