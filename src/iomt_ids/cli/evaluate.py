"""``iomt-ids evaluate``: a trained bundle on labelled rows it has not seen."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iomt_ids.cli import app
from iomt_ids.cli.options import RunDirOpt, ThreadsOpt
from iomt_ids.cli.parsing import check_exists, check_folder_output, check_run_dir, use_threads


@app.command("evaluate")
def evaluate(
    model: RunDirOpt,
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="A folder of *.pcap.csv, a dataset folder (uses its test/), or one labelled CSV file.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Where metrics.json and plots go.")],
    threads: ThreadsOpt = 0,
) -> None:
    """Evaluate a trained model on labelled CSV files.

    Duplicate rows and rows the model was trained on (recorded in its bundle) are
    dropped first, as 'iomt-ids train' drops them from its test split.
    """
    check_run_dir(model)
    check_exists(data, "--data")
    check_folder_output(out, "--out")
    use_threads(threads)
    from iomt_ids.workflows.evaluate import evaluate_bundle

    m = evaluate_bundle(model, data, out)
    dropped = m["duplicates_dropped"]
    cross = dropped["cross_split"]
    seen = "rows seen in training not checked" if cross is None else f"{cross} rows seen in training dropped"
    typer.echo(
        f"accuracy {m['accuracy']:.4f}  weighted-F1 {m['weighted_f1']:.4f}  macro-F1 {m['macro_f1']:.4f}  "
        f"on {m['rows_test']} rows ({dropped['test']} duplicates dropped; {seen}) -> {out}"
    )
