"""``iomt-ids adapt``: teach a trained bundle a site's normal traffic (benign captures -> SITE_DIR)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iomt_ids.cli import app
from iomt_ids.cli.options import ThreadsOpt
from iomt_ids.cli.parsing import use_threads


@app.command("adapt")
def adapt(
    model: Annotated[Path, typer.Option("--model", "-m", help="RUN_DIR of the trained base bundle (v2).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="SITE_DIR to write (use it as 'detect --model').")],
    benign: Annotated[
        list[Path] | None,
        typer.Option(
            "--benign", help="Benign capture of the site (pcap/pcapng, .gz ok); repeat for several."
        ),
    ] = None,
    benign_csv: Annotated[
        list[Path] | None,
        typer.Option("--benign-csv", help="Feature CSV of benign windows (v2 header); repeat for several."),
    ] = None,
    false_alarms_per_hour: Annotated[
        float,
        typer.Option(
            "--false-alarms-per-hour",
            min=0.0,
            help="Target novel-window false alarms per hour on normal traffic.",
        ),
    ] = 1.0,
    window: Annotated[
        list[int] | None, typer.Option("--window", "-w", min=2, help="Window streams (default 10 and 100).")
    ] = None,
    finetune: Annotated[
        bool,
        typer.Option(
            "--finetune/--no-finetune", help="Fine-tune the classifier with the site's benign windows."
        ),
    ] = True,
    replay_data: Annotated[
        Path | None,
        typer.Option(
            "--replay-data", help="The base model's training data (default: the path its bundle records)."
        ),
    ] = None,
    margin: Annotated[float, typer.Option("--margin", min=1.0, help="Novelty threshold factor.")] = 1.25,
    seed: Annotated[int, typer.Option("--seed", help="Seed of sampling and fine-tuning.")] = 0,
    threads: ThreadsOpt = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Build a site bundle: normal-traffic baselines with a stated false-alarm bound, and a fine-tuned classifier."""
    from iomt_ids.workflows.adapt import AdaptConfig, adapt_site

    cfg = AdaptConfig(
        model=model, out=out, benign=tuple(benign or ()), benign_csv=tuple(benign_csv or ()),
        false_alarms_per_hour=false_alarms_per_hour, windows=tuple(window) if window else (10, 100),
        finetune=finetune, replay_data=replay_data, margin=margin, seed=seed, progress=not quiet,
    )  # fmt: skip
    use_threads(threads)
    site = adapt_site(cfg)
    m = site.meta
    typer.echo(f"site bundle {site.version} -> {out} ({m['adapt_seconds']:.1f} s)")
    for w, s in m["streams"].items():
        typer.echo(
            f"  W={w}: {s['windows']} benign windows, threshold {s['threshold']:.3f}, alpha {s['alpha_bound']:.1e} "
            f"per window -> at most {s['false_alarms_per_hour_bound']} novel windows/hour on such traffic"
        )
    typer.echo(f"  classifier: {m['finetune'].get('method')}")
    r = m.get("validation_recall") or {}
    if r:
        typer.echo(
            f"  attack recall on the base validation split: {r['before']['attack_recall']:.4f} -> "
            f"{r['after']['attack_recall']:.4f} ({r['before']['rows']} rows)"
        )
    f = m["calibration_windows_called_attack"]
    typer.echo(
        f"  calibration windows called attack by the classifier: {f['base']:.1%} -> {f['classifier']:.1%}"
    )
    typer.echo(f"  report: {out / 'adapt-report.md'}")
