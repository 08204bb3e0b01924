"""Happy paths of every route, through the test client."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from iomt_ids.artifacts import ModelBundle
from iomt_ids.features.schema import V2_COLUMNS


def test_healthz_is_open_and_names_the_model(client: TestClient, bundle: ModelBundle) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "model_version": bundle.version}


def test_model_route_describes_bundle_and_schema(client: TestClient, bundle: ModelBundle) -> None:
    r = client.get("/v1/model")
    assert r.status_code == 200
    body = r.json()
    assert body["name"] == "dnn"
    assert body["version"] == bundle.version
    assert body["task"] == 6
    assert body["classes"] == list(bundle.classes)
    assert body["release"] == "v2"
    assert [f["name"] for f in body["features"]] == list(V2_COLUMNS)
    flags = {f["name"]: (f["nan_allowed"], f["inf_allowed"]) for f in body["features"]}
    assert flags["Std"] == (True, False) and flags["Variance"] == (True, False)
    assert flags["Rate"] == (False, True)
    assert flags["Header_Length"] == (False, False)
    assert body["max_rows"] == 64 and body["max_body_bytes"] == 256 * 1024


def _check_predictions(body: dict[str, Any], bundle: ModelBundle, frame: pd.DataFrame) -> None:
    expected = bundle.predict_proba(frame)
    assert body["model"] == "dnn"
    assert body["model_version"] == bundle.version
    assert body["n_rows"] == len(frame) == len(body["predictions"])
    for pred, row in zip(body["predictions"], expected, strict=True):
        assert pred["model_version"] == bundle.version
        assert list(pred["probabilities"]) == list(bundle.classes)
        probs = np.array(list(pred["probabilities"].values()))
        np.testing.assert_allclose(probs, row, rtol=1e-6, atol=1e-7)
        assert abs(probs.sum() - 1.0) < 1e-4
        assert pred["class"] == bundle.classes[int(row.argmax())]


def test_predict_json_matches_bundle(
    client: TestClient, bundle: ModelBundle, rows_frame: pd.DataFrame, json_rows: list[dict[str, Any]]
) -> None:
    r = client.post("/v1/predict", json={"rows": json_rows})
    assert r.status_code == 200, r.text
    _check_predictions(r.json(), bundle, rows_frame)


def test_predict_csv_matches_bundle(
    client: TestClient, bundle: ModelBundle, rows_frame: pd.DataFrame
) -> None:
    body = rows_frame.to_csv(index=False)  # pandas writes +inf as "inf", the dataset's own spelling
    r = client.post("/v1/predict", content=body, headers={"Content-Type": "text/csv; charset=utf-8"})
    assert r.status_code == 200, r.text
    _check_predictions(r.json(), bundle, rows_frame)


def test_csv_column_order_does_not_matter(client: TestClient, rows_frame: pd.DataFrame) -> None:
    shuffled = rows_frame[list(reversed(rows_frame.columns))]
    a = client.post(
        "/v1/predict", content=rows_frame.to_csv(index=False), headers={"Content-Type": "text/csv"}
    )
    b = client.post("/v1/predict", content=shuffled.to_csv(index=False), headers={"Content-Type": "text/csv"})
    assert a.status_code == b.status_code == 200
    assert a.json() == b.json()


def test_batch_and_single_rows_agree(client: TestClient, json_rows: list[dict[str, Any]]) -> None:
    batch = client.post("/v1/predict", json={"rows": json_rows[:5]}).json()["predictions"]
    single = [
        client.post("/v1/predict", json={"rows": [row]}).json()["predictions"][0] for row in json_rows[:5]
    ]
    for a, b in zip(batch, single, strict=True):
        assert a["class"] == b["class"]
        np.testing.assert_allclose(
            list(a["probabilities"].values()), list(b["probabilities"].values()), atol=1e-6
        )


def test_openapi_documents_both_body_types_and_columns(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "text/csv"}
    row = body["application/json"]["schema"]["properties"]["rows"]["items"]
    assert row["required"] == list(V2_COLUMNS)
    assert row["additionalProperties"] is False
    assert {"type": "null"} in row["properties"]["Std"]["anyOf"]
    assert "X-API-Key" in str(spec["components"]["securitySchemes"])
