"""Hard Gumbel-Softmax with straight-through gradients."""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-10


def gumbel_noise(like: torch.Tensor) -> torch.Tensor:
    """G = -log(eps - log(U + eps)), U ~ Unif(0, 1): the official code's form of -log(-log U)."""
    u = torch.rand_like(like)
    return -torch.log(EPS - torch.log(u + EPS))


def hard_gumbel_softmax(logits: torch.Tensor, tau: float, noise: bool = True, dim: int = -1) -> torch.Tensor:
    """One-hot of argmax(logits + G) in the forward pass; the gradient of softmax((logits + G) / tau) in the
    backward pass. Noise on the raw logits equals noise on log-softmax (they differ by a per-row constant).
    noise=False gives the deterministic argmax of the logits, still with the straight-through gradient."""
    y = logits + gumbel_noise(logits) if noise else logits
    soft = F.softmax(y / tau, dim=dim)
    hard = F.one_hot(y.argmax(dim), y.shape[dim]).movedim(-1, dim).to(soft.dtype)
    return hard - soft.detach() + soft
