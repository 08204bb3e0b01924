"""Exact fast paths for the shapes this project trains on.

The papers feed each row as a length-1 sequence from a zero state. For T = 1 the
recurrent weights ``W_hh`` multiply a zero hidden state and the LSTM forget gate
multiplies a zero cell, so one LSTM/GRU layer is a few matrix products on the input
with the *same* parameters. :func:`lstm_step` and :func:`gru_step` compute exactly
what ``nn.LSTM`` / ``nn.GRU`` compute for that case (outputs and gradients equal up
to float rounding; ``weight_hh`` receives no gradient instead of a zero one) without
the recurrent products and, for the LSTM, without a quarter of the input products
(layer 1 of the hybrids: 15 k instead of 85 k multiply-adds per row).

On float32/float64 without autocast, a hand-written backward
(:class:`torch.autograd.Function`) keeps every gate in its own contiguous tensor and
uses the fused ``sigmoid_backward``/``tanh_backward`` kernels. Under autocast (bf16
on CUDA), during ONNX export or TorchScript tracing, the same arithmetic is written
with ordinary differentiable ops instead, so autocast and the exporters see plain
``linear``/``sigmoid``/``tanh``/``mul`` nodes.

:class:`MaskDropout` is ``nn.Dropout`` with a cheaper random mask on CPU: the
stock CPU ``bernoulli_`` draws one Mersenne-Twister number per element, which
cost a quarter of a training step of the hybrids; here one 64-bit draw gives four
16-bit uniforms (keep probability exact to 2^-16). On other devices it is
``F.dropout``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["MaskDropout", "gru_step", "lstm_step", "step_layer", "supports_step"]

_sigmoid_backward = torch.ops.aten.sigmoid_backward
_tanh_backward = torch.ops.aten.tanh_backward


def _use_composed(x: torch.Tensor) -> bool:
    """Whether to write the step with plain autograd ops (autocast, export, tracing)."""
    return (
        torch.is_autocast_enabled(x.device.type)
        or torch.onnx.is_in_onnx_export()
        or torch.jit.is_tracing()
        or torch.compiler.is_compiling()
        or not x.is_floating_point()
    )


# -- LSTM ------------------------------------------------------------------------------
class _LSTMStep(torch.autograd.Function):
    """h = σ(o)·tanh(σ(i)·tanh(g)) with gates from ``W_ih x + b_ih + b_hh`` (rows i, f, g, o)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor) -> Any:
        h = w.shape[0] // 4
        b = b_ih + b_hh
        i = torch.addmm(b[:h], x, w[:h].t()).sigmoid_()
        g = torch.addmm(b[2 * h : 3 * h], x, w[2 * h : 3 * h].t()).tanh_()
        o = torch.addmm(b[3 * h :], x, w[3 * h :].t()).sigmoid_()
        tc = torch.mul(i, g).tanh_()
        ctx.save_for_backward(x, w, i, g, o, tc)
        return torch.mul(o, tc)

    @staticmethod
    def backward(ctx: Any, dh: torch.Tensor) -> Any:
        x, w, i, g, o, tc = ctx.saved_tensors
        h = i.shape[1]
        d_o = _sigmoid_backward(torch.mul(dh, tc), o)
        dc = _tanh_backward(torch.mul(dh, o), tc)
        d_i = _sigmoid_backward(torch.mul(dc, g), i)
        d_g = _tanh_backward(dc.mul_(i), g)
        dx = None
        if ctx.needs_input_grad[0]:
            dx = torch.mm(d_i, w[:h]).addmm_(d_g, w[2 * h : 3 * h]).addmm_(d_o, w[3 * h :])
        dw = w.new_zeros(w.shape)  # the forget-gate rows get a zero gradient, as in nn.LSTM
        db = w.new_zeros(4 * h)
        for k, d in ((0, d_i), (2, d_g), (3, d_o)):
            torch.mm(d.t(), x, out=dw[k * h : (k + 1) * h])
            torch.sum(d, 0, out=db[k * h : (k + 1) * h])
        return dx, dw, db, db


def _lstm_composed(x: torch.Tensor, w: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
    h = w.shape[0] // 4
    b = b_ih + b_hh
    i = torch.sigmoid(F.linear(x, w[:h], b[:h]))
    g = torch.tanh(F.linear(x, w[2 * h : 3 * h], b[2 * h : 3 * h]))
    o = torch.sigmoid(F.linear(x, w[3 * h :], b[3 * h :]))
    return o * torch.tanh(i * g)


def lstm_step(x: torch.Tensor, layer: nn.LSTM) -> torch.Tensor:
    """One ``nn.LSTM`` layer on ``x`` (N, F) as a length-1 sequence from a zero state -> (N, H)."""
    args = (x, layer.weight_ih_l0, layer.bias_ih_l0, layer.bias_hh_l0)
    return _lstm_composed(*args) if _use_composed(x) else _LSTMStep.apply(*args)


# -- GRU -------------------------------------------------------------------------------
class _GRUStep(torch.autograd.Function):
    """h = (1 - z)·n, n = tanh(W_in x + b_in + r·b_hn), r/z = σ(W_i* x + b_i* + b_h*)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor) -> Any:
        h = w.shape[0] // 3
        b_hn = b_hh[2 * h :]
        r = torch.addmm(b_ih[:h] + b_hh[:h], x, w[:h].t()).sigmoid_()
        z = torch.addmm(b_ih[h : 2 * h] + b_hh[h : 2 * h], x, w[h : 2 * h].t()).sigmoid_()
        n = torch.addmm(b_ih[2 * h :], x, w[2 * h :].t()).addcmul_(r, b_hn).tanh_()
        ctx.save_for_backward(x, w, r, z, n, b_hn)
        return torch.addcmul(n, z, n, value=-1)

    @staticmethod
    def backward(ctx: Any, dh: torch.Tensor) -> Any:
        x, w, r, z, n, b_hn = ctx.saved_tensors
        h = r.shape[1]
        d_n = _tanh_backward(torch.addcmul(dh, dh, z, value=-1), n)
        d_z_neg = _sigmoid_backward(torch.mul(dh, n), z)  # the z gradient, negated
        d_r = _sigmoid_backward(torch.mul(d_n, b_hn), r)
        dx = None
        if ctx.needs_input_grad[0]:
            dx = torch.mm(d_r, w[:h]).addmm_(d_z_neg, w[h : 2 * h], alpha=-1).addmm_(d_n, w[2 * h :])
        dw = torch.empty_like(w)
        db = w.new_empty(3 * h)
        for k, d in enumerate((d_r, d_z_neg, d_n)):
            torch.mm(d.t(), x, out=dw[k * h : (k + 1) * h])
            torch.sum(d, 0, out=db[k * h : (k + 1) * h])
        dw[h : 2 * h].neg_()
        db[h : 2 * h].neg_()
        db_hh = db.clone()
        db_hh[2 * h :] = d_n.mul_(r).sum(0)
        return dx, dw, db, db_hh


def _gru_composed(x: torch.Tensor, w: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
    h = w.shape[0] // 3
    r = torch.sigmoid(F.linear(x, w[:h], b_ih[:h] + b_hh[:h]))
    z = torch.sigmoid(F.linear(x, w[h : 2 * h], b_ih[h : 2 * h] + b_hh[h : 2 * h]))
    n = torch.tanh(F.linear(x, w[2 * h :], b_ih[2 * h :]) + r * b_hh[2 * h :])
    return n - z * n


def gru_step(x: torch.Tensor, layer: nn.GRU) -> torch.Tensor:
    """One ``nn.GRU`` layer on ``x`` (N, F) as a length-1 sequence from a zero state -> (N, H)."""
    args = (x, layer.weight_ih_l0, layer.bias_ih_l0, layer.bias_hh_l0)
    return _gru_composed(*args) if _use_composed(x) else _GRUStep.apply(*args)


def step_layer(x: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """Dispatch one recurrent layer (``nn.LSTM`` or ``nn.GRU``) over a length-1 sequence."""
    return lstm_step(x, layer) if isinstance(layer, nn.LSTM) else gru_step(x, layer)


def supports_step(layer: nn.Module) -> bool:
    """Whether ``layer`` is a plain one-layer, unidirectional LSTM/GRU with biases (what the steps assume)."""
    return (
        isinstance(layer, (nn.LSTM, nn.GRU))
        and layer.num_layers == 1
        and not layer.bidirectional
        and layer.bias
        and getattr(layer, "proj_size", 0) == 0
    )


# -- dropout ---------------------------------------------------------------------------
class _MaskedScale(torch.autograd.Function):
    """y = x · keep / (1 - p), with ``keep`` drawn as 16-bit uniforms; the same mask scales the gradient."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, p: float) -> Any:
        n = x.numel()
        words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device)
        words.random_(-(2**63), 2**63 - 1)
        threshold = round(p * 65536) - 32768  # an int16 uniform is >= threshold with probability 1 - p
        keep = words.view(torch.int16)[:n].view(x.shape) >= threshold
        scale = 1.0 / (1.0 - p)
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.mul(x, keep).mul_(scale)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:
        (keep,) = ctx.saved_tensors
        return torch.mul(grad, keep).mul_(ctx.scale), None


class MaskDropout(nn.Dropout):
    """``nn.Dropout`` (same arguments, same state dict) with a faster mask on CPU in training."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            not self.training
            or self.p == 0.0
            or self.inplace
            or x.device.type != "cpu"
            or _use_composed(x)  # also covers non-float input
        ):
            return F.dropout(x, self.p, self.training, self.inplace)
        if self.p >= 1.0:
            return torch.zeros_like(x)
        return _MaskedScale.apply(x, self.p)
