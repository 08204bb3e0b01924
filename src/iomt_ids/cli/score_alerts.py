"""``iomt-ids score-alerts``: EVE alerts against an attack timeline, as an operator would score them.

Exit status: 0 when scored; 2 for bad input (a missing or malformed timeline or
alerts file, a bad option), reported as one line naming the file, line and field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from iomt_ids.cli import app

if TYPE_CHECKING:
    from iomt_ids.evaluation.timeline import AlertLog, TimelineScore


def _yes_no(v: bool) -> str:
    return "[green]yes[/]" if v else "[red]no[/]"


def _print_table(score: TimelineScore, log: AlertLog) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(highlight=False)
    t = Table(title=f"alerts vs timeline (grace {score.grace:g} s)")
    t.add_column("attack", no_wrap=True, min_width=22)
    t.add_column("detected")
    t.add_column("first s", justify="right")
    t.add_column("attrib.")
    t.add_column("named")
    t.add_column("majority")
    t.add_column("alerts", justify="right")
    for r in score.per_attack:
        t.add_row(
            escape(r.attack),
            _yes_no(r.detected),
            "-" if r.first_s is None else f"{r.first_s:g}",
            _yes_no(r.attributed),
            _yes_no(r.named),
            escape(r.majority or "-"),
            f"{r.alerts:,}",
        )
    console.print(t)
    n = score.attacks
    skipped = f"; {log.skipped_lines:,} non-alert lines skipped" if log.skipped_lines else ""
    console.print(
        f"false alerts/hour of benign time: {score.false_alerts_per_hour} "
        f"({score.false_alerts:,} alerts), false alert lines/hour: {score.false_alert_lines_per_hour} "
        f"({score.false_alert_lines:,} lines), {score.benign_hours:.4f} benign hours; "
        f"attacks detected {score.attacks_detected}/{n}, attributed {score.attacks_attributed}/{n}, "
        f"named {score.attacks_named}/{n}{skipped}",
        soft_wrap=True,
    )


@app.command("score-alerts")
def score_alerts(
    timeline: Annotated[
        Path,
        typer.Option("--timeline", help="JSON list of {attack, start, end, attackers} (Unix seconds)."),
    ],
    alerts: Annotated[
        Path, typer.Option("--alerts", help="EVE JSON-lines file (only 'alert' events count).")
    ],
    grace: Annotated[
        float, typer.Option("--grace", min=0.0, help="Seconds after an attack's end that still count for it.")
    ] = 10.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the scores as one JSON object instead of a table.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Also write the JSON scores to this file.")
    ] = None,
) -> None:
    """Score alerts against a timeline: false alerts per benign hour; per attack detected, attributed, named."""
    from iomt_ids.evaluation.timeline import load_alerts, load_timeline, score_timeline

    attacks = load_timeline(timeline)
    log = load_alerts(alerts)
    score = score_timeline(attacks, log, grace=grace)
    text = json.dumps(score.to_dict())
    if as_json:
        typer.echo(text)
    else:
        _print_table(score, log)
    if out is not None:
        out.write_text(text + "\n", encoding="utf-8")
        if not as_json:
            typer.echo(f"scores -> {out}")
