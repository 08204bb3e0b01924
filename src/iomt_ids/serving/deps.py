"""Dependencies shared by the routes, as ``Annotated[..., Depends(...)]`` aliases.

Everything comes from ``request.app.state`` (set once by :func:`create_app`), so
there are no module-level globals and two apps in one process stay independent.
The dependencies are ``async`` although they never wait: FastAPI runs plain ``def``
dependencies in its thread pool, one hop per dependency and request.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from iomt_ids.serving.errors import ApiError
from iomt_ids.serving.metrics import ServeMetrics
from iomt_ids.serving.scorer import Scorer
from iomt_ids.serving.settings import ServeSettings

__all__ = [
    "API_KEY_HEADER",
    "ApiKeyDep",
    "BodyDep",
    "BundleDep",
    "MetricsDep",
    "SettingsDep",
    "get_bundle",
    "get_metrics",
    "get_settings",
    "read_body",
    "require_api_key",
]

API_KEY_HEADER = "X-API-Key"
_api_key_scheme = APIKeyHeader(
    name=API_KEY_HEADER,
    auto_error=False,
    description="Required when the service was started with an API key (--api-key or IOMT_IDS_API_KEY).",
)


async def get_bundle(request: Request) -> Scorer:
    """The model bundle loaded at start-up."""
    return request.app.state.bundle  # type: ignore[no-any-return]


async def get_settings(request: Request) -> ServeSettings:
    """The settings the app was created with."""
    return request.app.state.settings  # type: ignore[no-any-return]


async def get_metrics(request: Request) -> ServeMetrics:
    """The app's metrics."""
    return request.app.state.metrics  # type: ignore[no-any-return]


BundleDep = Annotated[Scorer, Depends(get_bundle)]
SettingsDep = Annotated[ServeSettings, Depends(get_settings)]
MetricsDep = Annotated[ServeMetrics, Depends(get_metrics)]


async def require_api_key(
    settings: SettingsDep,
    api_key: Annotated[str | None, Security(_api_key_scheme)] = None,
) -> None:
    """Reject the request with 401 unless it carries the configured API key.

    The comparison uses :func:`hmac.compare_digest` on bytes, so its time does not
    depend on how many leading characters match. No key configured: no check.
    """
    if settings.api_key is None:
        return
    expected = settings.api_key.get_secret_value().encode("utf-8")
    given = (api_key or "").encode("utf-8")
    if not api_key or not hmac.compare_digest(given, expected):
        raise ApiError(
            401,
            "unauthorized",
            f"missing or wrong API key; send it in the {API_KEY_HEADER} header.",
            field=API_KEY_HEADER,
            headers={"WWW-Authenticate": API_KEY_HEADER},
        )


ApiKeyDep = Depends(require_api_key)


async def read_body(request: Request, settings: SettingsDep) -> bytes:
    """Read the request body, refusing with 413 as soon as it passes ``max_body_bytes``.

    A ``Content-Length`` above the limit is refused before reading anything; a
    chunked body is counted while it streams in, so it is never held in full.
    """
    limit = settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise ApiError(400, "bad_request", f"Content-Length must be an integer; got {declared!r}.")
        if int(declared) > limit:
            raise _too_large(int(declared), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit, at_least=True)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int, at_least: bool = False) -> ApiError:
    got = f"at least {size}" if at_least else str(size)
    return ApiError(
        413,
        "body_too_large",
        f"request body is {got} bytes; at most {limit} allowed. Send fewer rows per request.",
    )


BodyDep = Annotated[bytes, Depends(read_body)]
