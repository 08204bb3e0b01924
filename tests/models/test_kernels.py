"""The T = 1 step kernels equal nn.LSTM / nn.GRU; MaskDropout behaves as dropout."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from iomt_ids.models import build_model
from iomt_ids.models.kernels import (
    MaskDropout,
    _gru_composed,
    _GRUStep,
    _lstm_composed,
    _LSTMStep,
    step_layer,
    supports_step,
)

N_FEATURES, N_CLASSES = 11, 4


def _grads(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_(True)
    out = model(x)
    (out * torch.linspace(-1, 1, out.shape[1], dtype=out.dtype)).square().sum().backward()
    grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
    return out.detach(), x.grad.clone(), grads


@pytest.mark.parametrize("name", ["lstm", "gru", "lstm_dnn", "gru_dnn"])
def test_step_kernels_match_torch_recurrent_layers_in_value_and_gradient(name: str) -> None:
    torch.manual_seed(1)
    model = build_model(name, N_FEATURES, N_CLASSES).double().eval()  # eval: no dropout noise
    x = torch.randn(33, 1, N_FEATURES, dtype=torch.float64) * 3
    assert model.rnn.single_step
    out_fast, gx_fast, g_fast = _grads(model, x)
    model.rnn.single_step = False
    out_ref, gx_ref, g_ref = _grads(model, x)
    torch.testing.assert_close(out_fast, out_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(gx_fast, gx_ref, rtol=0, atol=1e-12)
    for key, ref in g_ref.items():
        if "weight_hh" in key:  # multiplies the zero initial state: zero in nn.*, absent here
            assert key not in g_fast and torch.count_nonzero(ref) == 0
            continue
        torch.testing.assert_close(g_fast[key], ref, rtol=1e-10, atol=1e-12, msg=key)


@pytest.mark.parametrize("fn", [_LSTMStep, _GRUStep])
def test_hand_written_backward_passes_gradcheck(fn: type[torch.autograd.Function]) -> None:
    torch.manual_seed(2)
    h = 5
    rows = 4 * h if fn is _LSTMStep else 3 * h
    args = [
        torch.randn(6, 3, dtype=torch.float64, requires_grad=True),
        torch.randn(rows, 3, dtype=torch.float64, requires_grad=True),
        torch.randn(rows, dtype=torch.float64, requires_grad=True),
        torch.randn(rows, dtype=torch.float64, requires_grad=True),
    ]
    assert torch.autograd.gradcheck(fn.apply, args)


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU])
def test_composed_form_used_under_autocast_equals_the_kernel(cell: type[nn.RNNBase]) -> None:
    torch.manual_seed(3)
    layer = cell(N_FEATURES, 7, batch_first=True).double()
    x = torch.randn(9, N_FEATURES, dtype=torch.float64)
    composed = _lstm_composed if cell is nn.LSTM else _gru_composed
    args = (x, layer.weight_ih_l0, layer.bias_ih_l0, layer.bias_hh_l0)
    torch.testing.assert_close(composed(*args), step_layer(x, layer), rtol=0, atol=1e-12)
    layer, x = layer.float(), x.float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = step_layer(x, layer).float()
    exact = step_layer(x, layer)
    assert not torch.equal(y, exact)  # autocast reached the matrix products (bf16 rounding)
    ref, _ = layer(x.unsqueeze(1))
    torch.testing.assert_close(y, ref[:, 0], rtol=0, atol=0.05)


def test_longer_sequences_still_run_the_recurrence() -> None:
    torch.manual_seed(4)
    model = build_model("gru", N_FEATURES, N_CLASSES).eval()
    x = torch.randn(5, 3, N_FEATURES)
    out = model(x)
    h = x
    for layer in model.rnn.layers:
        h, _ = layer(h)
    torch.testing.assert_close(out, model.out(h[:, -1]))


def test_supports_step_only_plain_layers() -> None:
    assert supports_step(nn.LSTM(3, 4)) and supports_step(nn.GRU(3, 4))
    assert not supports_step(nn.LSTM(3, 4, num_layers=2))
    assert not supports_step(nn.GRU(3, 4, bidirectional=True))
    assert not supports_step(nn.LSTM(3, 4, proj_size=2))
    assert not supports_step(nn.Linear(3, 4))


def test_mask_dropout_drops_at_the_rate_and_rescales() -> None:
    torch.manual_seed(5)
    drop = MaskDropout(0.3).train()
    x = torch.ones(1000, 1000, requires_grad=True)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.002  # 1 M draws: 4.5 standard errors
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.7))
    y.sum().backward()
    torch.testing.assert_close(x.grad, kept.float() / 0.7)  # the same mask scales the gradient
    # masks are not all alike (rows differ) and follow the seed
    torch.manual_seed(5)
    assert torch.equal(drop(x.detach()) != 0, kept)
    assert not torch.equal(kept[0], kept[1])


def test_mask_dropout_is_nn_dropout_elsewhere() -> None:
    drop = MaskDropout(0.3)
    assert isinstance(drop, nn.Dropout) and not drop.state_dict()
    x = torch.randn(50, 8)
    assert torch.equal(drop.eval()(x), x)
    assert torch.equal(MaskDropout(0.0).train()(x), x)
    assert torch.count_nonzero(MaskDropout(1.0).train()(x)) == 0
    ints = torch.arange(10)
    assert torch.equal(MaskDropout(0.5).eval()(ints), ints)
