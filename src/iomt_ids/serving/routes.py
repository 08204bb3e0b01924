"""The HTTP routes: ``/v1/predict``, ``/v1/model``, ``/healthz``, ``/metrics``."""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from iomt_ids.exceptions import DataError
from iomt_ids.serving.deps import ApiKeyDep, BodyDep, BundleDep, MetricsDep, SettingsDep
from iomt_ids.serving.errors import ApiError
from iomt_ids.serving.parsing import parse_csv, parse_json
from iomt_ids.serving.schemas import (
    ErrorResponse,
    FeatureInfo,
    HealthResponse,
    InputPolicy,
    ModelInfo,
    PredictResponse,
)
from iomt_ids.serving.scorer import Scorer, score_rows

__all__ = ["build_router"]

_JSON_TYPES = frozenset({"application/json"})
_CSV_TYPES = frozenset({"text/csv", "application/csv"})


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorResponse} for code in codes}


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


def _explanations(scorer: Scorer, rows: np.ndarray) -> list[list[dict[str, Any]]]:
    """Top-3 features per row (:func:`iomt_ids.explain.explain_rows`), as the API shows them."""
    from iomt_ids.exceptions import BundleError
    from iomt_ids.explain import explain_rows

    if not hasattr(scorer, "estimator") or not hasattr(scorer, "preprocessor"):
        raise ApiError(
            400, "explain_unavailable", "this model cannot explain its predictions.", field="explain"
        )
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            found = explain_rows(scorer, rows, top=3)  # type: ignore[arg-type]
    except BundleError as exc:
        raise ApiError(400, "explain_unavailable", str(exc), field="explain") from None
    keys = ("feature", "value", "contribution")
    return [[{k: item[k] for k in keys} for item in row] for row in found]


#: the query parameters /v1/predict accepts (anything else is refused, not silently ignored)
_PREDICT_QUERY = frozenset({"explain"})


def _predict(request: Request, body: bytes, scorer: Scorer, explain: bool = False) -> dict[str, Any]:
    """Parse, score and shape the answer (runs in a worker thread: it is CPU-bound)."""
    state = request.app.state
    policy: InputPolicy = state.input_policy
    unknown = sorted(k for k in request.query_params if k not in _PREDICT_QUERY)
    if unknown:
        raise ApiError(
            422,
            "unknown_query_parameter",
            f"/v1/predict takes the query parameters {sorted(_PREDICT_QUERY)}; got {unknown[:5]}.",
            field=unknown[0][:100],
        )
    media = _media_type(request)
    if media in _JSON_TYPES:
        rows = parse_json(body, state.request_adapter, policy)
    elif media in _CSV_TYPES:
        rows = parse_csv(body, policy)
    else:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type must be application/json or text/csv; got {media or 'none'!r}.",
            field="Content-Type",
        )
    try:
        proba = score_rows(scorer, rows)
    except DataError as exc:
        raise ApiError(422, "bad_value", str(exc)) from None
    classes = [str(c) for c in scorer.classes]
    labels = np.asarray(classes, dtype=object)[proba.argmax(axis=1)]
    version = str(scorer.version)
    predictions = [
        {"class": label, "probabilities": dict(zip(classes, row, strict=True)), "model_version": version}
        for label, row in zip(labels.tolist(), proba.tolist(), strict=True)
    ]
    if explain:
        for prediction, items in zip(predictions, _explanations(scorer, rows), strict=True):
            prediction["explanation"] = items
    return {
        "model": str(scorer.model_name),
        "model_version": version,
        "n_rows": len(predictions),
        "predictions": predictions,
    }


def build_router(request_body_openapi: dict[str, Any]) -> APIRouter:
    """Build the router; ``request_body_openapi`` documents the bundle-specific predict body."""
    router = APIRouter()
    protected = [ApiKeyDep]

    @router.post(
        "/v1/predict",
        response_model=PredictResponse,
        responses=_errors(400, 401, 413, 415, 422),
        dependencies=protected,
        summary="Score a batch of feature rows",
        openapi_extra={"requestBody": request_body_openapi},
    )
    async def predict(
        request: Request, body: BodyDep, scorer: BundleDep, metrics: MetricsDep, explain: bool = False
    ) -> JSONResponse:
        """Return the class, the probability of every class and the model version for each row.

        With ``?explain=true`` each prediction also lists the 3 features pushing the row most
        towards its most probable attack class (``explanation``: feature, raw value, signed contribution).
        """
        answer = await run_in_threadpool(_predict, request, body, scorer, explain)
        metrics.rows_scored.inc(answer["n_rows"])
        # Built by hand: re-validating thousands of rows through response_model costs more than scoring.
        return JSONResponse(answer)

    @router.get("/v1/model", response_model=ModelInfo, responses=_errors(401), dependencies=protected)
    async def model_info(scorer: BundleDep, settings: SettingsDep) -> ModelInfo:
        """Describe the loaded model: name, version, task, classes, release and input schema."""
        nan_ok, inf_ok = set(scorer.nan_allowed_columns), set(scorer.inf_allowed_columns)
        return ModelInfo(
            name=str(scorer.model_name),
            version=str(scorer.version),
            task=int(scorer.task),
            classes=[str(c) for c in scorer.classes],
            release=str(scorer.release),
            features=[
                FeatureInfo(name=c, nan_allowed=c in nan_ok, inf_allowed=c in inf_ok)
                for c in scorer.input_columns
            ],
            max_rows=settings.max_rows,
            max_body_bytes=settings.max_body_bytes,
        )

    @router.get("/healthz", response_model=HealthResponse)
    async def healthz(scorer: BundleDep) -> HealthResponse:
        """Liveness: the process is up and holds a model. Never needs the API key."""
        return HealthResponse(model_version=str(scorer.version))

    @router.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}},
            **_errors(401),
        },
        dependencies=protected,
    )
    async def metrics_route(metrics: MetricsDep) -> Response:
        """Prometheus text exposition of this app's metrics."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return router
