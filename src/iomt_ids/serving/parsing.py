"""Turn a ``/v1/predict`` body (JSON or CSV bytes) into a float64 matrix of the input columns.

The matrix has one row per input row and the bundle's input columns in order (the
array form ``ModelBundle.predict_proba`` takes; no per-request DataFrame).

Both paths apply the same per-column policy (see :mod:`iomt_ids.serving.schemas`):
finite numbers everywhere, NaN only in ``nan_allowed`` columns, +inf only in
``inf_allowed`` columns. Every rejection is an :class:`~iomt_ids.serving.errors.ApiError`
naming the row and column, what was expected and what came.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import numpy as np
import pandas as pd
from pydantic import TypeAdapter, ValidationError

from iomt_ids.serving.errors import MAX_DETAILS, ApiError
from iomt_ids.serving.fastpath import read_clean_json
from iomt_ids.serving.schemas import FLOAT32_MAX, INF_TOKENS, InputPolicy

__all__ = ["InputPolicy", "parse_csv", "parse_json"]

_NAN_TOKENS = frozenset({"", "nan", "NaN"})
_INF_TOKENS = frozenset(INF_TOKENS)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _translate_json_errors(errors: list[Any], policy: InputPolicy) -> ApiError:
    """Map pydantic errors of the JSON body to one ApiError with per-cell details."""
    first = errors[0]
    if first["type"] == "json_invalid":
        return ApiError(
            400, "malformed_json", f"body is not valid JSON: {first['msg'].removeprefix('Invalid JSON: ')}."
        )
    details: list[dict[str, Any]] = []
    codes: list[str] = []
    seen: set[tuple[Any, ...]] = set()
    # Structural problems (short locations: the body, "rows") come before per-cell ones.
    for err in sorted(errors, key=lambda e: min(len(e["loc"]), 2)):
        loc = tuple(err["loc"])
        kind = err["type"]
        if len(loc) == 0:
            return ApiError(
                422, "malformed_request", 'body must be a JSON object {"rows": [...]}; got ' + f"{type(err['input']).__name__}.",
                field="body",
            )  # fmt: skip
        if loc[0] != "rows":
            return ApiError(
                422,
                "extra_field",
                f'unexpected field {loc[0]!r}; the body holds only "rows".',
                field=str(loc[0]),
            )
        if len(loc) == 1:
            if kind == "missing":
                return ApiError(
                    422, "missing_field", 'body has no "rows" field; expected {"rows": [...]}.', field="rows"
                )
            if kind == "too_short":
                return ApiError(422, "empty_batch", '"rows" is empty; send at least one row.', field="rows")
            if kind == "too_long":
                n = err.get("ctx", {}).get("actual_length")
                return ApiError(
                    413, "too_many_rows", f"{n} rows in one request; at most {policy.max_rows} allowed. Split the batch.",
                    field="rows",
                )  # fmt: skip
            return ApiError(422, "malformed_request", '"rows" must be a list of objects.', field="rows")
        row = int(loc[1])
        if len(loc) == 2:
            msg = f"row {row} must be an object keyed by column names; got {_short(err['input'])}."
            details.append({"row": row, "message": msg})
            codes.append("bad_value")
            continue
        column = str(loc[2])
        if (row, column) in seen:  # union branches repeat the same cell
            continue
        seen.add((row, column))
        code = "bad_value"
        if kind == "missing":
            msg = f"row {row}: column {column!r} is missing; every row needs all {len(policy.columns)} input columns."
            code = "missing_column"
        elif kind == "extra_forbidden":
            msg = f"row {row}: unexpected column {column!r}; see GET /v1/model for the input columns."
            code = "extra_column"
        elif err["input"] is None:
            msg = f"row {row}, column {column!r}: null (NaN) is not allowed here; expected {policy.expected(column)}."
            code = "nan_not_allowed"
        elif kind in ("less_than_equal", "greater_than_equal"):
            msg = (
                f"row {row}, column {column!r}: expected a value between -{FLOAT32_MAX:g} and {FLOAT32_MAX:g} "
                f"(the model computes in float32); got {_short(err['input'])}."
            )
        else:
            msg = f"row {row}, column {column!r}: expected {policy.expected(column)}; got {_short(err['input'])}."
        details.append({"row": row, "column": column, "message": msg})
        codes.append(code)
    # The code and the message are those of the first problem; ``details`` lists them all.
    head = details[0]
    return ApiError(
        422, codes[0], head["message"], row=head.get("row"), column=head.get("column"), details=details
    )


def parse_json(body: bytes, adapter: TypeAdapter[Any], policy: InputPolicy) -> np.ndarray:
    """Validate a JSON ``{"rows": [...]}`` body; return its ``(n_rows, n_columns)`` float64 matrix."""
    clean = read_clean_json(body, policy)
    if clean is not None:
        return clean
    try:
        data = adapter.validate_json(body)
    except ValidationError as exc:
        raise _translate_json_errors(exc.errors(include_url=False), policy) from None
    rows = data["rows"]
    cols = policy.columns
    # None -> NaN and "inf"/"Infinity" -> inf are numpy's own float conversions.
    values = np.array([[r[c] for c in cols] for r in rows], dtype=np.float64)
    return values


def _csv_values(raw: np.ndarray, header: list[str], policy: InputPolicy) -> np.ndarray:
    """Convert the (rows, columns) string cells to float64 under the per-column policy.

    Works on the whole matrix at once (one pandas pass, not one per column): small
    batches are dominated by per-call overhead otherwise.
    """
    n, m = raw.shape
    flat = pd.Series(raw.ravel(), dtype=object).str.strip()
    values = np.array(pd.to_numeric(flat, errors="coerce"), dtype=np.float64).reshape(n, m)
    is_nan_token = flat.isin(_NAN_TOKENS).to_numpy().reshape(n, m)
    is_inf_token = flat.isin(_INF_TOKENS).to_numpy().reshape(n, m)
    nan_ok = np.array([c in policy.nan_allowed for c in header])
    inf_ok = np.array([c in policy.inf_allowed for c in header])
    bad = np.isnan(values) & ~is_nan_token  # not a number at all
    bad |= is_nan_token & ~nan_ok
    bad |= np.isinf(values) & ~(is_inf_token & inf_ok)  # overflow like 1e999, or inf where not allowed
    bad |= np.abs(np.where(np.isfinite(values), values, 0.0)) > FLOAT32_MAX
    if bad.any():
        order = {c: k for k, c in enumerate(policy.columns)}
        cells = sorted(map(tuple, np.argwhere(bad)), key=lambda rc: (rc[0], order[header[rc[1]]]))
        problems = []
        for row, j in cells[:MAX_DETAILS]:
            column = header[j]
            if is_nan_token[row, j]:
                msg = f"row {row}, column {column!r}: NaN (empty cell) is not allowed here; expected {policy.expected(column)}."
            else:
                msg = f"row {row}, column {column!r}: expected {policy.expected(column)}; got {_short(raw[row, j])}."
            problems.append({"row": int(row), "column": column, "message": msg})
        first_row, first_col = cells[0]
        code = "nan_not_allowed" if is_nan_token[first_row, first_col] else "bad_value"
        head = problems[0]
        raise ApiError(422, code, head["message"], row=head["row"], column=head["column"], details=problems)
    values[is_nan_token] = np.nan
    return values


def parse_csv(body: bytes, policy: InputPolicy) -> np.ndarray:
    """Validate a CSV body (header line, then rows); return its float64 matrix in input-column order."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiError(400, "malformed_csv", f"CSV body is not UTF-8 text (byte {exc.start}).") from None
    try:
        records = [r for r in csv.reader(io.StringIO(text, newline=""), strict=True) if r]
    except csv.Error as exc:
        raise ApiError(400, "malformed_csv", f"CSV body cannot be parsed: {exc}.") from None
    if not records:
        raise ApiError(422, "empty_batch", "CSV body is empty; send a header line and at least one row.")
    header = [h.strip() for h in records[0]]
    data = records[1:]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise ApiError(422, "duplicate_column", f"CSV header repeats columns {dupes}.", column=dupes[0])
    missing = [c for c in policy.columns if c not in set(header)]
    if missing:
        raise ApiError(
            422, "missing_column",
            f"CSV header lacks columns {missing}; expected all {len(policy.columns)} input columns (see GET /v1/model).",
            column=missing[0],
        )  # fmt: skip
    extra = [h for h in header if h not in set(policy.columns)]
    if extra:
        raise ApiError(
            422,
            "extra_column",
            f"CSV header has unexpected columns {extra}; see GET /v1/model.",
            column=extra[0],
        )
    if not data:
        raise ApiError(422, "empty_batch", "CSV body has a header but no rows; send at least one row.")
    if len(data) > policy.max_rows:
        raise ApiError(
            413,
            "too_many_rows",
            f"{len(data)} rows in one request; at most {policy.max_rows} allowed. Split the batch.",
        )
    for i, rec in enumerate(data):
        if len(rec) != len(header):
            raise ApiError(
                400,
                "malformed_csv",
                f"CSV row {i} has {len(rec)} fields; the header has {len(header)}.",
                row=i,
            )
    values = _csv_values(np.array(data, dtype=object), header, policy)
    position = {c: j for j, c in enumerate(header)}
    return np.ascontiguousarray(values[:, [position[c] for c in policy.columns]])
