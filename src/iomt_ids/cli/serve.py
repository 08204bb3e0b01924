"""``iomt-ids serve``: run the HTTP scoring service on one trained model bundle."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from iomt_ids.cli import app
from iomt_ids.cli.parsing import missing_extra, warn_if_open
from iomt_ids.exceptions import ConfigError


class LogLevel(StrEnum):
    """uvicorn log levels."""

    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"
    debug = "debug"


@app.command("serve")
def serve(
    model: Annotated[
        Path,
        typer.Option(
            "--model",
            exists=True,
            file_okay=False,
            dir_okay=True,
            readable=True,
            help="RUN_DIR holding bundle.json.",
        ),
    ],
    host: Annotated[
        str, typer.Option(help="Interface to listen on. Keep loopback unless an API key is set.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8080,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="IOMT_IDS_API_KEY",
            show_envvar=True,
            help="Require this key in the X-API-Key header. Prefer the environment variable: "
            "command lines are visible to other local users.",
        ),
    ] = None,
    max_rows: Annotated[
        int | None, typer.Option(min=1, help="Most rows per request (default 1024, env IOMT_IDS_MAX_ROWS).")
    ] = None,
    max_body_bytes: Annotated[
        int | None,
        typer.Option(
            min=64, help="Most bytes per request body (default 8 MiB, env IOMT_IDS_MAX_BODY_BYTES)."
        ),
    ] = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option("--cors-origin", help="Allow this browser origin (repeatable). Default: CORS off."),
    ] = None,
    threads: Annotated[
        int,
        typer.Option(
            "--threads",
            "--torch-threads",
            min=0,
            help="Model threads per request. 0 (default): automatic, one thread, which lets concurrent "
            "requests use the cores without oversubscribing them; raise it for few, large batches.",
        ),
    ] = 0,
    alerts: Annotated[
        Path | None,
        typer.Option(
            "--alerts",
            dir_okay=False,
            help="Also show this JSON-lines alert file (from 'iomt-ids detect --alerts') on the dashboard "
            "at /, live. It need not exist yet.",
        ),
    ] = None,
    docs: Annotated[
        bool,
        typer.Option(
            "--docs/--no-docs",
            help="Serve /docs, /redoc and /openapi.json (behind the API key when one is set). "
            "Default: on, or env IOMT_IDS_DOCS.",
            show_default=False,
        ),
    ] = True,
    log_level: Annotated[LogLevel, typer.Option(help="uvicorn log level.")] = LogLevel.info,
) -> None:
    """Serve POST /v1/predict, GET /v1/model, GET /healthz, GET /metrics and a dashboard at / with uvicorn.

    The dashboard page at / needs no key; its data (GET /api/dashboard) needs the API key when one is set
    (the page asks for it, or open /#key=KEY).
    """
    try:
        import uvicorn
        from pydantic import ValidationError

        from iomt_ids.serving import ServeSettings, create_app
    except ImportError as exc:
        raise missing_extra(exc, "the scoring service") from None

    from iomt_ids.artifacts import load_bundle

    overrides: dict[str, object] = {}
    if api_key is not None:
        overrides["api_key"] = api_key
    if max_rows is not None:
        overrides["max_rows"] = max_rows
    if max_body_bytes is not None:
        overrides["max_body_bytes"] = max_body_bytes
    if cors_origin:
        overrides["cors_origins"] = list(cors_origin)
    if not docs:
        overrides["docs"] = False
    try:
        settings = ServeSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            + ("" if "api_key" in e["loc"] else f" (got {e.get('input')!r})")  # never echo a secret
            for e in exc.errors()
        )
        raise ConfigError(f"invalid service settings: {problems}.") from None
    from iomt_ids.cli.parsing import use_threads

    use_threads(threads, cap=1)
    bundle = load_bundle(model)
    warn_if_open(host, settings.api_key, "can score rows")
    web_app = create_app(bundle, settings, alerts=alerts)
    typer.echo(
        f"serving {bundle.model_name} {bundle.version} on http://{host}:{port} (auth {'on' if settings.api_key else 'off'})"
    )
    uvicorn.run(
        web_app, host=host, port=port, log_level=log_level.value, server_header=False, access_log=True
    )
