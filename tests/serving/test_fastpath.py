"""The fast JSON reader never accepts what the pydantic validator refuses, and reads the same numbers."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from iomt_ids.features.schema import V2_COLUMNS
from iomt_ids.serving.fastpath import read_clean_json
from iomt_ids.serving.schemas import InputPolicy, build_request_adapter

COLUMNS = tuple(V2_COLUMNS)
POLICY = InputPolicy(COLUMNS, frozenset({"Std", "Variance"}), frozenset({"Rate"}), max_rows=4)
ADAPTER = build_request_adapter(COLUMNS, ["Std", "Variance"], ["Rate"], max_rows=4)

_cell = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.integers(-(10**6), 10**6),
    st.sampled_from([None, True, False, "inf", "-Infinity", "1.5", "", 1e39, 10**40, -3.5e38, [1], {}]),
)


def _pydantic_matrix(body: bytes) -> np.ndarray | None:
    try:
        data = ADAPTER.validate_json(body)
    except ValidationError:
        return None
    return np.array([[r[c] for c in COLUMNS] for r in data["rows"]], dtype=np.float64)


def _row(draw: Any) -> dict[str, Any]:
    # Mostly clean rows, with a few special cells so both paths get exercised.
    row: dict[str, Any] = {c: float(i) for i, c in enumerate(COLUMNS)}
    for column in draw(st.lists(st.sampled_from(COLUMNS), max_size=3)):
        row[column] = draw(_cell)
    if draw(st.booleans()) and draw(st.booleans()):
        row.pop(draw(st.sampled_from(COLUMNS)))
    if draw(st.booleans()) and draw(st.booleans()) and draw(st.booleans()):
        row["extra"] = 1.0
    return row


@st.composite
def bodies(draw: Any) -> bytes:
    rows = [_row(draw) for _ in range(draw(st.integers(0, 5)))]
    text = json.dumps({"rows": rows})  # writes 1e39 / 10**40 as numbers; never NaN (no NaN drawn)
    if draw(st.booleans()) and rows:
        text = text.replace("0.0", "1e999", 1)  # a number that overflows to inf
    return text.encode()


@given(bodies())
@settings(
    max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True
)
def test_fast_reader_agrees_with_pydantic(body: bytes) -> None:
    fast = read_clean_json(body, POLICY)
    slow = _pydantic_matrix(body)
    if fast is not None:
        assert slow is not None, body
        np.testing.assert_array_equal(fast, slow)


@pytest.mark.parametrize(
    "body",
    [
        b'{"rows": [{"Rate": NaN}]}',
        b'{"rows": []}',
        b'{"rows": [], "x": 1}',
        json.dumps({"rows": [dict.fromkeys(COLUMNS, 1.0)]}).encode("utf-16"),  # JSON, but not UTF-8
    ],
)
def test_fast_reader_declines_odd_bodies(body: bytes) -> None:
    assert read_clean_json(body, POLICY) is None


def test_fast_reader_reads_special_values() -> None:
    row: dict[str, Any] = {c: 1 for c in COLUMNS}
    row.update({"Std": None, "Rate": "-Infinity"})
    out = read_clean_json(json.dumps({"rows": [row, {c: 2.5 for c in COLUMNS}]}).encode(), POLICY)
    assert out is not None and out.shape == (2, len(COLUMNS))
    assert np.isnan(out[0, COLUMNS.index("Std")]) and out[0, COLUMNS.index("Rate")] == -np.inf
    assert (out[1] == 2.5).all()
