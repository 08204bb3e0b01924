"""``POST /v1/predict?explain=true``: per-row explanations in the API answer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from iomt_ids.artifacts import ModelBundle
from iomt_ids.explain import explain_rows


def test_no_explanation_by_default(client: Any, json_rows: list[dict[str, Any]]) -> None:
    r = client.post("/v1/predict", json={"rows": json_rows[:4]})
    assert r.status_code == 200, r.text
    assert all("explanation" not in p for p in r.json()["predictions"])


def test_explain_true_returns_top3_per_row(
    client: Any, json_rows: list[dict[str, Any]], rows_frame: pd.DataFrame, bundle: ModelBundle
) -> None:
    r = client.post("/v1/predict?explain=true", json={"rows": json_rows[:8]})
    assert r.status_code == 200, r.text
    predictions = r.json()["predictions"]
    assert len(predictions) == 8
    kept = set(bundle.preprocessor.kept_columns_)
    expected = explain_rows(bundle, rows_frame.iloc[:8], top=3)
    for p, want in zip(predictions, expected, strict=True):
        items = p["explanation"]
        assert len(items) == 3
        assert all(set(it) == {"feature", "value", "contribution"} for it in items)
        assert all(it["feature"] in kept for it in items)
        contributions = [it["contribution"] for it in items]
        assert contributions == sorted(contributions, reverse=True)
        assert [it["feature"] for it in items] == [w["feature"] for w in want]
        np.testing.assert_allclose(contributions, [w["contribution"] for w in want], rtol=1e-5, atol=1e-6)


def test_explain_handles_special_values_and_csv(client: Any, rows_frame: pd.DataFrame) -> None:
    # rows_frame has a NaN Std (row 1) and an infinite Rate (row 2): values come back as null / "inf"
    body = rows_frame.iloc[:4].to_csv(index=False)
    r = client.post("/v1/predict?explain=true", content=body, headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    for p in r.json()["predictions"]:
        for it in p["explanation"]:
            assert it["value"] is None or isinstance(it["value"], float | int | str)
            assert np.isfinite(it["contribution"])


def test_explain_documented_in_openapi(client: Any) -> None:
    spec = client.get("/openapi.json").json()
    params = spec["paths"]["/v1/predict"]["post"].get("parameters", [])
    assert any(p["name"] == "explain" and p["in"] == "query" for p in params)
    assert "explanation" in spec["components"]["schemas"]["RowPrediction"]["properties"]


def test_unknown_query_parameters_are_refused_by_name(client: Any, json_rows: list[dict[str, Any]]) -> None:
    r = client.post("/v1/predict?explian=true", json={"rows": json_rows[:1]})
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "unknown_query_parameter" and err["field"] == "explian"
