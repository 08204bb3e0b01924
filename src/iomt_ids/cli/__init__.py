"""The ``iomt-ids`` command line: one root Typer app, one module per command group.

Each command module stays thin: it parses options, builds a config, calls the
library and sets the exit code. Library errors (:class:`IomtIdsError`) are printed
as one clear line and exit with status 2, never as a traceback.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import typer
from typer.core import TyperGroup

from iomt_ids.exceptions import IomtIdsError

# pydantic words a ValueError raised in a validator as "Value error, <message>": the message is enough
_PYDANTIC_PREFIX = re.compile(r"(^|(?<=[:;,(\n])\s*)Value error, ")


def clean_message(text: str) -> str:
    """``text`` without pydantic's "Value error, " before each message it wraps."""
    return _PYDANTIC_PREFIX.sub(lambda m: m.group(0)[: -len("Value error, ")], text)


class _Group(TyperGroup):
    """Root group: a library error becomes one red line on stderr and exit status 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except IomtIdsError as exc:
            typer.secho(f"error: {clean_message(str(exc))}", err=True, fg="red")
            raise typer.Exit(2) from None
        except Exception as exc:
            # a bad option (click's UsageError, or that of the click typer vendors): printed by
            # typer with the usage line, so only its message is cleaned here
            if isinstance(getattr(exc, "message", None), str) and hasattr(exc, "format_message"):
                exc.message = clean_message(exc.message)  # type: ignore[attr-defined]
            raise


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
    from iomt_ids.runtime import prepare_environment

    prepare_environment()  # OpenMP waits passively: set before torch or LightGBM start their thread pools
    _register()
    app()
