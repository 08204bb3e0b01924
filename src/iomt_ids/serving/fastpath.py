"""A fast, accept-only reader of well-formed JSON predict bodies.

Validating ``{"rows": [...]}`` through pydantic costs about as much as scoring the
rows. Most bodies are well-formed, so :func:`read_clean_json` first tries the
standard library parser plus a few vectorised checks, and returns ``None`` as soon
as anything is off; the caller then runs the pydantic validator, which is the one
that words the error. It only ever accepts what the pydantic validator built by
:func:`iomt_ids.serving.schemas.build_request_adapter` accepts:

* a UTF-8 JSON object with exactly the key ``"rows"``, holding 1..max_rows objects;
* each object has exactly the input columns;
* each value is a JSON number (not a boolean), or ``null`` in a NaN-allowed column,
  or one of the infinity strings in an inf-allowed column;
* every number is finite (``1e999`` parses to inf and is refused) and within float32 range.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

from iomt_ids.serving.schemas import FLOAT32_MAX, INF_TOKENS

if TYPE_CHECKING:
    from iomt_ids.serving.schemas import InputPolicy

__all__ = ["read_clean_json"]

_INF_TOKENS = frozenset(INF_TOKENS)


class _NotJson(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    # NaN / Infinity / -Infinity literals are not JSON.
    raise _NotJson(name)


def read_clean_json(body: bytes, policy: InputPolicy) -> np.ndarray | None:
    """Return the ``(n_rows, n_columns)`` float64 matrix of a clean body, else ``None``."""
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None
    if type(data) is not dict or data.keys() != {"rows"}:
        return None
    rows = data["rows"]
    if type(rows) is not list or not 1 <= len(rows) <= policy.max_rows:
        return None
    columns = policy.columns
    wanted = set(columns)
    for row in rows:
        if type(row) is not dict or row.keys() != wanted:
            return None
    matrix = [[row[c] for c in columns] for row in rows]
    tokens: list[tuple[int, int]] = []
    for i, values in enumerate(matrix):
        for v in values:
            t = type(v)
            if t is not float and t is not int:
                break
        else:
            continue
        # Slow lane for rows holding something other than plain numbers.
        for j, v in enumerate(values):
            t = type(v)
            if t is float or t is int:
                continue
            column = columns[j]
            if v is None and column in policy.nan_allowed:
                continue
            if t is str and v in _INF_TOKENS and column in policy.inf_allowed:
                tokens.append((i, j))
                continue
            return None
    try:
        out = np.array(matrix, dtype=np.float64)  # None -> nan, "inf"/"-Infinity" -> +/-inf
    except (OverflowError, ValueError):  # an integer beyond float range
        return None
    finite = np.isfinite(out)
    if not finite.all():
        allowed = np.zeros_like(finite)
        if tokens:
            allowed[tuple(np.array(tokens).T)] = True
        nan_cols = np.array([c in policy.nan_allowed for c in columns])
        # NaN can only come from null (checked above); inf must come from a token, not from 1e999.
        if (np.isinf(out) & ~allowed).any() or (np.isnan(out) & ~nan_cols).any():
            return None
    if (np.abs(np.where(finite, out, 0.0)) > FLOAT32_MAX).any():
        return None
    return out
