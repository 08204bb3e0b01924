"""One generic check suite run on every model in the registry."""

from __future__ import annotations

import pytest
import torch

from iomt_ids.exceptions import ConfigError
from iomt_ids.models import DEEP_MODELS, MODELS, TREE_MODELS, build_model, model_names

N_FEATURES, N_CLASSES = 12, 5


@pytest.mark.parametrize("name", DEEP_MODELS)
def test_output_shape_for_flat_and_sequence_input(name: str) -> None:
    model = build_model(name, N_FEATURES, N_CLASSES).eval()
    assert model(torch.randn(7, 1, N_FEATURES)).shape == (7, N_CLASSES)
    assert model(torch.randn(7, N_FEATURES)).shape == (7, N_CLASSES)


@pytest.mark.parametrize("name", DEEP_MODELS)
def test_loss_falls_on_a_tiny_batch(name: str) -> None:
    torch.manual_seed(0)
    x = torch.randn(64, 1, N_FEATURES)
    y = (x[:, 0, 0] > 0).long() + 2 * (x[:, 0, 1] > 0).long()
    model = build_model(name, N_FEATURES, N_CLASSES)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


@pytest.mark.parametrize("name", DEEP_MODELS)
def test_state_dict_round_trip(name: str) -> None:
    a = build_model(name, N_FEATURES, N_CLASSES).eval()
    b = build_model(name, N_FEATURES, N_CLASSES).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(4, 1, N_FEATURES)
    torch.testing.assert_close(a(x), b(x))


def test_sizes_are_configurable_and_errors_are_clear() -> None:
    m = build_model("gru_dnn", N_FEATURES, N_CLASSES, rnn_units=(32,), dense_units=(16,), dropout=0.1)
    assert m.rnn.out_features == 32
    with pytest.raises(ConfigError, match="model must be one of"):
        build_model("cnn", N_FEATURES, N_CLASSES)
    with pytest.raises(ConfigError, match="invalid arguments"):
        build_model("dnn", N_FEATURES, N_CLASSES, rnn_units=(8,))


def test_one_registry_holds_every_model_with_its_kind() -> None:
    # the pipeline, the CLI and bundles all read this table; each name has one kind
    assert set(MODELS) == {*DEEP_MODELS, *TREE_MODELS} | set(model_names("ensemble"))
    assert {MODELS[n].kind for n in DEEP_MODELS} == {"torch"}
    assert {MODELS[n].kind for n in TREE_MODELS} == {"tree"}
    for entry in MODELS.values():  # every target resolves to a class
        assert isinstance(entry.resolve(), type)
    with pytest.raises(ConfigError, match="model must be one of"):
        build_model("lightgbm", N_FEATURES, N_CLASSES)  # a tree is not a PyTorch module


def test_looking_up_a_name_imports_no_model_code() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from iomt_ids.models.registry import check_model_name; check_model_name('gru_dnn'); "
        "print('torch' in sys.modules, 'lightgbm' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
