"""Row and byte limits answer 413 before any scoring."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from iomt_ids.serving import ServeSettings


def test_too_many_json_rows(make_app: Callable[..., FastAPI], json_rows: list[dict[str, Any]]) -> None:
    c = TestClient(make_app(max_rows=5))
    assert c.post("/v1/predict", json={"rows": json_rows[:5]}).status_code == 200
    r = c.post("/v1/predict", json={"rows": json_rows[:6]})
    assert r.status_code == 413
    err = r.json()["error"]
    assert err["code"] == "too_many_rows" and err["field"] == "rows"
    assert "6 rows" in err["message"] and "at most 5" in err["message"]


def test_too_many_csv_rows(make_app: Callable[..., FastAPI], rows_frame: pd.DataFrame) -> None:
    c = TestClient(make_app(max_rows=5))
    headers = {"Content-Type": "text/csv"}
    assert (
        c.post("/v1/predict", content=rows_frame.head(5).to_csv(index=False), headers=headers).status_code
        == 200
    )
    r = c.post("/v1/predict", content=rows_frame.head(6).to_csv(index=False), headers=headers)
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_many_rows"


def test_body_over_the_byte_limit(make_app: Callable[..., FastAPI], json_rows: list[dict[str, Any]]) -> None:
    c = TestClient(make_app(max_body_bytes=2000))
    r = c.post("/v1/predict", json={"rows": json_rows[:10]})  # ~10 kB
    assert r.status_code == 413
    err = r.json()["error"]
    assert err["code"] == "body_too_large" and "at most 2000" in err["message"]


def test_chunked_body_is_cut_off_while_streaming(make_app: Callable[..., FastAPI]) -> None:
    # No Content-Length: the limit must hold while the body streams in.
    c = TestClient(make_app(max_body_bytes=1000))
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            sent.append(1)
            yield b"x" * 100

    r = c.post("/v1/predict", content=chunks(), headers={"Content-Type": "text/csv"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "body_too_large"
    assert "at least" in r.json()["error"]["message"]


def test_bad_content_length(client: TestClient) -> None:
    r = client.post(
        "/v1/predict", content=b"{}", headers={"Content-Type": "application/json", "Content-Length": "-1"}
    )
    # Either the HTTP layer or the service refuses; never a 5xx.
    assert 400 <= r.status_code < 500


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IOMT_IDS_MAX_ROWS", "7")
    monkeypatch.setenv("IOMT_IDS_MAX_BODY_BYTES", "4096")
    s = ServeSettings()
    assert (s.max_rows, s.max_body_bytes, s.cors_origins, s.api_key) == (7, 4096, [], None)


@pytest.mark.parametrize(("field", "value"), [("max_rows", 0), ("max_body_bytes", 10)])
def test_invalid_limits_are_refused_with_the_field_named(field: str, value: int) -> None:
    with pytest.raises(ValidationError, match=field):
        ServeSettings(**{field: value})
