"""``iomt-ids demo``: the whole system on the embedded lab traffic (no download, no root)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iomt_ids.cli import app
from iomt_ids.cli.options import ModelName, Preset, Task, ThreadsOpt


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
    timeline: Annotated[
        str | None, typer.Option("--timeline", help="Shipped lab timeline to deploy on (default: the first).")
    ] = None,
    threads: ThreadsOpt = 0,
    quiet: Annotated[bool, typer.Option("--quiet")] = False,
) -> None:
    """Train on lab run 1, evaluate on lab run 2, then adapt to an unseen ward and score it as an operator."""
    from iomt_ids.cli.parsing import use_threads

    use_threads(threads)
    from iomt_ids.workflows.demo import DemoConfig, run_demo

    m = run_demo(DemoConfig(out=out, task=int(task.value), model=model.value, preset=preset.value, epochs=epochs,
                            seed=seed, progress=not quiet, timeline=timeline))  # fmt: skip
    typer.echo(
        f"demo ({m['model']}, {m['task']} classes, trained on lab run 1, tested on lab run 2): "
        f"accuracy {m['accuracy']:.4f}  weighted-F1 {m['weighted_f1']:.4f}  macro-F1 {m['macro_f1']:.4f}"
    )
    for d in m.get("detection", []):
        typer.echo(
            f"detect {d['source'].rsplit('/', 1)[-1]}: {d['packets']} packets, {d['windows']} windows, "
            f"{d['alerts_raw']} alerting windows {d['categories']}, {d['alerts_emitted']} alert lines written"
        )
    typer.echo(f"report -> {out / 'model' / 'report.md'}; alerts -> {out / 'alerts.jsonl'}")
    dep = m.get("deployment")
    if dep:
        typer.echo(f"deploy on unseen ward {dep['timeline']} (lab timeline: normal traffic + attacks):")
        for name in ("unadapted", "site"):
            s, d = dep[name]["score"], dep[name]["detect"]
            n = s["attacks"]
            typer.echo(
                f"  {name:<9} false alert lines/hour of normal traffic {s['false_alert_lines_per_hour']:>7g} "
                f"(false alerts/hour {s['false_alerts_per_hour']:g}); attacks detected {s['attacks_detected']}/{n}, "
                f"attributed {s['attacks_attributed']}/{n}, named {s['attacks_named']}/{n}"
                + (
                    f"; {d['novel_windows']:,} of {d['windows']:,} windows unlike the ward"
                    if d["site_adapted"]
                    else ""
                )
            )
        typer.echo(
            f"  site bundle -> {out / 'deploy' / 'site'}; scores -> {out / 'deploy' / 'timeline-score.json'}"
        )
