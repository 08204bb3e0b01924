"""``iomt-ids compare``: every task x model x seed in one table, macro-F1 first."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iomt_ids.cli import app
from iomt_ids.cli.options import DataOpt, DeviceOpt, ThreadsOpt


@app.command("compare")
def compare(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="Folder for per-run results, the table and heat maps.")],
    models: Annotated[
        str,
        typer.Option("--models", help="Comma-separated models; 'model:preset' pins a preset."),
    ] = "dnn,lstm_dnn,gru_dnn,lightgbm,random_forest",
    presets: Annotated[
        str, typer.Option("--presets", help="Presets for the deep models (trees have none).")
    ] = "paper,tuned",
    tasks: Annotated[str, typer.Option("--tasks", help="Comma-separated tasks.")] = "2,6,19",
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Seeds 0..N-1 per combination.")] = 3,
    protocol: Annotated[
        str, typer.Option("--protocol", help="shipped (train/test folders), capture or random.")
    ] = "shipped",
    feature_sets: Annotated[
        str,
        typer.Option("--feature-sets", help="paper (all columns) and/or robust (leaky/redundant removed)."),
    ] = "paper",
    epochs: Annotated[
        int | None, typer.Option("--epochs", min=1, help="Override the presets' max epochs (quick checks).")
    ] = None,
    device: DeviceOpt = "auto",
    threads: ThreadsOpt = 0,
    executor: Annotated[
        str,
        typer.Option(
            "--executor",
            help="local: one run after another here (default); ray: every run a Ray task on a cluster "
            "(pip install 'iomt-ids[ray]'; see docs/scale-out.md).",
        ),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            envvar="RAY_ADDRESS",
            help="Ray cluster (HOST:6379); default: a local Ray runtime.",
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="With Ray: most runs at once (default: all CPUs).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Skip runs already saved under --out.")
    ] = True,
) -> None:
    """Train every task x model x seed; print and save mean ± std (macro-F1, weighted-F1, accuracy)."""
    from iomt_ids.cli.parsing import parse_list, use_threads
    from iomt_ids.data.protocols import PROTOCOLS
    from iomt_ids.features.feature_sets import FEATURE_SETS
    from iomt_ids.workflows.compare import CompareConfig, expand_specs, mean_std
    from iomt_ids.workflows.compare import compare as run

    specs = expand_specs(
        [m.strip() for m in models.split(",") if m.strip()],
        parse_list(presets, "--presets", {"paper", "fast", "tuned", "deep"}),
        parse_list(feature_sets, "--feature-sets", set(FEATURE_SETS)),
    )
    cfg = CompareConfig(
        data=data, out=out, tasks=tuple(int(t) for t in parse_list(tasks, "--tasks", {"2", "6", "19"})),
        specs=specs, seeds=seeds, protocol=parse_list(protocol, "--protocol", set(PROTOCOLS))[0],
        device=device, resume=resume, epochs=epochs, executor=executor,
        ray_address=ray_address if executor == "ray" else None, workers=workers,
    )  # fmt: skip
    use_threads(threads)
    rows = run(cfg)
    typer.echo(
        f"{'task':>4}  {'model':<14} {'preset':<6} {'features':<8} {'macro-F1':>17} {'weighted-F1':>17} {'accuracy':>17}"
    )
    for r in rows:
        # one seed has no spread: its value alone, not "± 0.0000"
        cells = " ".join(f"{mean_std(r, k):>17}" for k in ("macro_f1", "weighted_f1", "accuracy"))
        typer.echo(f"{r['task']:>4}  {r['model']:<14} {r['preset']:<6} {r['feature_set']:<8} {cells}")
    typer.echo(f"table -> {out / 'compare.md'}")
