"""``iomt-ids scan``: score every capture of an archive in parallel; one EVE alerts file per capture.

Exit status: 0 when every capture was scanned; 1 when any capture could not be
read or was read only in part (the others are still scanned and written, the
summary says which and why); 2 for bad input (no capture matched, bundle,
options, Ray missing).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from iomt_ids.cli import app
from iomt_ids.cli.options import (
    DetectModelOpt,
    EveOpt,
    ExplainOpt,
    FoldIdleOpt,
    FoldSecondsOpt,
    ThresholdOpt,
    WindowOpt,
)
from iomt_ids.exceptions import ConfigError

if TYPE_CHECKING:
    from iomt_ids.workflows.scan import Capture, FileResult, ScanResult

_EXECUTORS = ("local", "ray")


class _Progress:
    """A progress bar over the captures on a terminal; one line per capture otherwise."""

    def __init__(self, quiet: bool) -> None:
        from rich.console import Console

        self.console = Console(stderr=True, highlight=False)
        self.stdout = Console(highlight=False)  # the summary table
        self.quiet = quiet
        self._bar: Any = None
        self._task: Any = None
        self._done = 0
        self._total = 0

    def start(self, captures: Sequence[Capture], executor: str) -> None:
        self._total = len(captures)
        if self.quiet:
            return
        self.console.print(
            f"scan: {len(captures)} capture{'s' if len(captures) != 1 else ''} with {executor}"
        )
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("scan"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[last]}"),
                console=self.console,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("scan", total=len(captures), last="")

    def file_done(self, r: FileResult) -> None:
        self._done += 1
        if self.quiet:
            return
        s = r.summary
        what = (
            f"{s.packets:,} packets, {s.windows:,} windows, {s.alerts_raw:,} alerts ({s.alerts_emitted:,} lines)"
            if s is not None
            else ""
        )
        if self._bar is not None:
            self._bar.update(self._task, advance=1, last=f"{r.rel}: {r.status}")
            if r.failed:
                self._bar.console.print(f"{r.rel}: {r.status}: {r.error}", style="red", soft_wrap=True)
            return
        line = f"scan [{self._done}/{self._total}] {r.rel}: {r.status}"
        line += f", {what}" if what else ""
        line += f" ({r.wall_s:.1f} s)"
        if r.error:
            line += f": {r.error}"
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _table(result: ScanResult, out: Path) -> Any:
    """Per capture: status, packets, windows, alerts, alert lines, alerts by category (one per line)."""
    from rich.table import Table

    def num(v: Any) -> str:
        return f"{v:,}" if isinstance(v, int) else str(v)

    rows = result.rows()
    total = rows[-1]
    cats = result.categories
    t = Table(title=f"scan summary ({result.executor}, {result.wall_s:.1f} s)", show_footer=True)
    t.add_column("file", footer="TOTAL", overflow="fold")
    t.add_column("status", footer=str(total["status"]))
    for key, label in (("packets", "packets"), ("windows", "windows"), ("alerts", "alerts"),
                       ("alert_lines", "lines")):  # fmt: skip
        t.add_column(label, justify="right", footer=num(total[key]))

    def by_category(row: dict[str, Any]) -> str:
        return "\n".join(f"{num(row[c])} {c}" for c in cats if isinstance(row[c], int) and row[c])

    t.add_column("alerts by category", footer=by_category(total), overflow="fold")
    for row in rows[:-1]:
        cells = [
            row["file"],
            row["status"],
            *(num(row[k]) for k in ("packets", "windows", "alerts", "alert_lines")),
        ]
        cells.append(by_category(row) if row["status"] != "error" else row["error"])
        t.add_row(*cells, style="red" if row["status"] != "ok" else None)
    t.caption = f"alerts: {out / 'alerts'}; summary: {out / 'summary.csv'}, {out / 'summary.json'}"
    return t


@app.command("scan")
def scan(
    inputs: Annotated[
        list[str],
        typer.Argument(
            metavar="DIR_OR_GLOB...",
            help="Folders (searched recursively for .pcap, .pcapng, .cap, plain or .gz), capture files or globs "
            "(quote them: 'archive/**/*.pcap').",
            show_default=False,
        ),
    ],
    model: DetectModelOpt,
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Output folder: alerts/<relative path>.eve.json, summary.csv, summary.json."
        ),
    ],
    executor: Annotated[
        str,
        typer.Option(
            "--executor",
            help="local: a process pool on this machine; ray: Ray tasks (a local or remote cluster).",
        ),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="Ray cluster to join (HOST:6379, ray://HOST:10001, auto); default RAY_ADDRESS, else a local one.",
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-j",
            min=1,
            help="Parallel tasks. Default: the usable CPUs (local), the cluster's (ray).",
        ),
    ] = None,
    chunk_packets: Annotated[
        int,
        typer.Option(
            "--chunk-packets",
            min=0,
            help="Split captures of more packets into chunks of this many, scored in parallel and stitched "
            "(same result as one run); 0: never split.",
        ),
    ] = 1_000_000,
    window: WindowOpt = None,
    threshold: ThresholdOpt = 0.5,
    fold_seconds: FoldSecondsOpt = 60.0,
    fold_idle: FoldIdleOpt = 10.0,
    eve: EveOpt = "extended",
    explain: ExplainOpt = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display and no table.")] = False,
) -> None:
    """Scan a capture archive: every pcap/pcapng (also .gz), in parallel; EVE alerts per capture and a summary."""
    if executor not in _EXECUTORS:
        raise ConfigError(f"--executor must be one of {list(_EXECUTORS)}; got {executor!r} instead.")
    if ray_address and executor != "ray":
        raise ConfigError(f"--ray-address {ray_address!r} needs --executor ray.")
    if eve not in ("extended", "strict"):
        raise ConfigError(f"--eve must be 'extended' or 'strict'; got {eve!r} instead.")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file; expected a folder (created if missing).")
    from iomt_ids.detection.runner import DEFAULT_WINDOWS
    from iomt_ids.workflows.scan import ScanConfig, find_captures, run_scan

    find_captures(inputs)  # no capture matched: exit 2 before loading the model or starting workers
    if executor == "ray":
        from iomt_ids.workflows.executors import import_ray

        import_ray()
    config = ScanConfig(
        model=model,
        out=out,
        windows=tuple(window) if window else DEFAULT_WINDOWS,
        threshold=threshold,
        fold_seconds=fold_seconds,
        fold_idle=fold_idle,
        eve=eve,
        explain=explain,
        chunk_packets=chunk_packets,
        executor=executor,
        workers=workers,
        ray_address=ray_address,
    )
    progress = _Progress(quiet)
    try:
        result = run_scan(config, inputs, progress=progress)
    except KeyboardInterrupt:
        progress.stop()
        typer.secho("interrupted", err=True)
        raise typer.Exit(130) from None
    finally:
        progress.stop()
    if not quiet:
        progress.stdout.print(_table(result, out))
        if result.chunked_note and chunk_packets:
            progress.console.print(f"note: chunking {result.chunked_note}", style="yellow", soft_wrap=True)
        warned = [f.rel for f in result.files if f.summary is not None and f.summary.warnings]
        if warned:
            progress.console.print(
                f"warning: the model does not seem to fit the traffic of {len(warned)} capture"
                f"{'s' if len(warned) != 1 else ''} ({', '.join(warned[:3])}{', ...' if len(warned) > 3 else ''}); "
                "the warnings are in summary.json and in the captures' stats lines.",
                style="yellow",
                soft_wrap=True,
            )
    failed = result.failed
    if failed:
        typer.secho(
            f"scan: {len(failed)} of {len(result.files)} captures failed: "
            + "; ".join(f"{f.rel} ({f.status})" for f in failed[:5])
            + (" ..." if len(failed) > 5 else ""),
            err=True,
            fg="red",
        )
        raise typer.Exit(1)
