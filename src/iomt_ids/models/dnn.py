"""Feed-forward DNN (seed 001 §2.3.1) and the dense head the hybrids reuse."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from iomt_ids.models.kernels import MaskDropout

__all__ = ["DNN", "DenseHead"]


class DenseHead(nn.Module):
    """Dense(ReLU) -> Dropout for each width in ``units``, then a linear output layer.

    ``forward`` returns logits; softmax belongs to the loss / prediction step.
    """

    def __init__(
        self, n_in: int, n_classes: int, units: Sequence[int] = (64, 32), dropout: float = 0.3
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_in
        for u in units:
            layers += [nn.Linear(width, u), nn.ReLU(), MaskDropout(dropout)]
            width = u
        layers.append(nn.Linear(width, n_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class DNN(nn.Module):
    """Dense 64 -> Dropout 0.3 -> Dense 32 -> Dropout 0.3 -> output (seed 001).

    Accepts ``(N, F)`` or the recurrent shape ``(N, 1, F)`` (flattened).
    """

    sequence_input = False

    def __init__(
        self, n_features: int, n_classes: int, dense_units: Sequence[int] = (64, 32), dropout: float = 0.3
    ) -> None:
        super().__init__()
        self.head = DenseHead(n_features, n_classes, dense_units, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x[:, -1, :]
        return self.head(x)
