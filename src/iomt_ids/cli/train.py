"""``iomt-ids train``: one model on one task, written as a bundle with its evaluation."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iomt_ids.cli import app
from iomt_ids.cli.options import (
    DEFAULT_PRESET,
    FEATURE_SETS,
    PROTOCOLS,
    DataOpt,
    DeviceOpt,
    EpochsOpt,
    FeatureSetOpt,
    ModelName,
    PresetOpt,
    ProtocolOpt,
    QuietOpt,
    SeedOpt,
    Task,
    ThreadsOpt,
)
from iomt_ids.cli.parsing import (
    check_choice,
    check_data_folder,
    check_device,
    check_folder_output,
    use_threads,
)

# Each command checks its arguments (paths, choices) before it imports torch, polars
# or matplotlib: a typo is answered at once, not after seconds of imports.


@app.command("train")
def train(
    data: DataOpt,
    task: Annotated[Task, typer.Option("--task", help="2, 6 or 19 classes.")],
    model: Annotated[
        ModelName, typer.Option("--model", help="Model (see docs/architecture.md: one registry).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Run folder: bundle, metrics.json, report.md, plots.")],
    preset: PresetOpt = DEFAULT_PRESET,
    epochs: EpochsOpt = None,
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", min=1, help="Override the preset's batch size.")
    ] = None,
    lr: Annotated[
        float | None, typer.Option("--lr", min=0.0, help="Override the preset's learning rate.")
    ] = None,
    feature_set: FeatureSetOpt = "paper",
    protocol: ProtocolOpt = "shipped",
    seed: SeedOpt = 0,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Train one model on one task and write its bundle and evaluation."""
    check_data_folder(data)
    check_folder_output(out, "--out")
    check_choice(feature_set, "feature_set", FEATURE_SETS)
    check_choice(protocol, "protocol", PROTOCOLS)
    check_device(device)
    use_threads(threads)
    from iomt_ids.workflows.train import RunConfig, train_run

    cfg = RunConfig(
        data=data, task=int(task.value), model=model.value, out=out, preset=preset.value,
        epochs=epochs, batch_size=batch_size, lr=lr or None, seed=seed, device=device, progress=not quiet,
        feature_set=feature_set, protocol=protocol,
    )  # fmt: skip
    m = train_run(cfg)
    from iomt_ids.models.registry import MODELS

    # trees have no epochs: their summary says how many boosting rounds (LightGBM) or trees were kept
    kind = MODELS[model.value].kind
    if kind == "torch":
        done = f"{m['epochs']} epochs"
    elif kind == "ensemble":
        done = str(m.get("ensemble", {}).get("members", "ensemble"))
    else:
        done = f"{m.get('trees', '?')} {'boosting rounds' if model.value == 'lightgbm' else 'trees'}"
    typer.echo(
        f"{model.value} {task.value}-class: accuracy {m['accuracy']:.4f}  weighted-F1 {m['weighted_f1']:.4f}  "
        f"macro-F1 {m['macro_f1']:.4f}  ({done}) -> {out}"
    )
