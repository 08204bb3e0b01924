"""The app factory: bundle checks, state held on the app, and a saved bundle served as trained."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from iomt_ids.artifacts import ModelBundle
from iomt_ids.exceptions import BundleError
from iomt_ids.serving import ServeSettings, create_app


def test_factory_refuses_something_that_is_not_a_bundle() -> None:
    with pytest.raises(BundleError, match="bundle lacks"):
        create_app(object(), ServeSettings())  # type: ignore[arg-type]


class _OddColumns:
    def __init__(self, inner: ModelBundle, **override: Any) -> None:
        self._inner, self._override = inner, override

    def __getattr__(self, name: str) -> Any:
        return self._override.get(name, getattr(self._inner, name))


def test_factory_refuses_inconsistent_special_value_columns(bundle: ModelBundle) -> None:
    odd = _OddColumns(bundle, nan_allowed_columns=("Std", "NotAColumn"))
    with pytest.raises(BundleError, match="NotAColumn"):
        create_app(odd, ServeSettings())  # type: ignore[arg-type]


def test_model_is_held_on_app_state(bundle: ModelBundle) -> None:
    settings = ServeSettings(max_rows=3)
    app = create_app(bundle, settings)
    assert app.state.bundle is bundle and app.state.settings is settings


def test_saved_and_reloaded_bundle_serves_the_same_answers(
    trained_bundle: ModelBundle, bundle: ModelBundle, json_rows: list[dict[str, Any]]
) -> None:
    live = TestClient(create_app(trained_bundle, ServeSettings())).post(
        "/v1/predict", json={"rows": json_rows}
    )
    reloaded = TestClient(create_app(bundle, ServeSettings())).post("/v1/predict", json={"rows": json_rows})
    assert live.status_code == reloaded.status_code == 200
    a = np.array([list(p["probabilities"].values()) for p in live.json()["predictions"]])
    b = np.array([list(p["probabilities"].values()) for p in reloaded.json()["predictions"]])
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert live.json()["model_version"] == reloaded.json()["model_version"] == bundle.version
