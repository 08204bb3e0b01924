"""A live dashboard: alert rate, categories, sources, latest alerts and the model card.

One HTML page at ``/`` (no API key needed: it holds no data) draws inline SVG charts
with a small script served from the package (``/static/dashboard.js``; no CDN, works
offline). The script polls ``GET /api/dashboard`` every 2 s; that endpoint needs the
``X-API-Key`` header when the app has a key (the page asks for it once and keeps it in
``sessionStorage``, or takes it from the URL fragment ``#key=...``, which browsers never
send to the server).

:class:`AlertFeed` reads the JSON-lines alert file that ``iomt-ids detect --alerts FILE``
appends to, incrementally by byte offset: each poll parses only the complete lines
added since the last one. ``stats`` events are not alerts; the latest one's warnings
are shown in a banner. A malformed line is counted, never raised.

Mounted by :func:`iomt_ids.serving.create_app` (``iomt-ids serve``: model card and
scoring traffic, plus alerts with ``--alerts``) and by :func:`create_dashboard_app`
(``iomt-ids dashboard``: alerts and model card only).
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections import Counter, deque
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from iomt_ids.exceptions import DataError
from iomt_ids.serving.deps import ApiKeyDep
from iomt_ids.serving.errors import install_error_handlers
from iomt_ids.serving.settings import ServeSettings

__all__ = [
    "DASHBOARD_PATHS",
    "AlertFeed",
    "DashboardSource",
    "build_dashboard_router",
    "card_from_bundle",
    "card_from_dir",
    "create_dashboard_app",
]

#: Routes of the dashboard; the service's traffic figures leave them out.
DASHBOARD_PATHS = frozenset({"/", "/api/dashboard", "/static/dashboard.js", "/static/dashboard.css"})
_STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css", "dashboard.html": "text/html"}
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_MAX_KEYS = 10_000  # distinct sources/categories kept; more are folded into "(other)"
_MAX_MINUTES = 24 * 60  # per-minute buckets kept
_RATE_MINUTES = 60  # minutes the rate chart shows
_MAX_LINE = 1024 * 1024  # a longer line is malformed
_CHUNK = 1024 * 1024


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by ``None`` (JSON answers refuse them)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _count(counter: Counter[str], key: str, n: int) -> None:
    if key not in counter and len(counter) >= _MAX_KEYS:
        key = "(other)"
    counter[key] += n


class AlertFeed:
    """Incremental reader and aggregator of an EVE JSON-lines alert file.

    Parameters
    ----------
    path : str or Path
        The file ``iomt-ids detect --alerts`` writes. It need not exist yet.
    latest : int, default 25
        How many of the newest alerts :meth:`snapshot` lists.
    max_bytes_per_poll : int, default 16 MiB
        Most bytes one :meth:`poll` reads, so that a large backlog is caught up over
        several polls instead of blocking one request.

    Notes
    -----
    Each alert line adds its ``alert.count`` (1 when absent; folded summary lines carry
    more) to the total, its category, its ``src_ip`` and the minute of its timestamp.
    A line that is not a JSON object, an alert without an ``alert`` object, a bad
    ``count`` or timestamp is counted in ``malformed``. When the file shrinks or is
    replaced (another inode), everything is reset and read again from the start.
    Thread-safe: polls and snapshots take a lock.

    Examples
    --------
    >>> feed = AlertFeed("alerts.jsonl")  # doctest: +SKIP
    >>> feed.poll(); feed.snapshot()["total_alerts"]  # doctest: +SKIP
    """

    def __init__(self, path: str | Path, latest: int = 25, max_bytes_per_poll: int = 16 * _CHUNK) -> None:
        self.path = Path(path)
        self.latest_n = int(latest)
        self.max_bytes_per_poll = int(max_bytes_per_poll)
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self.offset = 0
        self._inode: int | None = None
        self._partial = b""
        self._skipping = False
        self.lines = 0
        self.alert_lines = 0
        self.total_alerts = 0
        self.malformed = 0
        self.stats_lines = 0
        self.other_events = 0
        self.categories: Counter[str] = Counter()
        self.sources: Counter[str] = Counter()
        self.per_minute: Counter[datetime] = Counter()
        self.latest: deque[dict[str, Any]] = deque(maxlen=max(1, self.latest_n))
        self.last_stats: dict[str, Any] | None = None
        self.last_alert: dict[str, Any] | None = None
        self.behind = False

    # -- reading ---------------------------------------------------------------
    def poll(self) -> int:
        """Read and aggregate the complete lines appended since the last poll.

        Returns
        -------
        int
            The number of lines read (complete lines only; a partly written last line
            waits for its newline).
        """
        with self._lock:
            return self._poll()

    def _poll(self) -> int:
        try:
            st = os.stat(self.path)
        except OSError:
            return 0
        if (self._inode is not None and st.st_ino != self._inode) or st.st_size < self.offset:
            self._reset()
        self._inode = st.st_ino
        if st.st_size == self.offset:
            self.behind = False
            return 0
        n = 0
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                budget = self.max_bytes_per_poll
                while budget > 0:
                    chunk = fh.read(min(_CHUNK, budget))
                    if not chunk:
                        break
                    budget -= len(chunk)
                    self.offset += len(chunk)
                    n += self._feed(chunk)
                self.behind = self.offset < os.fstat(fh.fileno()).st_size
        except OSError:
            return n
        return n

    def _feed(self, chunk: bytes) -> int:
        data = self._partial + chunk
        parts = data.split(b"\n")
        self._partial = parts.pop()
        n = 0
        for raw in parts:
            if self._skipping:  # the tail of an over-long line
                self._skipping = False
                continue
            if raw.strip():
                n += 1
                self._line(raw)
        if len(self._partial) > _MAX_LINE:
            self._partial = b""
            self._skipping = True
            self.lines += 1
            self.malformed += 1
        return n

    def _line(self, raw: bytes) -> None:
        self.lines += 1
        try:
            event = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError):
            self.malformed += 1
            return
        if not isinstance(event, dict):
            self.malformed += 1
            return
        kind = event.get("event_type")
        if kind == "stats":
            self.stats_lines += 1
            stats = event.get("stats")
            self.last_stats = {
                "timestamp": event.get("timestamp"),
                **(stats if isinstance(stats, dict) else {}),
            }
            return
        if kind != "alert":
            self.other_events += 1
            return
        alert = event.get("alert")
        count = alert.get("count", 1) if isinstance(alert, dict) else None
        try:
            when = datetime.fromisoformat(str(event["timestamp"]))
        except (KeyError, ValueError):
            when = None
        if (
            not isinstance(alert, dict)
            or isinstance(count, bool)
            or not isinstance(count, int)
            or count < 1
            or when is None
        ):
            self.malformed += 1
            return
        when = when.astimezone(UTC) if when.tzinfo is not None else when.replace(tzinfo=UTC)
        self.alert_lines += 1
        self.total_alerts += count
        category = str(alert.get("category") or "?")
        source = str(event.get("src_ip") or "?")
        _count(self.categories, category, count)
        _count(self.sources, source, count)
        minute = when.replace(second=0, microsecond=0)
        self.per_minute[minute] += count
        if len(self.per_minute) > _MAX_MINUTES:
            del self.per_minute[min(self.per_minute)]
        meta = alert.get("metadata") if isinstance(alert.get("metadata"), dict) else {}
        explanation = meta.get("explanation") if isinstance(meta, dict) else None
        item = {
            "timestamp": str(event.get("timestamp")),
            "src_ip": source,
            "src_port": event.get("src_port"),
            "dest_ip": str(event.get("dest_ip") or "?"),
            "dest_port": event.get("dest_port"),
            "proto": event.get("proto"),
            "category": category,
            "severity": alert.get("severity"),
            "score": alert.get("score"),
            "count": count,
            "summary": bool(alert.get("summary", False)),
            "signature": alert.get("signature"),
            "explanation": [str(x) for x in explanation] if isinstance(explanation, list) else [],
        }
        self.latest.append(item)
        self.last_alert = {
            "model": alert.get("model"),
            "model_version": alert.get("model_version"),
            "task": (meta.get("task") or [None])[0] if isinstance(meta.get("task"), list) else None,
            "site": (meta.get("site") or [None])[0] if isinstance(meta.get("site"), list) else None,
        }

    # -- answering ---------------------------------------------------------------
    def rate(self, minutes: int = _RATE_MINUTES) -> list[dict[str, Any]]:
        """Alerts per minute (by the alerts' own timestamps) for the last ``minutes`` minutes seen."""
        if not self.per_minute:
            return []
        end = max(self.per_minute)
        start = max(min(self.per_minute), end - timedelta(minutes=minutes - 1))
        out = []
        t = start
        while t <= end:
            out.append({"minute": t.isoformat(timespec="minutes"), "alerts": self.per_minute.get(t, 0)})
            t += timedelta(minutes=1)
        return out

    def snapshot(self, top: int = 10) -> dict[str, Any]:
        """The aggregates as a JSON-ready dict (what ``/api/dashboard`` returns under ``alerts``)."""
        with self._lock:
            stats = self.last_stats or {}
            detect = stats.get("detect") if isinstance(stats.get("detect"), dict) else {}
            warnings = detect.get("warnings") if isinstance(detect.get("warnings"), list) else []
            return _finite(
                {
                    "file": str(self.path),
                    "exists": self.path.exists(),
                    "bytes_read": self.offset,
                    "behind": self.behind,
                    "lines": self.lines,
                    "alert_lines": self.alert_lines,
                    "total_alerts": self.total_alerts,
                    "malformed": self.malformed,
                    "stats_lines": self.stats_lines,
                    "categories": [[k, v] for k, v in self.categories.most_common(top)],
                    "sources": [[k, v] for k, v in self.sources.most_common(top)],
                    "n_categories": len(self.categories),
                    "n_sources": len(self.sources),
                    "rate": self.rate(),
                    "latest": list(reversed(self.latest)),
                    "last_alert": self.last_alert,
                    "stats": None
                    if self.last_stats is None
                    else {
                        "timestamp": stats.get("timestamp"),
                        "model_version": stats.get("model_version"),
                        "site_adapted": detect.get("site_adapted"),
                        "alerts_emitted": detect.get("alerts_emitted"),
                        "windows": detect.get("windows"),
                        "warnings": [str(w) for w in warnings],
                    },
                }
            )


# -- model cards --------------------------------------------------------------------
def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read it as JSON ({exc}).") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object; got {type(data).__name__}.")
    return data


def card_from_dir(directory: str | Path) -> dict[str, Any]:
    """The model card of a RUN_DIR (``bundle.json``) or a SITE_DIR (``site.json``), read without loading weights.

    Parameters
    ----------
    directory : str or Path
        A folder written by ``iomt-ids train`` or ``iomt-ids adapt``.

    Returns
    -------
    dict
        ``name, version, task, classes, release, metrics`` and, for a site bundle,
        ``site``: calibration seconds, per-stream threshold, α (target and bound), the
        false-alarm bound per hour, and ``validation_recall``. On a read error the card
        holds ``error`` instead of failing the page.
    """
    directory = Path(directory)
    try:
        if (directory / "site.json").is_file():
            meta = _read_json(directory / "site.json")
            base = meta.get("base") or {}
            name = None
            clf = directory / str((meta.get("classifier") or {}).get("dir", "classifier")) / "bundle.json"
            if clf.is_file():
                name = _read_json(clf).get("model_name")
            streams = {
                str(w): {
                    k: s.get(k)
                    for k in (
                        "threshold",
                        "alpha_target",
                        "alpha_bound",
                        "false_alarms_per_hour_bound",
                        "windows",
                        "windows_per_hour",
                    )
                }
                for w, s in (meta.get("streams") or {}).items()
                if isinstance(s, dict)
            }
            return _finite(
                {
                    "source": str(directory),
                    "kind": "site",
                    "name": name,
                    "version": meta.get("version"),
                    "base_version": base.get("version"),
                    "task": base.get("task"),
                    "classes": base.get("classes"),
                    "metrics": base.get("metrics") or {},
                    "site": {
                        "calibration_seconds": (meta.get("calibration") or {}).get("seconds"),
                        "false_alarms_per_hour_target": meta.get("false_alarms_per_hour_target"),
                        "streams": streams,
                        "validation_recall": meta.get("validation_recall") or {},
                    },
                }
            )
        meta = _read_json(directory / "bundle.json")
        return _finite(
            {
                "source": str(directory),
                "kind": "bundle",
                "name": meta.get("model_name"),
                "version": meta.get("version"),
                "task": meta.get("task"),
                "classes": meta.get("classes"),
                "release": meta.get("release"),
                "metrics": meta.get("metrics") or {},
            }
        )
    except (OSError, ValueError, AttributeError, TypeError) as exc:
        return {"source": str(directory), "kind": "error", "error": f"cannot read the model card: {exc}"}


def card_from_bundle(bundle: Any) -> dict[str, Any]:
    """The model card of a loaded bundle (what ``iomt-ids serve`` holds)."""
    meta = getattr(bundle, "meta", {}) or {}
    return _finite(
        {
            "kind": "bundle",
            "name": str(bundle.model_name),
            "version": str(bundle.version),
            "task": int(bundle.task),
            "classes": [str(c) for c in bundle.classes],
            "release": str(getattr(bundle, "release", "")),
            "metrics": meta.get("metrics") if isinstance(meta.get("metrics"), dict) else {},
        }
    )


# -- the page and its data ---------------------------------------------------------------
class DashboardSource:
    """What one dashboard shows: an alert feed, a model card, the service's metrics.

    Parameters
    ----------
    feed : AlertFeed, optional
        The alert file; ``None`` hides the alert panels.
    card : dict, optional
        The model card (see :func:`card_from_dir`, :func:`card_from_bundle`).
    metrics : ServeMetrics, optional
        The scoring service's metrics; ``None`` hides the traffic panel.
    """

    def __init__(
        self, feed: AlertFeed | None = None, card: dict[str, Any] | None = None, metrics: Any = None
    ) -> None:
        self.feed = feed
        self.card = card
        self.metrics = metrics

    def traffic(self) -> dict[str, Any] | None:
        """Requests, rows scored and errors of the scoring routes (dashboard requests left out)."""
        if self.metrics is None:
            return None
        requests = predict = errors = 0
        by_status: Counter[str] = Counter()
        for metric in self.metrics.requests.collect():
            for s in metric.samples:
                if not s.name.endswith("_total") or s.labels.get("route") in DASHBOARD_PATHS:
                    continue
                requests += int(s.value)
                by_status[s.labels.get("status", "?")] += int(s.value)
                if s.labels.get("route") == "/v1/predict":
                    predict += int(s.value)
        for metric in self.metrics.errors.collect():
            for s in metric.samples:
                if s.name.endswith("_total") and s.labels.get("route") not in DASHBOARD_PATHS:
                    errors += int(s.value)
        rows = 0
        for metric in self.metrics.rows_scored.collect():
            rows += int(sum(s.value for s in metric.samples if s.name.endswith("_total")))
        return {
            "requests": requests,
            "predict_requests": predict,
            "rows_scored": rows,
            "errors": errors,
            "by_status": dict(sorted(by_status.items())),
        }

    def payload(self) -> dict[str, Any]:
        """The JSON answer of ``/api/dashboard``."""
        alerts = None
        if self.feed is not None:
            self.feed.poll()
            alerts = self.feed.snapshot()
        return {
            "generated": datetime.now().astimezone().isoformat(timespec="seconds"),
            "card": self.card,
            "alerts": alerts,
            "traffic": self.traffic(),
        }


def _asset(name: str) -> bytes:
    return (resources.files("iomt_ids.serving") / "static" / name).read_bytes()


def build_dashboard_router() -> APIRouter:
    """The page, its two assets and ``GET /api/dashboard``; the source is ``app.state.dashboard``."""
    router = APIRouter(include_in_schema=False)
    headers = {
        "Content-Security-Policy": _CSP,
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }

    @router.get("/")
    async def page() -> Response:
        return Response(_asset("dashboard.html"), media_type="text/html; charset=utf-8", headers=headers)

    @router.get("/static/dashboard.js")
    async def script() -> Response:
        return Response(_asset("dashboard.js"), media_type="text/javascript; charset=utf-8", headers=headers)

    @router.get("/static/dashboard.css")
    async def style() -> Response:
        return Response(_asset("dashboard.css"), media_type="text/css; charset=utf-8", headers=headers)

    @router.get("/api/dashboard", dependencies=[ApiKeyDep])
    def data(request: Request) -> Response:  # plain def: file reads run in the thread pool
        source: DashboardSource = request.app.state.dashboard
        body = json.dumps(source.payload(), separators=(",", ":"), allow_nan=False)
        return Response(body, media_type="application/json", headers={"Cache-Control": "no-store"})

    return router


def create_dashboard_app(
    alerts: str | Path | None,
    model: str | Path | None = None,
    settings: ServeSettings | None = None,
) -> FastAPI:
    """The stand-alone dashboard of ``iomt-ids dashboard`` (no scoring routes, no API docs).

    Parameters
    ----------
    alerts : str or Path, optional
        The JSON-lines alert file to follow.
    model : str or Path, optional
        A RUN_DIR or SITE_DIR for the model card. Without it, the card says what the
        latest alert line names (model, version, task, site).
    settings : ServeSettings, optional
        Only ``api_key`` is used: when set, ``/api/dashboard`` needs it.

    Returns
    -------
    fastapi.FastAPI
        The app; serve it with ``uvicorn.run(app)``.
    """
    settings = settings if settings is not None else ServeSettings()
    app = FastAPI(title="iomt-ids dashboard", docs_url=None, redoc_url=None, openapi_url=None, debug=False)
    app.state.settings = settings
    app.state.dashboard = DashboardSource(
        feed=AlertFeed(alerts) if alerts is not None else None,
        card=card_from_dir(model) if model is not None else None,
    )
    install_error_handlers(app)
    app.include_router(build_dashboard_router())
    return app
