"""Recurrent models: standalone LSTM/GRU baselines and the LSTM-DNN / GRU-DNN hybrids.

Input is ``(N, T, F)``: the papers use T = 1, i.e. each row is a length-1 sequence
(``(N, F)`` is accepted and treated as T = 1). The last time step's hidden state
feeds the classifier.

* ``lstm`` / ``gru`` (the L2D2-style baselines): stacked recurrent layers -> linear output.
* ``lstm_dnn`` (seed 000) / ``gru_dnn`` (seed 001): stacked recurrent layers ->
  BatchNorm -> Dropout -> the DNN's dense ReLU head (:class:`DenseHead`) -> output.

For T = 1 the layers run as exact single-step kernels (:mod:`iomt_ids.models.kernels`):
same parameters and results as ``nn.LSTM``/``nn.GRU``, a fraction of the work.

The papers' architecture figures are missing; the default sizes (recurrent 128 -> 64,
dense 64 -> 32, dropout 0.3) are our documented choice, all configurable.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from iomt_ids.exceptions import ConfigError
from iomt_ids.models.dnn import DenseHead
from iomt_ids.models.kernels import MaskDropout, step_layer, supports_step

__all__ = ["HybridRNN", "RecurrentClassifier", "StackedRNN"]

_CELLS: dict[str, type[nn.Module]] = {"lstm": nn.LSTM, "gru": nn.GRU}


class StackedRNN(nn.Module):
    """Recurrent layers of the given widths (each may differ, unlike nn.LSTM's num_layers)."""

    def __init__(self, cell: str, n_features: int, units: Sequence[int]) -> None:
        super().__init__()
        if cell not in _CELLS:
            raise ConfigError(f"cell must be one of {sorted(_CELLS)}; got {cell!r} instead.")
        if not units:
            raise ConfigError("rnn_units must name at least one layer width.")
        widths = [n_features, *units]
        self.layers = nn.ModuleList(
            _CELLS[cell](widths[i], widths[i + 1], batch_first=True) for i in range(len(units))
        )
        self.out_features = widths[-1]
        #: use the T = 1 step kernels (exact); False forces nn.LSTM/nn.GRU, e.g. to compare
        self.single_step = all(supports_step(layer) for layer in self.layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(1)
        if x.shape[1] == 1 and self.single_step:
            x = x[:, 0]  # the papers' T = 1: exact step kernels (iomt_ids.models.kernels)
            for layer in self.layers:
                x = step_layer(x, layer)
            return x
        for layer in self.layers:
            x, _ = layer(x)
        return x[:, -1, :]


class RecurrentClassifier(nn.Module):
    """Standalone LSTM or GRU baseline: recurrent layers -> linear output."""

    sequence_input = True

    def __init__(
        self, n_features: int, n_classes: int, cell: str = "lstm", rnn_units: Sequence[int] = (128, 64)
    ) -> None:
        super().__init__()
        self.rnn = StackedRNN(cell, n_features, rnn_units)
        self.out = nn.Linear(self.rnn.out_features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(x))


class HybridRNN(nn.Module):
    """LSTM-DNN / GRU-DNN hybrid: recurrent layers -> BatchNorm -> Dropout -> dense ReLU head."""

    sequence_input = True

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        cell: str = "lstm",
        rnn_units: Sequence[int] = (128, 64),
        dense_units: Sequence[int] = (64, 32),
        dropout: float = 0.3,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        self.rnn = StackedRNN(cell, n_features, rnn_units)
        self.norm = nn.BatchNorm1d(self.rnn.out_features) if batch_norm else nn.Identity()
        self.drop = MaskDropout(dropout)
        self.head = DenseHead(self.rnn.out_features, n_classes, dense_units, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.norm(self.rnn(x))))
