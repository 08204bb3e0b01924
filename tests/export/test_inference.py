"""The folded-preprocessing module and the inference rewrite give the bundle's probabilities."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
import torch

from iomt_ids.artifacts import ModelBundle
from iomt_ids.exceptions import BundleError
from iomt_ids.export.inference import SingleStepGRU, SingleStepLSTM, inference_module, optimize_for_inference
from iomt_ids.models import DEEP_MODELS, build_model


@pytest.mark.parametrize("model", ["dnn", "lstm_dnn", "gru_dnn"])
@pytest.mark.parametrize("optimize", [False, True])
def test_inference_module_matches_bundle(
    model: str,
    optimize: bool,
    loaded: Callable[[str], ModelBundle],
    sample_rows: tuple[pd.DataFrame, np.ndarray],
) -> None:
    bundle = loaded(model)
    frame, _ = sample_rows
    x = frame[list(bundle.input_columns)].to_numpy(dtype=np.float64)
    assert np.isinf(x).any() and np.isnan(x).any(), "the sample should exercise inf Rate and empty Std"
    module = inference_module(bundle, optimize=optimize)
    with torch.inference_mode():
        got = module(torch.from_numpy(x.copy())).numpy()
    want = bundle.predict_proba(frame)
    assert got.shape == want.shape == (len(frame), 6)
    assert np.abs(got - want).max() <= 1e-5


@pytest.mark.parametrize("name", DEEP_MODELS)
def test_single_step_rewrite_is_exact(name: str) -> None:
    torch.manual_seed(1)
    net = build_model(name, 20, 5).eval()
    if hasattr(net, "norm"):  # give BatchNorm non-trivial running statistics
        net.norm.running_mean.uniform_(-1, 1)
        net.norm.running_var.uniform_(0.5, 2)
    fast = optimize_for_inference(net)
    x = torch.randn(300, 1, 20)
    with torch.inference_mode():
        assert torch.allclose(net(x), fast(x), atol=1e-5)
        assert torch.allclose(net(x[:, 0]), fast(x[:, 0]), atol=1e-5)
    if name in ("lstm", "lstm_dnn"):
        assert any(isinstance(m, SingleStepLSTM) for m in fast.modules())
    if name in ("gru", "gru_dnn"):
        assert any(isinstance(m, SingleStepGRU) for m in fast.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm1d | torch.nn.LSTM | torch.nn.GRU) for m in fast.modules())


def test_multi_layer_rnn_is_refused() -> None:
    with pytest.raises(BundleError, match="single-layer"):
        SingleStepLSTM(torch.nn.LSTM(4, 8, num_layers=2, batch_first=True))
