"""Request and response bodies of the scoring service.

Request (``POST /v1/predict``), either

* ``Content-Type: application/json``: ``{"rows": [{"Header_Length": 28.4, "Protocol Type": 6, ...}, ...]}``.
  Each row is an object keyed by *all* the bundle's input columns, values are JSON numbers.
  JSON has no NaN or infinity, so: ``null`` stands for NaN (only in the columns the
  bundle's cleaning policy allows NaN in, e.g. ``Std``/``Variance``), and the strings
  ``"inf"`` / ``"Infinity"`` stand for +infinity (``"-inf"`` / ``"-Infinity"`` for -infinity),
  only in the columns that allow it (e.g. ``Rate``; the bundle replaces them by the
  largest / smallest finite training value);
* ``Content-Type: text/csv``: a header line with the input columns (any order) then one
  line per row, as in the dataset's CSV files; an empty cell, ``nan`` or ``NaN`` is NaN,
  ``inf`` / ``Infinity`` (``-inf`` / ``-Infinity``) is +infinity (-infinity), under the same
  per-column policy.

The row type depends on the bundle (release v1 or v2), so it is built at start-up by
:func:`build_row_type` rather than declared here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, Strict, TypeAdapter
from typing_extensions import TypedDict

__all__ = [
    "FLOAT32_MAX",
    "INF_TOKENS",
    "ErrorDetail",
    "ErrorInfo",
    "ErrorResponse",
    "ExplanationItem",
    "FeatureInfo",
    "InputPolicy",
    "HealthResponse",
    "ModelInfo",
    "PredictResponse",
    "RowPrediction",
    "build_request_adapter",
    "predict_request_openapi",
]

#: Strings accepted for +/-infinity in the columns that allow it (the bundle caps them).
INF_TOKENS: tuple[str, ...] = ("inf", "Infinity", "-inf", "-Infinity")
#: Largest magnitude accepted for a finite value: models compute in float32.
FLOAT32_MAX = 3.4e38

_Finite = Annotated[float, Strict(), Field(allow_inf_nan=False, ge=-FLOAT32_MAX, le=FLOAT32_MAX)]


def _column_type(nan_allowed: bool, inf_allowed: bool) -> Any:
    kind: Any = _Finite
    if inf_allowed:
        kind = kind | Literal[INF_TOKENS]  # type: ignore[valid-type]
    if nan_allowed:
        kind = kind | None
    return kind


def build_request_adapter(
    columns: Sequence[str],
    nan_allowed: Sequence[str],
    inf_allowed: Sequence[str],
    max_rows: int,
) -> TypeAdapter[Any]:
    """Build the validator of the JSON predict body for one bundle.

    Parameters
    ----------
    columns : sequence of str
        The bundle's input columns; every row must hold exactly these keys.
    nan_allowed, inf_allowed : sequence of str
        Columns where ``null`` (NaN) and ``"inf"``/``"Infinity"`` are accepted.
    max_rows : int
        Largest number of rows.

    Returns
    -------
    pydantic.TypeAdapter
        Validates ``{"rows": [...]}`` from JSON bytes; rows come back as dicts.
    """
    nan_set, inf_set = set(nan_allowed), set(inf_allowed)
    fields = {c: _column_type(c in nan_set, c in inf_set) for c in columns}
    row = TypedDict("FeatureRow", fields)  # type: ignore[misc]
    row.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]

    class PredictRequest(TypedDict):
        rows: Annotated[list[row], Field(min_length=1, max_length=max_rows)]  # type: ignore[valid-type]

    PredictRequest.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
    return TypeAdapter(PredictRequest)


def predict_request_openapi(adapter: TypeAdapter[Any]) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of ``/v1/predict`` (JSON schema inlined, plus CSV)."""
    schema = adapter.json_schema()
    defs = schema.pop("$defs", {})
    row_schema = defs.get("FeatureRow", {})
    schema["properties"]["rows"]["items"] = row_schema
    schema["title"] = "PredictRequest"
    return {
        "required": True,
        "description": (
            "Feature rows keyed by the model's input columns (see GET /v1/model). "
            "JSON: null = NaN and 'inf'/'Infinity' = +inf ('-inf'/'-Infinity' = -inf), only in the columns that allow them. "
            "CSV: a header line then one line per row."
        ),
        "content": {
            "application/json": {"schema": schema},
            "text/csv": {"schema": {"type": "string"}},
        },
    }


class ExplanationItem(BaseModel):
    """One feature behind a row's attack score (``POST /v1/predict?explain=true``)."""

    feature: str = Field(description="Input column name.")
    value: float | str | None = Field(
        description="The row's raw value of the column (null: NaN; 'inf'/'-inf': infinities)."
    )
    contribution: float = Field(
        description=(
            "Signed contribution towards the row's most probable attack class versus Benign: log-odds "
            "(LightGBM TreeSHAP, integrated gradients for deep models) or probability (random forest "
            "TreeSHAP against a benign reference)."
        )
    )


class RowPrediction(BaseModel):
    """The prediction for one input row."""

    model_config = ConfigDict(populate_by_name=True)

    label: str = Field(alias="class", description="Most probable class.")
    probabilities: dict[str, float] = Field(description="Probability of every class.")
    model_version: str
    explanation: list[ExplanationItem] | None = Field(
        default=None,
        description="Only with ?explain=true: the 3 features pushing the row most towards its attack class.",
    )


class PredictResponse(BaseModel):
    """Predictions, one per input row, in input order."""

    model: str
    model_version: str
    n_rows: int
    predictions: list[RowPrediction]


class FeatureInfo(BaseModel):
    """One input column and which special values it accepts."""

    name: str
    type: Literal["number"] = "number"
    nan_allowed: bool
    inf_allowed: bool


class ModelInfo(BaseModel):
    """The loaded model and the input it expects."""

    name: str
    version: str
    task: int
    classes: list[str]
    release: str
    features: list[FeatureInfo]
    max_rows: int
    max_body_bytes: int


class HealthResponse(BaseModel):
    """Liveness answer."""

    status: Literal["ok"] = "ok"
    model_version: str


class ErrorDetail(BaseModel):
    """One problem of a rejected request."""

    message: str
    row: int | None = None
    column: str | None = None
    field: str | None = None


class ErrorInfo(BaseModel):
    """What went wrong, and where."""

    code: str
    message: str
    row: int | None = None
    column: str | None = None
    field: str | None = None
    details: list[ErrorDetail] | None = None


class ErrorResponse(BaseModel):
    """The body of every 4xx/5xx answer."""

    error: ErrorInfo


@dataclass(frozen=True)
class InputPolicy:
    """The columns a body must hold and the special values each accepts."""

    columns: tuple[str, ...]
    nan_allowed: frozenset[str]
    inf_allowed: frozenset[str]
    max_rows: int

    def expected(self, column: str) -> str:
        """Describe what ``column`` accepts, for error messages."""
        parts = ["a finite number"]
        if column in self.inf_allowed:
            parts.append("'inf'/'Infinity'/'-inf'/'-Infinity'")
        if column in self.nan_allowed:
            parts.append("null/NaN")
        return " or ".join(parts)
