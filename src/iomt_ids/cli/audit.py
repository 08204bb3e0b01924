"""``iomt-ids audit``: features that identify the capture or the window size rather than the traffic."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iomt_ids.cli import app


@app.command("audit")
def audit(
    data: Annotated[Path, typer.Option("--data", help="Dataset folder (train/ and test/ below it).")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for audit.md and audit.json (optional).")
    ] = None,
) -> None:
    """Report leaky, redundant and constant columns, with evidence measured on the data."""
    from iomt_ids.evaluation.audit import audit_dataset, format_summary

    result = audit_dataset(data, out)
    typer.echo(format_summary(result))
    if out is not None:
        typer.echo(f"report -> {out / 'audit.md'}")
