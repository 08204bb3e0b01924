"""The root group's error handler: pydantic's "Value error, " prefix never reaches the user."""

from __future__ import annotations

import pydantic
import typer
from typer.testing import CliRunner

from iomt_ids.cli import _Group
from iomt_ids.exceptions import ConfigError


class _Settings(pydantic.BaseModel):
    origin: str

    @pydantic.field_validator("origin")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith("http"):
            raise ValueError(f"{v!r} is not an http(s) origin")
        return v


def _app() -> typer.Typer:
    app = typer.Typer(cls=_Group, pretty_exceptions_enable=False, add_completion=False)

    def _check(value: str) -> str:
        try:
            _Settings(origin=value)
        except pydantic.ValidationError as exc:
            raise typer.BadParameter("; ".join(e["msg"] for e in exc.errors())) from None
        return value

    @app.command("lib")
    def lib(origin: str = "ftp://x") -> None:
        try:
            _Settings(origin=origin)
        except pydantic.ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ConfigError(f"invalid service settings: {problems}.") from None

    @app.command("opt")
    def opt(origin: str = typer.Option("http://ok", callback=_check)) -> None:
        pass

    return app


def test_library_error_drops_the_value_error_prefix() -> None:
    res = CliRunner().invoke(_app(), ["lib"])
    assert res.exit_code == 2
    assert "invalid service settings: origin: 'ftp://x' is not an http(s) origin." in res.output
    assert "Value error" not in res.output


def test_bad_option_drops_the_value_error_prefix() -> None:
    res = CliRunner().invoke(_app(), ["opt", "--origin", "ftp://y"], env={"COLUMNS": "200"})
    assert res.exit_code == 2
    assert "'ftp://y' is not an http(s) origin" in res.output and "Value error" not in res.output
