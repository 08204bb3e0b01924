"""API key, CORS, and no internals in error bodies."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from iomt_ids.artifacts import ModelBundle
from iomt_ids.serving import ServeSettings, create_app
from iomt_ids.serving import deps as serving_deps

KEY = "s3cret-key-0123456789"


@pytest.fixture
def secured(make_app: Callable[..., FastAPI]) -> TestClient:
    return TestClient(make_app(api_key=KEY))


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/v1/model"), ("GET", "/metrics"), ("POST", "/v1/predict")]
)
@pytest.mark.parametrize("key", [None, "", "wrong", KEY[:-1], KEY + "x"])
def test_protected_routes_need_the_key(secured: TestClient, method: str, path: str, key: str | None) -> None:
    headers = {} if key is None else {"X-API-Key": key}
    r = secured.request(method, path, headers=headers, json={"rows": []})
    assert r.status_code == 401
    err = r.json()["error"]
    assert err["code"] == "unauthorized" and err["field"] == "X-API-Key"
    assert KEY not in r.text


def test_right_key_opens_every_route(secured: TestClient, json_rows: list[dict[str, Any]]) -> None:
    headers = {"X-API-Key": KEY}
    assert secured.get("/v1/model", headers=headers).status_code == 200
    assert secured.get("/metrics", headers=headers).status_code == 200
    r = secured.post("/v1/predict", headers=headers, json={"rows": json_rows[:2]})
    assert r.status_code == 200 and r.json()["n_rows"] == 2


def test_healthz_stays_open_with_a_key(secured: TestClient) -> None:
    assert secured.get("/healthz").status_code == 200


def test_no_key_configured_means_open(client: TestClient) -> None:
    assert client.get("/v1/model").status_code == 200


def test_auth_is_checked_before_the_body_is_read(secured: TestClient) -> None:
    # An unauthenticated client cannot make the server parse (or size-check) anything.
    r = secured.post("/v1/predict", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 401


def test_key_is_compared_in_constant_time(secured: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(serving_deps.hmac, "compare_digest", spy)
    assert secured.get("/v1/model", headers={"X-API-Key": "nope"}).status_code == 401
    assert secured.get("/v1/model", headers={"X-API-Key": KEY}).status_code == 200
    assert calls == [(b"nope", KEY.encode()), (KEY.encode(), KEY.encode())]


def test_api_key_from_environment(bundle: ModelBundle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IOMT_IDS_API_KEY", KEY)
    c = TestClient(create_app(bundle))
    assert c.get("/v1/model").status_code == 401
    assert c.get("/v1/model", headers={"X-API-Key": KEY}).status_code == 200


def test_empty_api_key_in_environment_leaves_auth_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IOMT_IDS_API_KEY", "  ")
    assert ServeSettings().api_key is None


def test_cors_is_off_by_default(client: TestClient) -> None:
    r = client.get("/healthz", headers={"Origin": "https://evil.example"})
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers
    pre = client.options(
        "/v1/predict", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in pre.headers


def test_cors_allows_only_configured_origins(make_app: Callable[..., FastAPI]) -> None:
    c = TestClient(make_app(cors_origins=["https://ui.example"]))
    ok = c.get("/healthz", headers={"Origin": "https://ui.example"})
    assert ok.headers["access-control-allow-origin"] == "https://ui.example"
    other = c.get("/healthz", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_cors_origins_from_environment_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IOMT_IDS_CORS_ORIGINS", "https://a.example, https://b.example")
    assert ServeSettings().cors_origins == ["https://a.example", "https://b.example"]


class _ExplodingBundle:
    """A bundle whose scoring fails with an unexpected error (stands in for a bug in a model)."""

    def __init__(self, inner: ModelBundle) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def predict_proba(self, frame: Any) -> np.ndarray:
        raise RuntimeError("secret internal detail /srv/weights.bin")


def test_internal_errors_leak_nothing(bundle: ModelBundle, json_rows: list[dict[str, Any]]) -> None:
    app = create_app(_ExplodingBundle(bundle), ServeSettings())  # type: ignore[arg-type]
    c = TestClient(app, raise_server_exceptions=False)
    r = c.post("/v1/predict", json={"rows": json_rows[:1]})
    assert r.status_code == 500
    assert r.json() == {
        "error": {
            "code": "internal_error",
            "message": "internal server error; the server log has the details.",
        }
    }
    assert "secret" not in r.text and "Traceback" not in r.text


def test_no_server_header_leaks_from_errors(client: TestClient) -> None:
    r = client.get("/does-not-exist")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
