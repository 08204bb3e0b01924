"""``iomt-ids predict``: score a CSV of feature rows with a trained bundle."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iomt_ids.cli import app
from iomt_ids.cli.options import RunDirOpt, ThreadsOpt
from iomt_ids.cli.parsing import check_choice, check_run_dir, use_threads


@app.command("predict")
def predict(
    model: RunDirOpt,
    input: Annotated[
        Path, typer.Option("--input", help="CSV of feature rows (the model's release columns).")
    ],
    output: Annotated[Path, typer.Option("--output", help="CSV of predicted class and probabilities.")],
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            help="auto (trees: compiled kernel; deep models: ONNX Runtime when RUN_DIR/model.onnx exists), "
            "native (the model's own library; alias: torch), compiled (tree models) or onnx.",
        ),
    ] = "auto",
    threads: ThreadsOpt = 0,
) -> None:
    """Score a CSV of feature rows (the output's folder must exist)."""
    from iomt_ids.scoring import BACKENDS, check_input_csv, check_output_csv, predict_csv

    check_choice(backend, "--backend", BACKENDS)
    check_run_dir(model)
    check_input_csv(input)
    check_output_csv(output)
    use_threads(threads)
    n = predict_csv(model, input, output, backend=backend)
    if n == 0:
        typer.secho(
            f"warning: {input} has a header but no data rows: scored 0 rows; {output} holds only the header.",
            err=True,
            fg="yellow",
        )
    typer.echo(f"scored {n} rows -> {output}")
