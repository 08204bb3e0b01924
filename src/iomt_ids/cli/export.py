"""``iomt-ids export``: write a trained model in a deployment format."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from iomt_ids.cli import app
from iomt_ids.cli.parsing import check_folder_output, check_run_dir


class ExportFormat(StrEnum):
    onnx = "onnx"


@app.command("export")
def export(
    model: Annotated[Path, typer.Option("--model", help="RUN_DIR written by 'iomt-ids train'.")],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="File to write (default: RUN_DIR/model.onnx, which 'predict' then uses)."),
    ] = None,
    format: Annotated[ExportFormat, typer.Option("--format", help="Export format.")] = ExportFormat.onnx,
    no_optimize: Annotated[
        bool,
        typer.Option(
            "--no-optimize", help="Export the network as trained (no single-step rewrite; deep models)."
        ),
    ] = False,
    check: Annotated[
        bool, typer.Option("--check/--no-check", help="Compare with the bundle on random raw rows.")
    ] = True,
) -> None:
    """Export a model (deep or tree) with its preprocessing folded in (input 'features', output 'probabilities')."""
    from iomt_ids.exceptions import ConfigError

    check_run_dir(model)
    if out is not None:
        if out.is_dir():
            raise ConfigError(f"--out {out}: is a folder; expected the name of the file to write.")
        if out.parent.exists() and not out.parent.is_dir():
            raise ConfigError(f"--out {out}: {out.parent} is a file, not a folder.")
        check_folder_output(out.parent, "--out")
    from iomt_ids.export.onnx import ONNX_FILE, export_onnx

    target = out if out is not None else model / ONNX_FILE
    path = export_onnx(model, target, optimize=not no_optimize)
    typer.echo(f"exported {format.value} -> {path}")
    if check:
        from iomt_ids.export.onnx import onnxruntime_available, parity, random_raw_rows

        if onnxruntime_available():
            diff = parity(model, path, random_raw_rows(model, 256))
            typer.echo(f"parity with the bundle on 256 rows: max abs difference {diff:.2e}")
        else:
            typer.echo("onnxruntime is not installed; parity not checked.")
