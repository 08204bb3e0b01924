"""``iomt-ids dashboard``: a live web page of an alert file and the model card."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iomt_ids.cli import app
from iomt_ids.cli.parsing import missing_extra, warn_if_open
from iomt_ids.exceptions import ConfigError


@app.command("dashboard")
def dashboard(
    alerts: Annotated[
        Path,
        typer.Option(
            "--alerts",
            dir_okay=False,
            help="JSON-lines alert file written by 'iomt-ids detect --alerts FILE'; followed live "
            "(it need not exist yet).",
        ),
    ],
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            exists=True,
            file_okay=False,
            dir_okay=True,
            readable=True,
            help="RUN_DIR (bundle.json) or SITE_DIR (site.json) for the model card. Default: what the "
            "alert lines name.",
        ),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Interface to listen on. Keep loopback unless an API key is set.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8090,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            envvar="IOMT_IDS_API_KEY",
            show_envvar=True,
            help="Require this key (X-API-Key header) for the page's data, /api/dashboard. The page asks "
            "for it once, or open /#key=KEY.",
        ),
    ] = None,
) -> None:
    """Serve a live dashboard at /: alert rate, categories, sources, latest alerts and the model card.

    The page polls /api/dashboard every 2 s; the alert file is read incrementally, so it can be left
    running next to 'iomt-ids detect --alerts FILE'.
    """
    try:
        import uvicorn

        from iomt_ids.serving import ServeSettings
        from iomt_ids.serving.dashboard import create_dashboard_app
    except ImportError as exc:
        raise missing_extra(exc, "the dashboard") from None
    if model is not None and not ((model / "bundle.json").is_file() or (model / "site.json").is_file()):
        raise ConfigError(f"--model {model}: no bundle.json or site.json; expected a RUN_DIR or SITE_DIR.")
    settings = ServeSettings(api_key=api_key)
    warn_if_open(host, settings.api_key, "sees the alerts")
    web_app = create_dashboard_app(alerts, model=model, settings=settings)
    typer.echo(f"dashboard of {alerts} on http://{host}:{port}/ (auth {'on' if settings.api_key else 'off'})")
    uvicorn.run(web_app, host=host, port=port, log_level="warning", server_header=False, access_log=False)
