"""One PyTorch module from raw rows to probabilities, and its inference-only rewrite.

:func:`inference_module` turns a bundle into ``raw float64 rows -> probabilities``:

1. :class:`FoldedPreprocessing` applies the bundle's fitted cleaning policy and
   scaling as tensor ops (``NaN`` -> 0 in ``Std``/``Variance``, ``+/-inf`` -> the
   fitted caps in ``Rate``/``Srate``/``Drate``, optional signed log, column
   selection, ``(x - mean) / std``), in float64 like the NumPy path, then casts to
   float32. It does **not** validate: a NaN or inf in a column where the policy
   allows none passes through (and yields NaN probabilities). Callers check
   with :func:`iomt_ids.data.preprocess.check_special_values` first, as the ONNX
   Runtime backend does, so that bad input raises the same error everywhere.
2. the network, in evaluation mode;
3. softmax.

With ``optimize=True`` the network is rewritten for inference, exactly (up to
float rounding): the papers feed each row as a length-1 sequence with zero
initial state, so every recurrent layer's hidden-to-hidden product is zero and
the LSTM forget gate multiplies a zero cell. :class:`SingleStepLSTM` /
:class:`SingleStepGRU` compute only what is left (one matrix product per layer,
3 of 4 LSTM gates), and the hybrids' eval-mode BatchNorm is folded into the
following dense layer. The rewrite accepts ``(N, F)`` or ``(N, 1, F)`` only.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

from iomt_ids.data.preprocess import INF_ALLOWED, NAN_ALLOWED, NAN_FILL, Preprocessor
from iomt_ids.exceptions import BundleError
from iomt_ids.models.dnn import DenseHead
from iomt_ids.models.recurrent import HybridRNN, StackedRNN

__all__ = [
    "FoldedPreprocessing",
    "InferenceModel",
    "SingleStepGRU",
    "SingleStepLSTM",
    "inference_module",
    "optimize_for_inference",
]


class FoldedPreprocessing(nn.Module):
    """A fitted :class:`Preprocessor` as tensor ops: raw float64 rows -> scaled float32 rows."""

    def __init__(self, pre: Preprocessor) -> None:
        super().__init__()
        if pre.mean_ is None or pre.scale_ is None:
            raise BundleError("FoldedPreprocessing: the preprocessor is not fitted.")
        cols = pre.input_columns
        hi = np.full(len(cols), np.inf)
        lo = np.full(len(cols), -np.inf)
        for j, c in enumerate(cols):
            if c in INF_ALLOWED and c in pre.inf_caps_:
                lo[j], hi[j] = pre.inf_caps_[c]
        keep = [cols.index(c) for c in pre.kept_columns_]
        f64 = torch.float64
        self.register_buffer("nan_mask", torch.tensor([c in NAN_ALLOWED for c in cols]))
        self.register_buffer("hi", torch.tensor(hi, dtype=f64))
        self.register_buffer("lo", torch.tensor(lo, dtype=f64))
        self.register_buffer("keep", torch.tensor(keep, dtype=torch.long))
        self.register_buffer("log_mask", torch.tensor([c in pre.log_columns for c in pre.kept_columns_]))
        self.register_buffer("mean", torch.tensor(np.asarray(pre.mean_), dtype=f64))
        self.register_buffer("std", torch.tensor(np.asarray(pre.scale_), dtype=f64))
        self.has_log = bool(pre.log_columns)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float64)
        x = torch.where(torch.isnan(x) & self.nan_mask, torch.full_like(x, NAN_FILL), x)
        x = torch.where(x == float("inf"), self.hi, x)
        x = torch.where(x == float("-inf"), self.lo, x)
        x = x.index_select(1, self.keep)
        if self.has_log:
            x = torch.where(self.log_mask, torch.sign(x) * torch.log1p(torch.abs(x)), x)
        return ((x - self.mean) / self.std).to(torch.float32)


class InferenceModel(nn.Module):
    """Raw rows (the release's columns, float64) -> class probabilities (float32)."""

    def __init__(self, preprocess: nn.Module, network: nn.Module) -> None:
        super().__init__()
        self.preprocess = preprocess
        self.network = network

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.network(self.preprocess(features)).float(), dim=1)


class SingleStepLSTM(nn.Module):
    """One LSTM layer applied to a length-1 sequence from a zero state (input and forget-free)."""

    def __init__(self, lstm: nn.LSTM) -> None:
        super().__init__()
        _check_plain(lstm)
        h = lstm.hidden_size
        w, b = lstm.weight_ih_l0.detach(), (lstm.bias_ih_l0 + lstm.bias_hh_l0).detach()
        rows = torch.cat([torch.arange(0, h), torch.arange(2 * h, 4 * h)])  # gates i, g, o (f is unused)
        self.gates = nn.Linear(lstm.input_size, 3 * h)
        with torch.no_grad():
            self.gates.weight.copy_(w[rows])
            self.gates.bias.copy_(b[rows])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        i, g, o = self.gates(x).chunk(3, dim=1)
        return torch.sigmoid(o) * torch.tanh(torch.sigmoid(i) * torch.tanh(g))


class SingleStepGRU(nn.Module):
    """One GRU layer applied to a length-1 sequence from a zero state."""

    def __init__(self, gru: nn.GRU) -> None:
        super().__init__()
        _check_plain(gru)
        h = gru.hidden_size
        b_ih, b_hh = gru.bias_ih_l0.detach(), gru.bias_hh_l0.detach()
        self.gates = nn.Linear(gru.input_size, 3 * h)
        with torch.no_grad():
            self.gates.weight.copy_(gru.weight_ih_l0.detach())
            self.gates.bias.copy_(torch.cat([b_ih[: 2 * h] + b_hh[: 2 * h], b_ih[2 * h :]]))
        self.register_buffer("b_hn", b_hh[2 * h :].clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r, z, n = self.gates(x).chunk(3, dim=1)
        n = torch.tanh(n + torch.sigmoid(r) * self.b_hn)
        return (1 - torch.sigmoid(z)) * n


def _check_plain(rnn: nn.RNNBase) -> None:
    if rnn.num_layers != 1 or rnn.bidirectional or not rnn.bias or getattr(rnn, "proj_size", 0):
        raise BundleError(
            f"optimize_for_inference: {type(rnn).__name__} layers must be single-layer, unidirectional, "
            "with biases and no projection."
        )


class _SingleStepStack(nn.Module):
    """Stacked single-step layers; accepts (N, F) or (N, 1, F)."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 3:
            x = x.reshape(x.shape[0], x.shape[2])  # T must be 1
        for layer in self.layers:
            x = layer(x)
        return x


def _single_step(stack: StackedRNN) -> _SingleStepStack:
    cells = {nn.LSTM: SingleStepLSTM, nn.GRU: SingleStepGRU}
    return _SingleStepStack([cells[type(layer)](layer) for layer in stack.layers])


def _fold_batchnorm(model: HybridRNN) -> None:
    """Fold an eval-mode BatchNorm1d into the first Linear of the dense head (in place)."""
    norm = model.norm
    if not isinstance(norm, nn.BatchNorm1d) or not isinstance(model.head, DenseHead):
        return
    first = model.head.net[0]
    if not isinstance(first, nn.Linear) or norm.running_mean is None or norm.running_var is None:
        return
    scale = norm.running_var.rsqrt() if norm.eps == 0 else (norm.running_var + norm.eps).rsqrt()
    if norm.affine:
        shift = norm.bias - norm.running_mean * scale * norm.weight
        scale = scale * norm.weight
    else:
        shift = -norm.running_mean * scale
    with torch.no_grad():
        first.bias.add_(first.weight @ shift)
        first.weight.mul_(scale[None, :])
    model.norm = nn.Identity()


def optimize_for_inference(network: nn.Module) -> nn.Module:
    """An eval-mode copy of ``network`` with the single-step and BatchNorm rewrites applied.

    Works on the registered models (``dnn``, ``lstm``, ``gru``, ``lstm_dnn``, ``gru_dnn``);
    other modules come back as an eval-mode copy.
    """
    net = copy.deepcopy(network).eval()
    for name, child in list(net.named_children()):
        if isinstance(child, StackedRNN):
            setattr(net, name, _single_step(child))
    if isinstance(net, HybridRNN):
        _fold_batchnorm(net)
    for p in net.parameters():
        p.requires_grad_(False)
    return net.eval()


def inference_module(bundle: Any, optimize: bool = True) -> InferenceModel:
    """``raw rows -> probabilities`` for a bundle holding a PyTorch model (CPU, eval mode)."""
    network = bundle.torch_module
    if network is None:
        raise BundleError(
            f"bundle {bundle.version}: model {bundle.model_name!r} is not a PyTorch model; "
            "only deep models can be exported."
        )
    network = copy.deepcopy(network).to("cpu").eval()
    if optimize:
        network = optimize_for_inference(network)
    return InferenceModel(FoldedPreprocessing(bundle.preprocessor), network).eval()
