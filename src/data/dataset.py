"""VideoDataset: list + reader + frame sampler + clip transform, with bad samples replaced and counted."""

from __future__ import annotations

import logging
import multiprocessing as mp

import numpy as np
import torch
from torch.utils.data import Dataset

from src.data import sampling, transforms
from src.data.lists import VideoRecord
from src.data.readers import SampleReadError

log = logging.getLogger(__name__)


class BadSampleCounter:
    """Samples tried / unreadable, in shared memory so DataLoader workers (forked) add to the same counts."""

    def __init__(self):
        self.seen = mp.Value("l", 0)
        self.bad = mp.Value("l", 0)

    def add(self, bad: bool) -> tuple[int, int]:
        with self.seen.get_lock():
            self.seen.value += 1
            self.bad.value += int(bad)
            return self.seen.value, self.bad.value

    def pop(self) -> tuple[int, int]:
        """(seen, bad) since the last pop; resets both."""
        with self.seen.get_lock():
            out = (self.seen.value, self.bad.value)
            self.seen.value = self.bad.value = 0
            return out


class VideoDataset(Dataset):
    """One clip per item: `(clip, label)`, clip float (T, 3, crop, crop), or (V, T, 3, crop, crop) for V test views.

    Evaluation reads `num_clips` clips chosen by `sampler` (`src.data.sampling.EVAL_SAMPLERS`; `twice`: 2 clips),
    each as `num_crops` crops (1 centre, or 3 along the longer side): V = clips x crops views, in that order.

    Training keys are `index + epoch * len(self)` (see `src.data.resumable.EpochSampler(encode_epoch=True)`),
    so the random frame choice and crop are a function of (seed, epoch, index), whatever worker reads it.
    An unreadable sample is logged, counted and replaced by the next readable one; past `max_bad_fraction`
    of the samples seen (after at least 20), a RuntimeError stops the run.
    """

    def __init__(self, records: list[VideoRecord], reader, num_segments: int, train: bool, scale_size, crop_size: int,
                 flip: bool = False, num_clips: int = 1, num_crops: int = 1, sampler: str = "uniform", seed: int = 0,
                 max_bad_fraction: float = 0.05, counter: BadSampleCounter | None = None):
        self.records, self.reader, self.t = records, reader, num_segments
        self.train, self.scale_size, self.crop, self.flip = train, tuple(scale_size), crop_size, flip
        self.num_clips, self.num_crops, self.sampler = num_clips, num_crops, sampler
        self.seed, self.max_bad_fraction = seed, max_bad_fraction
        self.counter = counter or BadSampleCounter()

    def __len__(self) -> int:
        return len(self.records)

    def clips_indices(self, i: int, rng: np.random.Generator | None = None) -> list[list[int]]:
        """The 1-based frame indices of each clip read for item i (one clip in training)."""
        n = self.records[i].num_frames
        if self.train:
            return [sampling.tsn_train_indices(n, self.t, rng)]
        return sampling.eval_clips_indices(self.sampler, n, self.t, self.num_clips)

    def indices_for(self, i: int) -> list[int]:
        """Evaluation frame indices of item i, all clips concatenated."""
        return [j for clip in self.clips_indices(i) for j in clip]

    def _load(self, i: int, rng: np.random.Generator) -> torch.Tensor:
        rec = self.records[i]
        if not rec.num_frames:
            raise SampleReadError(f"{getattr(self.reader, 'root', '.')}/{rec.path}: video has no frames")
        if self.train:
            raw = self.reader.read(rec.path, self.clips_indices(i, rng)[0])
            return transforms.train_transform(raw, self.scale_size, self.crop, self.flip, rng)
        views = []
        for idx in self.clips_indices(i):
            x = transforms.eval_transform(self.reader.read(rec.path, idx), self.scale_size, self.crop, self.num_crops)
            views.extend(x.unbind(0) if self.num_crops > 1 else [x])
        return views[0] if len(views) == 1 else torch.stack(views)

    def __getitem__(self, key: int):
        epoch, i = divmod(int(key), len(self))
        for attempt in range(len(self)):
            j = (i + attempt) % len(self)
            rng = np.random.default_rng((self.seed, epoch, j))
            try:
                clip = self._load(j, rng)
            except SampleReadError as e:
                seen, bad = self.counter.add(bad=True)
                log.warning("unreadable sample replaced by the next one: %s", e)
                if seen >= 20 and bad / seen > self.max_bad_fraction:
                    raise RuntimeError(f"{bad} of {seen} samples unreadable (> max_bad_fraction="
                                       f"{self.max_bad_fraction}); last: {e}") from e
                continue
            self.counter.add(bad=False)
            return clip, torch.tensor(self.records[j].label, dtype=torch.long)
        raise RuntimeError("no readable sample in the whole dataset")
