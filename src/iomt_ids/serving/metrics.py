"""Prometheus metrics of one app instance, on its own registry (never the global one).

Metrics (all prefixed ``iomt_ids_``):

* ``http_requests_total{route, method, status}``: requests answered;
* ``http_request_duration_seconds{route}``: latency histogram, from the first byte
  of the request to the end of the response;
* ``http_errors_total{route, code}``: 4xx/5xx answers by error code;
* ``rows_scored_total``: feature rows that got a prediction;
* ``model_info{name, version, task, release}``: always 1, labels describe the model.

``route`` is the route template (``/v1/predict``), or ``unmatched`` for unknown paths
so that scanners cannot blow up the label cardinality.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["MetricsMiddleware", "ServeMetrics"]

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServeMetrics:
    """The metric objects of one app, registered on a private ``CollectorRegistry``.

    Attributes
    ----------
    registry : prometheus_client.CollectorRegistry
        The registry ``/metrics`` renders.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "iomt_ids_http_requests",
            "HTTP requests answered.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "iomt_ids_http_request_duration_seconds",
            "Time from request start to the end of the response.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "iomt_ids_http_errors",
            "Requests answered with a 4xx or 5xx status, by error code.",
            ["route", "code"],
            registry=self.registry,
        )
        self.rows_scored = Counter("iomt_ids_rows_scored", "Feature rows scored.", registry=self.registry)
        self.model_info = Gauge(
            "iomt_ids_model_info",
            "The loaded model (value is always 1).",
            ["name", "version", "task", "release"],
            registry=self.registry,
        )


class MetricsMiddleware:
    """Pure ASGI middleware that counts and times every HTTP request.

    Parameters
    ----------
    app : ASGI app
        The wrapped application.
    metrics : ServeMetrics
        Where to record.
    """

    def __init__(self, app: ASGIApp, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            self._record(scope, status, time.perf_counter() - start)

    def _record(self, scope: Scope, status: int, elapsed: float) -> None:
        route: Any = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        m = self.metrics
        method = scope.get("method", "")
        if method not in _METHODS:
            method = "other"
        m.requests.labels(route=path, method=method, status=str(status)).inc()
        m.latency.labels(route=path).observe(elapsed)
        if status >= 400:
            state = scope.get("state") or {}
            code = state.get("error_code") if isinstance(state, dict) else None
            m.errors.labels(route=path, code=code or str(status)).inc()
