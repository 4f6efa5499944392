"""Building blocks shared by every trunk: `conv_bn` and the residual-block contract `ResidualBlock`."""

from __future__ import annotations

import torch
from torch import nn

from src.models.temporal_shift import temporal_shift


def conv_bn(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    """A bias-free k x k conv with 'same' padding (k // 2) and the BatchNorm2d that follows it."""
    return nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)


class ResidualBlock(nn.Module):
    """y = act(skip(x) + F(shift(x))), one contract for every residual block of the suite.

    x: (N*T, C_in, H, W), the T frames of each video contiguous; y: (N*T, C_out, H/s, W/s).
    shift: the TSM residual shift over `shift_segments` frames (0 = off), applied to F's input only: the skip
    path always sees each frame's own features. Subclasses define
      residual(x): F, per frame (frames never mix inside F), on an already shifted input;
      skip_path(x): the skip branch (x itself by default), or None for a block without a skip connection;
      relu_out: whether act is a ReLU (True) or the identity.
    A caller that gates F per frame (the AFNet focal blocks) uses these three pieces directly.
    """

    shift_segments: int = 0
    relu_out: bool = True

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def skip_path(self, x: torch.Tensor) -> torch.Tensor | None:
        return x

    def activate(self, y: torch.Tensor) -> torch.Tensor:
        """act(y) for a fresh y (a sum nobody else holds): in place."""
        return y.relu_() if self.relu_out else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.residual(temporal_shift(x, self.shift_segments))
        skip = self.skip_path(x)
        return self.activate(y if skip is None else y.add_(skip))  # F's output is fresh: sum into it

    def extra_repr(self) -> str:
        return f"shift_segments={self.shift_segments}" if self.shift_segments else ""
