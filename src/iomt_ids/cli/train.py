"""``iomt-ids train``, ``evaluate``, ``predict`` and ``reproduce``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iomt_ids.cli import app
from iomt_ids.cli.options import FEATURE_SETS, PROTOCOLS, ModelName, Preset, Task
from iomt_ids.cli.parsing import (
    check_choice,
    check_data_folder,
    check_device,
    check_exists,
    check_folder_output,
    check_run_dir,
    parse_list,
)

# Each command checks its arguments (paths, choices) before it imports torch, polars
# or matplotlib: a typo is answered at once, not after seconds of imports.


@app.command("train")
def train(
    data: Annotated[Path, typer.Option("--data", help="Dataset folder (train/ and test/ below it).")],
    task: Annotated[Task, typer.Option("--task", help="2, 6 or 19 classes.")],
    model: Annotated[ModelName, typer.Option("--model", help="Architecture.")],
    out: Annotated[Path, typer.Option("--out", help="Run folder: bundle, metrics.json, report.md, plots.")],
    preset: Annotated[Preset, typer.Option("--preset", help="Training recipe.")] = Preset.paper,
    epochs: Annotated[
        int | None, typer.Option("--epochs", min=1, help="Override the preset's max epochs.")
    ] = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Override the preset's batch size.")
    ] = None,
    lr: Annotated[
        float | None, typer.Option("--lr", min=0.0, help="Override the preset's learning rate.")
    ] = None,
    feature_set: Annotated[
        str, typer.Option("--feature-set", help="paper (all columns) or robust (see 'iomt-ids audit').")
    ] = "paper",
    protocol: Annotated[
        str,
        typer.Option("--protocol", help="shipped (the release's train/test), capture or random split."),
    ] = "shipped",
    seed: Annotated[int, typer.Option("--seed", help="Seed for weights, shuffling and split.")] = 0,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    torch_threads: Annotated[
        int,
        typer.Option(
            "--torch-threads", min=0, help="CPU threads for training (0: torch's default, all cores)."
        ),
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
) -> None:
    """Train one model on one task and write its bundle and evaluation."""
    check_data_folder(data)
    check_folder_output(out, "--out")
    check_choice(feature_set, "feature_set", FEATURE_SETS)
    check_choice(protocol, "protocol", PROTOCOLS)
    check_device(device)
    from iomt_ids.workflows.train import RunConfig, train_run

    cfg = RunConfig(
        data=data, task=int(task.value), model=model.value, out=out, preset=preset.value,
        epochs=epochs, batch_size=batch_size, lr=lr or None, seed=seed, device=device, progress=not quiet,
        feature_set=feature_set, protocol=protocol,
    )  # fmt: skip
    if torch_threads:
        import torch

        # on a shared or busy host fewer threads than cores can be several times faster
        torch.set_num_threads(torch_threads)
    m = train_run(cfg)
    typer.echo(
        f"{model.value} {task.value}-class: accuracy {m['accuracy']:.4f}  weighted-F1 {m['weighted_f1']:.4f}  "
        f"macro-F1 {m['macro_f1']:.4f}  ({m['epochs']} epochs) -> {out}"
    )


@app.command("evaluate")
def evaluate(
    model: Annotated[Path, typer.Option("--model", help="RUN_DIR written by 'iomt-ids train'.")],
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="A folder of *.pcap.csv, a dataset folder (uses its test/), or one labelled CSV file.",
        ),
    ],
    out: Annotated[Path, typer.Option("--out", help="Where metrics.json and plots go.")],
) -> None:
    """Evaluate a trained model on labelled CSV files.

    Duplicate rows and rows the model was trained on (recorded in its bundle) are
    dropped first, as 'iomt-ids train' drops them from its test split.
    """
    check_run_dir(model)
    check_exists(data, "--data")
    check_folder_output(out, "--out")
    from iomt_ids.workflows.evaluate import evaluate_bundle

    m = evaluate_bundle(model, data, out)
    dropped = m["duplicates_dropped"]
    cross = dropped["cross_split"]
    seen = "rows seen in training not checked" if cross is None else f"{cross} rows seen in training dropped"
    typer.echo(
        f"accuracy {m['accuracy']:.4f}  weighted-F1 {m['weighted_f1']:.4f}  macro-F1 {m['macro_f1']:.4f}  "
        f"on {m['rows_test']} rows ({dropped['test']} duplicates dropped; {seen}) -> {out}"
    )


@app.command("predict")
def predict(
    model: Annotated[Path, typer.Option("--model", help="RUN_DIR written by 'iomt-ids train'.")],
    input: Annotated[
        Path, typer.Option("--input", help="CSV of feature rows (the model's release columns).")
    ],
    output: Annotated[Path, typer.Option("--output", help="CSV of predicted class and probabilities.")],
    backend: Annotated[
        str,
        typer.Option("--backend", help="auto (ONNX Runtime when RUN_DIR/model.onnx exists), torch or onnx."),
    ] = "auto",
) -> None:
    """Score a CSV of feature rows (the output's folder must exist)."""
    from iomt_ids.scoring import BACKENDS, check_input_csv, check_output_csv, predict_csv

    check_choice(backend, "--backend", BACKENDS)
    check_run_dir(model)
    check_input_csv(input)
    check_output_csv(output)
    n = predict_csv(model, input, output, backend=backend)
    if n == 0:
        typer.secho(
            f"warning: {input} has a header but no data rows: scored 0 rows; {output} holds only the header.",
            err=True,
            fg="yellow",
        )
    typer.echo(f"scored {n} rows -> {output}")


@app.command("reproduce")
def reproduce(
    data: Annotated[Path, typer.Option("--data", help="Dataset folder (train/ and test/ below it).")],
    out: Annotated[Path, typer.Option("--out", help="Folder for every run and the comparison report.")],
    models: Annotated[
        str, typer.Option("--models", help="Comma-separated model names.")
    ] = "dnn,lstm_dnn,gru_dnn",
    tasks: Annotated[str, typer.Option("--tasks", help="Comma-separated tasks.")] = "2,6,19",
    preset: Annotated[Preset, typer.Option("--preset")] = Preset.paper,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1)] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    device: Annotated[str, typer.Option("--device")] = "auto",
    quiet: Annotated[bool, typer.Option("--quiet")] = False,
) -> None:
    """Train and evaluate every task x model; write one comparison report."""
    task_list = [int(t) for t in parse_list(tasks, "--tasks", {"2", "6", "19"})]
    model_list = parse_list(models, "--models", {m.value for m in ModelName})
    check_data_folder(data)
    check_folder_output(out, "--out")
    check_device(device)
    from iomt_ids.workflows.reproduce import reproduce as run

    rows = run(
        data, out, tasks=task_list, models=model_list, preset=preset.value,
        epochs=epochs, seed=seed, device=device, progress=not quiet,
    )  # fmt: skip
    for r in rows:
        typer.echo(
            f"{r['task']:>2}-class {r['model']:<9} accuracy {r['accuracy']:.4f}  weighted-F1 {r['weighted_f1']:.4f}  "
            f"macro-F1 {r['macro_f1']:.4f}"
        )
    typer.echo(f"comparison -> {out / 'comparison.md'}")
