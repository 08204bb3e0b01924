"""/metrics speaks the Prometheus text format and its counters follow the traffic."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from iomt_ids.artifacts import ModelBundle


def _samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _get(samples: dict[Any, float], metric: str, **labels: str) -> float:
    return samples.get((metric, tuple(sorted(labels.items()))), 0.0)


def test_counters_move_after_requests(client: TestClient, json_rows: list[dict[str, Any]]) -> None:
    before = _samples(client)
    assert client.post("/v1/predict", json={"rows": json_rows[:3]}).status_code == 200
    assert client.post("/v1/predict", json={"rows": json_rows[:4]}).status_code == 200
    assert client.post("/v1/predict", json={"rows": []}).status_code == 422
    after = _samples(client)

    route = {"route": "/v1/predict"}
    assert _get(after, "iomt_ids_rows_scored_total") - _get(before, "iomt_ids_rows_scored_total") == 7
    ok = _get(after, "iomt_ids_http_requests_total", method="POST", status="200", **route)
    assert ok - _get(before, "iomt_ids_http_requests_total", method="POST", status="200", **route) == 2
    assert _get(after, "iomt_ids_http_errors_total", code="empty_batch", **route) == 1
    count = "iomt_ids_http_request_duration_seconds_count"
    assert _get(after, count, **route) - _get(before, count, **route) == 3
    assert _get(after, "iomt_ids_http_request_duration_seconds_bucket", le="+Inf", **route) >= 3


def test_model_info_gauge(client: TestClient, bundle: ModelBundle) -> None:
    samples = _samples(client)
    labels = {"name": "dnn", "version": bundle.version, "task": "6", "release": "v2"}
    assert _get(samples, "iomt_ids_model_info", **labels) == 1


def test_unknown_paths_share_one_label(client: TestClient) -> None:
    for path in ("/a", "/b", "/c/d"):
        client.get(path)
    samples = _samples(client)
    routes = {dict(k[1]).get("route") for k in samples if k[0] == "iomt_ids_http_requests_total"}
    assert "unmatched" in routes and not routes & {"/a", "/b", "/c/d"}
    assert _get(samples, "iomt_ids_http_errors_total", code="not_found", route="unmatched") == 3


def test_each_app_has_its_own_registry(
    client: TestClient, make_app: Any, json_rows: list[dict[str, Any]]
) -> None:
    other = TestClient(make_app())
    client.post("/v1/predict", json={"rows": json_rows[:2]})
    assert _get(_samples(other), "iomt_ids_rows_scored_total") == 0
    assert REGISTRY.get_sample_value("iomt_ids_rows_scored_total") is None
