"""Every class of bad input gets a 4xx whose body names the column or field and what was expected."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient


def _error(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code, err
    assert "Traceback" not in r.text
    return err


def _rows(json_rows: list[dict[str, Any]], n: int = 3) -> list[dict[str, Any]]:
    return [dict(r) for r in json_rows[:n]]


# -- JSON ---------------------------------------------------------------------------------------


def test_missing_column_is_named(client: TestClient, json_rows: list[dict[str, Any]]) -> None:
    rows = _rows(json_rows)
    del rows[1]["IAT"]
    err = _error(client.post("/v1/predict", json={"rows": rows}), 422, "missing_column")
    assert (err["row"], err["column"]) == (1, "IAT")
    assert "'IAT' is missing" in err["message"] and "39" in err["message"]


def test_extra_column_is_named(client: TestClient, json_rows: list[dict[str, Any]]) -> None:
    rows = _rows(json_rows)
    rows[0]["src_ip"] = 3.0
    err = _error(client.post("/v1/predict", json={"rows": rows}), 422, "extra_column")
    assert (err["row"], err["column"]) == (0, "src_ip")
    assert "unexpected column 'src_ip'" in err["message"]


@pytest.mark.parametrize("value", ["abc", "1.5", True, [1], {"a": 1}])
def test_wrong_type_names_column_expected_and_got(
    client: TestClient, json_rows: list[dict[str, Any]], value: Any
) -> None:
    rows = _rows(json_rows)
    rows[2]["Protocol Type"] = value
    err = _error(client.post("/v1/predict", json={"rows": rows}), 422, "bad_value")
    assert (err["row"], err["column"]) == (2, "Protocol Type")
    assert "expected a finite number" in err["message"] and "got" in err["message"]


def test_null_where_nan_is_not_allowed(client: TestClient, json_rows: list[dict[str, Any]]) -> None:
    rows = _rows(json_rows)
    rows[0]["Time_To_Live"] = None
    err = _error(client.post("/v1/predict", json={"rows": rows}), 422, "nan_not_allowed")
    assert err["column"] == "Time_To_Live"
    assert "null (NaN) is not allowed" in err["message"]


@pytest.mark.parametrize("column", ["Std", "Variance"])
def test_null_where_nan_is_allowed(client: TestClient, json_rows: list[dict[str, Any]], column: str) -> None:
    rows = _rows(json_rows)
    rows[0][column] = None
    r = client.post("/v1/predict", json={"rows": rows})
    assert r.status_code == 200, r.text
    assert r.json()["n_rows"] == 3


@pytest.mark.parametrize("token", ["inf", "Infinity", "-inf", "-Infinity"])
def test_infinity_strings_in_rate(client: TestClient, json_rows: list[dict[str, Any]], token: str) -> None:
    rows = _rows(json_rows)
    rows[0]["Rate"] = token
    assert client.post("/v1/predict", json={"rows": rows}).status_code == 200


def test_infinity_outside_rate_is_rejected(client: TestClient, json_rows: list[dict[str, Any]]) -> None:
    rows = _rows(json_rows)
    rows[0]["Tot sum"] = "inf"
    err = _error(client.post("/v1/predict", json={"rows": rows}), 422, "bad_value")
    assert err["column"] == "Tot sum"


def test_nan_literal_is_rejected(client: TestClient, json_rows: list[dict[str, Any]]) -> None:
    # Python's json module writes NaN, a token that is not JSON; the parser must not let it through.
    row = dict(json_rows[0], Min=float("nan"))
    body = json.dumps({"rows": [row]})
    assert "NaN" in body
    err = _error(
        client.post("/v1/predict", content=body, headers={"Content-Type": "application/json"}),
        422,
        "bad_value",
    )
    assert err["column"] == "Min"


def test_value_beyond_float32_range(client: TestClient, json_rows: list[dict[str, Any]]) -> None:
    rows = _rows(json_rows)
    rows[1]["Max"] = 1e39
    err = _error(client.post("/v1/predict", json={"rows": rows}), 422, "bad_value")
    assert (err["row"], err["column"]) == (1, "Max")
    assert "float32" in err["message"]


def test_every_bad_cell_is_listed(client: TestClient, json_rows: list[dict[str, Any]]) -> None:
    rows = _rows(json_rows)
    rows[0]["Min"] = "x"
    rows[2]["Max"] = "y"
    err = _error(client.post("/v1/predict", json={"rows": rows}), 422, "bad_value")
    assert [(d["row"], d["column"]) for d in err["details"]] == [(0, "Min"), (2, "Max")]


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ('{"rows": []}', 422, "empty_batch", "rows"),
        ("{}", 422, "missing_field", "rows"),
        ('{"rows": [1], "model": "x"}', 422, "extra_field", "model"),
        ("[]", 422, "malformed_request", "body"),
        ('{"rows": 3}', 422, "malformed_request", "rows"),
        ('{"rows": [', 400, "malformed_json", None),
        ("", 400, "malformed_json", None),
        ('{"rows": [1]} trailing', 400, "malformed_json", None),
    ],
)
def test_malformed_or_empty_json(
    client: TestClient, body: str, status: int, code: str, field: str | None
) -> None:
    r = client.post("/v1/predict", content=body, headers={"Content-Type": "application/json"})
    err = _error(r, status, code)
    assert err.get("field") == field


def test_row_that_is_not_an_object(client: TestClient, json_rows: list[dict[str, Any]]) -> None:
    err = _error(client.post("/v1/predict", json={"rows": [json_rows[0], 7]}), 422, "bad_value")
    assert err["row"] == 1 and "must be an object" in err["message"]


def test_unsupported_media_type(client: TestClient) -> None:
    err = _error(
        client.post("/v1/predict", content="a=1", headers={"Content-Type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    assert err["field"] == "Content-Type" and "text/csv" in err["message"]


# -- CSV ----------------------------------------------------------------------------------------


def _csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False)


def _post_csv(client: TestClient, body: str | bytes) -> Any:
    return client.post("/v1/predict", content=body, headers={"Content-Type": "text/csv"})


def test_csv_missing_column(client: TestClient, rows_frame: pd.DataFrame) -> None:
    err = _error(_post_csv(client, _csv(rows_frame.drop(columns=["Number"]))), 422, "missing_column")
    assert err["column"] == "Number" and "'Number'" in err["message"]


def test_csv_extra_column(client: TestClient, rows_frame: pd.DataFrame) -> None:
    err = _error(_post_csv(client, _csv(rows_frame.assign(label="x"))), 422, "extra_column")
    assert err["column"] == "label"


def test_csv_duplicate_column(client: TestClient, rows_frame: pd.DataFrame) -> None:
    text = _csv(rows_frame.head(2))
    lines = text.splitlines()
    lines = [line + "," + line.split(",")[0] for line in lines]
    err = _error(_post_csv(client, "\n".join(lines)), 422, "duplicate_column")
    assert err["column"] == "Header_Length"


def test_csv_bad_cell_names_row_and_column(client: TestClient, rows_frame: pd.DataFrame) -> None:
    frame = rows_frame.head(4).astype(object)
    frame.loc[3, "AVG"] = "fast"
    err = _error(_post_csv(client, _csv(frame)), 422, "bad_value")
    assert (err["row"], err["column"]) == (3, "AVG")
    assert "got 'fast'" in err["message"]


def test_csv_empty_cell_where_nan_not_allowed(client: TestClient, rows_frame: pd.DataFrame) -> None:
    frame = rows_frame.head(4).copy()
    frame.loc[0, "Std"] = float("nan")  # allowed
    frame.loc[2, "Header_Length"] = float("nan")  # not allowed
    err = _error(_post_csv(client, _csv(frame)), 422, "nan_not_allowed")
    assert (err["row"], err["column"]) == (2, "Header_Length")
    assert [d["column"] for d in err["details"]] == ["Header_Length"]


def test_csv_inf_outside_rate(client: TestClient, rows_frame: pd.DataFrame) -> None:
    frame = rows_frame.head(3).copy()
    frame.loc[1, "IAT"] = float("inf")
    err = _error(_post_csv(client, _csv(frame)), 422, "bad_value")
    assert (err["row"], err["column"]) == (1, "IAT")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("", 422, "empty_batch"),
        ("\n\n", 422, "empty_batch"),
        (b"\xff\xfe\x00garbage", 400, "malformed_csv"),
        ('Header_Length,"Protocol Type\n1,2\n', 400, "malformed_csv"),
    ],
)
def test_csv_empty_or_malformed(client: TestClient, body: str | bytes, status: int, code: str) -> None:
    _error(_post_csv(client, body), status, code)


def test_csv_header_without_rows(client: TestClient, rows_frame: pd.DataFrame) -> None:
    err = _error(_post_csv(client, ",".join(rows_frame.columns) + "\n"), 422, "empty_batch")
    assert "no rows" in err["message"]


def test_csv_ragged_row(client: TestClient, rows_frame: pd.DataFrame) -> None:
    lines = _csv(rows_frame.head(3)).splitlines()
    lines[2] += ",9"
    err = _error(_post_csv(client, "\n".join(lines)), 400, "malformed_csv")
    assert err["row"] == 1 and "40 fields" in err["message"]


def test_code_and_message_follow_the_first_problem(
    client: TestClient, json_rows: list[dict[str, Any]]
) -> None:
    rows = _rows(json_rows)
    rows[0]["Min"] = "x"
    del rows[1]["Max"]
    err = _error(client.post("/v1/predict", json={"rows": rows}), 422, "bad_value")
    assert (err["row"], err["column"]) == (0, "Min")
    assert [d["column"] for d in err["details"]] == ["Min", "Max"]
    assert "'Max' is missing" in err["details"][1]["message"]
