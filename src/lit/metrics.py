"""Video-level metrics beyond torchmetrics' accuracy, computed on the device of their inputs.

Mean average precision follows the definition of AR-Net / AdaFocus (what the AFNet paper reports for
ActivityNet and Mini-Kinetics): softmax over the class scores, then for each class AP = the sum of the precisions
at the ranks of its positive videos / its number of positives, averaged over the classes that have at least one
positive, in percent. torchmetrics' average precision groups tied scores as thresholds of a precision-recall
curve, so it differs from this on ties; this definition ranks ties in input order (a stable sort).

`MaskRatios` accumulates the realised selection ratio of every focal block over an epoch, on the device, so a
validation step never waits for the host.
"""

from __future__ import annotations

import torch
from torchmetrics import Metric


def mean_average_precision(scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """mAP in percent (a 0-dim float32 tensor on `scores`' device) over the classes with at least one positive.

    scores: (N, K) video-level logits (softmax is applied here); labels: (N,) class indices or (N, K) binary.
    Every class is ranked at once (a stable descending sort per column); no value leaves the device.
    """
    probs = scores.float().softmax(dim=1)
    if labels.dim() == 1:
        labels = torch.nn.functional.one_hot(labels.long(), probs.shape[1])
    order = torch.sort(probs, dim=0, descending=True, stable=True).indices  # (N, K)
    hits = labels.to(probs.device).bool().gather(0, order).float()  # (N, K): 1 where the ranked video is positive
    ranks = torch.arange(1, hits.shape[0] + 1, device=hits.device, dtype=hits.dtype).unsqueeze(1)
    positives = hits.sum(0)  # (K,)
    ap = (hits.cumsum(0) / ranks * hits).sum(0) / positives.clamp(min=1)
    has_positive = positives > 0
    return 100.0 * (ap * has_positive).sum() / has_positive.sum().clamp(min=1)


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
        return mean_average_precision(scores, labels)


def mask_ratios(masks: list[torch.Tensor]) -> torch.Tensor:
    """(M,) float32 on the masks' device, differentiable: the mean of each mask over all its elements (frames, or
    positions of the frames for spatial masks), computed in float32 under any autocast precision.
    masks: M tensors, e.g. (N*T, 1, 1, 1) temporal or (N*T, 1, H, W) spatial."""
    return torch.stack([m.float().mean() for m in masks])


class MaskRatios(Metric):
    """Realised selection ratio per focal block over an epoch, weighted by videos (DDP-synced sums).

    update(masks, spatial_masks, videos): the batch's M temporal masks (each (N*T, 1, 1, 1)), its spatial masks
    (each (N*T, 1, H, W), or empty), and its number of videos N. compute() -> (ratios, costs), each (M,):
    the mean temporal ratio of each block, and the mean of ratio x spatial ratio (the fraction of each block's
    focal compute that ran; equal to `ratios` without spatial masks), stacked as one (2, M) tensor (torchmetrics
    would squeeze a (1,) result to a scalar). (2, 0) for a model without masks.
    """

    full_state_update = False

    def __init__(self):
        super().__init__()
        # sums over videos, in float64 so that epoch means are exact to float rounding of the GMACs
        self.add_state("ratio_sum", default=torch.zeros(0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("cost_sum", default=torch.zeros(0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("videos", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, masks: list[torch.Tensor], spatial_masks: list[torch.Tensor], videos: int) -> None:
        self.videos = self.videos + videos
        if not masks:
            return
        ratios = mask_ratios(masks).detach().double() * videos
        costs = ratios * mask_ratios(spatial_masks).detach().double() if spatial_masks else ratios
        if self.ratio_sum.numel() == 0:
            self.ratio_sum, self.cost_sum = ratios, costs
        else:
            self.ratio_sum, self.cost_sum = self.ratio_sum + ratios, self.cost_sum + costs

    def compute(self) -> torch.Tensor:
        return torch.stack([self.ratio_sum, self.cost_sum]) / self.videos.clamp(min=1)
