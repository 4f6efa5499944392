"""Video-level metrics beyond torchmetrics' accuracy: mean average precision as SPEC §8 defines it."""

from __future__ import annotations

import torch
from torchmetrics import Metric


def mean_average_precision(scores: torch.Tensor, labels: torch.Tensor) -> float:
    """mAP in percent over the classes that have at least one positive (SPEC §8, AR-Net/AdaFocus practice).

    scores: (N, K) video-level scores (logits; softmax is applied here); labels: (N,) class indices or
    (N, K) binary matrix. For each class: rank videos by score, precision at each rank = TP so far / rank,
    AP = sum of precisions at the positive ranks / number of positives.
    """
    probs = scores.float().softmax(dim=1)
    if labels.dim() == 1:
        labels = torch.nn.functional.one_hot(labels.long(), probs.shape[1])
    labels = labels.bool()
    aps = []
    for k in range(probs.shape[1]):
        pos = labels[:, k]
        if not pos.any():
            continue
        order = torch.argsort(probs[:, k], descending=True, stable=True)
        hits = pos[order].float()
        precision = hits.cumsum(0) / torch.arange(1, len(hits) + 1)
        aps.append(float((precision * hits).sum() / hits.sum()))
    return 100.0 * sum(aps) / max(1, len(aps))


class MeanAveragePrecision(Metric):
    """Accumulates (scores, labels) over an epoch and computes `mean_average_precision` (DDP-synced)."""

    full_state_update = False

    def __init__(self):
        super().__init__()
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")

    def update(self, scores: torch.Tensor, labels: torch.Tensor) -> None:
        self.scores.append(scores.detach().float())
        self.labels.append(labels.detach())

    def compute(self) -> torch.Tensor:
        scores = self.scores if isinstance(self.scores, torch.Tensor) else torch.cat(self.scores)
        labels = self.labels if isinstance(self.labels, torch.Tensor) else torch.cat(self.labels)
        return torch.tensor(mean_average_precision(scores, labels))
