"""``iomt-ids demo``: the whole system on the embedded lab traffic (no download, no root)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iomt_ids.cli import app
from iomt_ids.cli.options import ModelName, Preset, Task


@app.command("demo")
def demo(
    out: Annotated[Path, typer.Option("--out", help="Where the model, report and plots go.")] = Path(
        "runs/demo"
    ),
    task: Annotated[Task, typer.Option("--task")] = Task.six,
    model: Annotated[ModelName, typer.Option("--model")] = ModelName.gru_dnn,
    preset: Annotated[Preset, typer.Option("--preset")] = Preset.fast,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1)] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    quiet: Annotated[bool, typer.Option("--quiet")] = False,
) -> None:
    """Train on lab run 1, evaluate on lab run 2, write the report with plots."""
    from iomt_ids.demo import DemoConfig, run_demo

    m = run_demo(DemoConfig(out=out, task=int(task.value), model=model.value, preset=preset.value, epochs=epochs,
                            seed=seed, progress=not quiet))  # fmt: skip
    typer.echo(
        f"demo ({m['model']}, {m['task']} classes, trained on lab run 1, tested on lab run 2): "
        f"accuracy {m['accuracy']:.4f}  weighted-F1 {m['weighted_f1']:.4f}  macro-F1 {m['macro_f1']:.4f}"
    )
    for d in m.get("detection", []):
        typer.echo(
            f"detect {d['source'].rsplit('/', 1)[-1]}: {d['packets']} packets, {d['windows']} windows, "
            f"{d['alerts_emitted']} alerts {d['categories']}"
        )
    typer.echo(f"report -> {out / 'model' / 'report.md'}; alerts -> {out / 'alerts.jsonl'}")
