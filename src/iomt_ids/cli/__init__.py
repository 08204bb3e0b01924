"""The ``iomt-ids`` command line: one root Typer app, one module per command group.

Each command module stays thin: it parses options, builds a config, calls the
library and sets the exit code. Library errors (:class:`IomtIdsError`) are printed
as one clear line and exit with status 2, never as a traceback.
"""

from __future__ import annotations

import logging
from typing import Any

import typer
from typer.core import TyperGroup

from iomt_ids.exceptions import IomtIdsError


class _Group(TyperGroup):
    """Root group: a library error becomes one red line on stderr and exit status 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except IomtIdsError as exc:
            typer.secho(f"error: {exc}", err=True, fg="red")
            raise typer.Exit(2) from None


app = typer.Typer(
    name="iomt-ids",
    cls=_Group,
    help="Intrusion detection for IoMT networks (CICIoMT2024): train, evaluate, extract, detect, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    # Each module adds its commands to ``app`` (imported here so that importing
    # iomt_ids.cli has no other side effect).
    from iomt_ids.cli import commands  # noqa: F401


def main() -> None:
    """Console entry point."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    _register()
    app()
