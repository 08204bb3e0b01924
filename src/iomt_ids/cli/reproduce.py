"""``iomt-ids reproduce``: every task x model of the papers under their recipe, one comparison report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iomt_ids.cli import app
from iomt_ids.cli.options import (
    DataOpt,
    DeviceOpt,
    EpochsOpt,
    ModelName,
    Preset,
    PresetOpt,
    QuietOpt,
    SeedOpt,
    ThreadsOpt,
)
from iomt_ids.cli.parsing import check_data_folder, check_device, check_folder_output, parse_list, use_threads


@app.command("reproduce")
def reproduce(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder for every run and the comparison report.")],
    models: Annotated[
        str, typer.Option("--models", help="Comma-separated model names.")
    ] = "dnn,lstm_dnn,gru_dnn",
    tasks: Annotated[str, typer.Option("--tasks", help="Comma-separated tasks.")] = "2,6,19",
    preset: PresetOpt = Preset.paper,
    epochs: EpochsOpt = None,
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Train and evaluate every task x model under the papers' recipe; write one comparison report."""
    task_list = [int(t) for t in parse_list(tasks, "--tasks", {"2", "6", "19"})]
    model_list = parse_list(models, "--models", {m.value for m in ModelName})
    check_data_folder(data)
    check_folder_output(out, "--out")
    check_device(device)
    use_threads(threads)
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
