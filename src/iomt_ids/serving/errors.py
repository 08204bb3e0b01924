"""One JSON error shape for every failure, and the handlers that produce it.

Every error response has the body::

    {"error": {"code": "bad_value", "message": "...", "row": 3, "column": "Rate",
               "details": [{"row": 3, "column": "Rate", "message": "..."}]}}

``row`` / ``column`` / ``field`` appear when the error concerns one of them. No
handler ever puts a traceback or an exception repr in a response: unexpected
errors are logged server-side and answered with a fixed ``internal_error`` body.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = ["ApiError", "error_body", "install_error_handlers"]

logger = logging.getLogger(__name__)

#: Most per-cell problems listed in ``details``.
MAX_DETAILS = 20

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "too_many_requests",
}


class ApiError(Exception):
    """An error answered to the client as ``{"error": {...}}`` with ``status``.

    Parameters
    ----------
    status : int
        HTTP status code (4xx).
    code : str
        Stable machine-readable code, e.g. ``"missing_column"``.
    message : str
        What was expected and what came.
    row, column, field : optional
        The culprit, when there is one.
    details : list of dict, optional
        Further problems of the same request (at most :data:`MAX_DETAILS`).
    headers : dict, optional
        Extra response headers.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        row: int | None = None,
        column: str | None = None,
        field: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.row = row
        self.column = column
        self.field = field
        self.details = details[:MAX_DETAILS] if details else None
        self.headers = headers

    def body(self) -> dict[str, Any]:
        """The JSON body of this error."""
        return error_body(
            self.code,
            self.message,
            row=self.row,
            column=self.column,
            field=self.field,
            details=self.details,
        )


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """Build ``{"error": {...}}``, leaving out the ``None`` entries of ``extra``."""
    inner: dict[str, Any] = {"code": code, "message": message}
    inner.update({k: v for k, v in extra.items() if v is not None})
    return {"error": inner}


def _loc_field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc if part not in ("body", "query", "header", "path"))


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    request.state.error_code = exc.code
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    request.state.error_code = code
    detail = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    if exc.status_code == 404:
        detail = f"no route {request.url.path!r}; see /openapi.json for the routes."
    elif exc.status_code == 405:
        detail = f"method {request.method} is not allowed on {request.url.path!r}."
    return JSONResponse(error_body(code, detail), status_code=exc.status_code, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    # Only query/header/path parameters reach here: the predict body is validated by hand.
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    details = [
        {"field": _loc_field(tuple(e.get("loc", ()))), "message": str(e.get("msg", ""))} for e in errors
    ]
    first = details[0] if details else {"field": None, "message": "invalid request"}
    request.state.error_code = "invalid_request"
    return JSONResponse(
        error_body(
            "invalid_request",
            f"{first['field'] or 'request'}: {first['message']}",
            field=first["field"] or None,
            details=details[:MAX_DETAILS],
        ),
        status_code=422,
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    request.state.error_code = "internal_error"
    return JSONResponse(
        error_body("internal_error", "internal server error; the server log has the details."),
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every error into the ``{"error": ...}`` body."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
