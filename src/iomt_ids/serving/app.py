"""The app factory: one FastAPI app per loaded model bundle."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse

from iomt_ids.exceptions import BundleError
from iomt_ids.serving.dashboard import AlertFeed, DashboardSource, build_dashboard_router, card_from_bundle
from iomt_ids.serving.deps import API_KEY_HEADER, ApiKeyDep
from iomt_ids.serving.errors import install_error_handlers
from iomt_ids.serving.metrics import MetricsMiddleware, ServeMetrics
from iomt_ids.serving.routes import build_router
from iomt_ids.serving.schemas import InputPolicy, build_request_adapter, predict_request_openapi
from iomt_ids.serving.scorer import Scorer
from iomt_ids.serving.settings import ServeSettings

__all__ = ["create_app"]

logger = logging.getLogger(__name__)


def _check_bundle(bundle: Scorer) -> None:
    missing = [
        name
        for name in ("classes", "input_columns", "predict_proba", "version", "nan_allowed_columns")
        if not hasattr(bundle, name)
    ]
    if missing:
        raise BundleError(f"bundle lacks {missing}; expected an iomt_ids.artifacts.ModelBundle.")
    columns = list(bundle.input_columns)
    if not columns or len(set(columns)) != len(columns):
        raise BundleError(f"bundle input_columns must be non-empty and unique; got {columns}.")
    unknown = (set(bundle.nan_allowed_columns) | set(bundle.inf_allowed_columns)) - set(columns)
    if unknown:
        raise BundleError(f"bundle allows NaN/inf in columns it does not take: {sorted(unknown)}.")
    if len(bundle.classes) < 2:
        raise BundleError(f"bundle must have at least 2 classes; got {list(bundle.classes)}.")


_SWAGGER = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title} - Swagger UI</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({{spec: {spec}, dom_id: "#swagger-ui", deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset], layout: "BaseLayout"}});</script>
</body></html>"""
_REDOC = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title} - ReDoc</title></head>
<body><div id="redoc"></div>
<script src="https://cdn.jsdelivr.net/npm/redoc@2/bundles/redoc.standalone.js"></script>
<script>Redoc.init({spec}, {{}}, document.getElementById("redoc"));</script>
</body></html>"""


def _inline_spec(spec: dict[str, Any]) -> str:
    """The schema as a JavaScript literal that cannot close the ``<script>`` it sits in."""
    return json.dumps(spec).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _install_docs(app: FastAPI) -> None:
    """``/openapi.json``, ``/docs`` and ``/redoc``, behind the API key like the other routes.

    The two HTML pages carry the schema inline, so a browser that got the page (with the
    key, e.g. through a header-adding proxy) does not have to fetch ``/openapi.json`` again
    without it. Their Swagger UI / ReDoc scripts come from the jsDelivr CDN, as FastAPI's do.
    """

    @app.get("/openapi.json", include_in_schema=False, dependencies=[ApiKeyDep])
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[ApiKeyDep])
    async def swagger() -> HTMLResponse:
        return HTMLResponse(_SWAGGER.format(title=app.title, spec=_inline_spec(app.openapi())))

    @app.get("/redoc", include_in_schema=False, dependencies=[ApiKeyDep])
    async def redoc() -> HTMLResponse:
        return HTMLResponse(_REDOC.format(title=app.title, spec=_inline_spec(app.openapi())))


def create_app(
    bundle: Scorer, settings: ServeSettings | None = None, alerts: str | Path | None = None
) -> FastAPI:
    """Build the scoring service around one loaded model bundle.

    Parameters
    ----------
    bundle : Scorer
        A loaded :class:`iomt_ids.artifacts.ModelBundle` (anything with the same
        attributes). It is held on ``app.state`` and shared by all requests.
    settings : ServeSettings, optional
        Limits, API key, CORS origins and docs switch. Default: read from the ``IOMT_IDS_*`` environment.
    alerts : str or Path, optional
        A JSON-lines alert file (``iomt-ids detect --alerts``) the dashboard at ``/``
        follows. Without it the dashboard shows the model card and the scoring traffic.

    Returns
    -------
    fastapi.FastAPI
        The app; serve it with ``uvicorn.run(app)``.

    Raises
    ------
    BundleError
        When the bundle lacks what the service needs.
    """
    settings = settings if settings is not None else ServeSettings()
    _check_bundle(bundle)
    adapter = build_request_adapter(
        bundle.input_columns, bundle.nan_allowed_columns, bundle.inf_allowed_columns, settings.max_rows
    )
    app = FastAPI(
        title="iomt-ids scoring service",
        version=str(bundle.version),
        description=(
            f"Scores CICIoMT2024 {bundle.release} feature rows with the {bundle.model_name} model "
            f'({bundle.task}-class task). Send rows to POST /v1/predict as JSON {{"rows": [...]}} or CSV.'
        ),
        debug=False,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.bundle = bundle
    app.state.settings = settings
    app.state.request_adapter = adapter
    app.state.input_policy = InputPolicy(
        columns=tuple(bundle.input_columns),
        nan_allowed=frozenset(bundle.nan_allowed_columns),
        inf_allowed=frozenset(bundle.inf_allowed_columns),
        max_rows=settings.max_rows,
    )
    metrics = ServeMetrics()
    metrics.model_info.labels(
        name=str(bundle.model_name),
        version=str(bundle.version),
        task=str(bundle.task),
        release=str(bundle.release),
    ).set(1)
    app.state.metrics = metrics
    app.state.dashboard = DashboardSource(
        feed=AlertFeed(alerts) if alerts is not None else None, card=card_from_bundle(bundle), metrics=metrics
    )

    install_error_handlers(app)
    app.include_router(build_router(predict_request_openapi(adapter)))
    app.include_router(build_dashboard_router())
    if settings.docs:
        _install_docs(app)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", API_KEY_HEADER],
        )
    # Added last so it is the outermost user middleware and also times CORS answers.
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    logger.info(
        "scoring service ready: model %s %s, %d columns, auth %s",
        bundle.model_name,
        bundle.version,
        len(bundle.input_columns),
        "on" if settings.api_key else "off",
    )
    return app
