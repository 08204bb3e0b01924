"""``iomt-ids detect``: score a capture file or a live interface and write EVE-style alerts.

Exit status: 0 when the input ended or the run was stopped (``--duration``,
``--max-packets``, or SIGINT/SIGTERM: the summary is printed and the alerts file
flushed first); 1 when the capture failed mid-run (e.g. the interface went down;
summary printed, alerts flushed); 2 for bad input (bundle, capture file,
interface that cannot be opened, options); 130 when a second SIGINT interrupts
the graceful stop.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
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
    ThreadsOpt,
    ThresholdOpt,
    WindowOpt,
)
from iomt_ids.cli.parsing import use_threads
from iomt_ids.exceptions import ConfigError

if TYPE_CHECKING:
    from iomt_ids.detection.runner import DetectSummary


class _View:
    """Progress (a rich Live line on a terminal) and the final summary table."""

    def __init__(self, err: bool, quiet: bool) -> None:
        from rich.console import Console

        self.console = Console(stderr=err, highlight=False)
        self.quiet = quiet
        self._live: Any = None

    def start(self, source: str, detector: Any, windows: Sequence[int], threshold: float) -> None:
        if self.quiet:
            return
        self.console.print(
            f"detect: {source} with {detector.model_version}, windows {list(windows)}, threshold {threshold:g}",
            soft_wrap=True,
        )
        describe = getattr(detector, "describe", None)
        if describe is not None:
            for line in describe():
                self.console.print(line, soft_wrap=True)
        else:
            self.console.print(
                "note: this model is not adapted to this site; on a network it was not trained on it can alert "
                "on normal traffic. 'iomt-ids adapt --model RUN_DIR --benign CAPTURE --out SITE_DIR' fixes that.",
                soft_wrap=True,
                style="yellow",
            )

    @contextlib.contextmanager
    def live(self) -> Iterator[None]:
        if self.quiet or not self.console.is_terminal:
            yield
            return
        from rich.live import Live

        with Live("starting...", console=self.console, refresh_per_second=4, transient=True) as live:
            self._live = live
            try:
                yield
            finally:
                self._live = None

    def update(self, s: DetectSummary) -> None:
        if self._live is not None:
            self._live.update(
                f"{s.packets:,} packets  {s.windows:,} windows  {s.alerts_raw:,} alerts "
                f"({s.alerts_emitted:,} written)  {s.dropped:,} dropped  {s.packets_per_s:,.0f} packets/s"
            )

    def summary(self, s: DetectSummary, alerts: str | None, sinks: Sequence[Any] = ()) -> None:
        from rich.table import Table

        t = Table(title=f"detect summary ({s.stopped_by})", show_header=False)
        t.add_column("what")
        t.add_column("value", justify="right")
        skipped = ", ".join(f"{k} {v:,}" for k, v in sorted(s.skipped.items())) or "none"
        by_size = ", ".join(f"W={w}: {n:,}" for w, n in s.windows_by_size.items())
        rows = [
            ("packets", f"{s.packets:,}"),
            ("accepted (IPv4/ARP)", f"{s.accepted:,}"),
            ("skipped", skipped),
            ("windows", f"{s.windows:,} ({by_size})"),
            ("alerting windows", f"{s.alerts_raw:,}"),
            *[(f"  {cat}", f"{n:,}") for cat, n in s.categories.items()],
            # alerts_emitted counts alert lines after folding, whether or not a sink took them
            (
                "alert lines written (folded)"
                if alerts
                else "alert lines (folded; not written: no --alerts)",
                f"{s.alerts_emitted:,} ({s.alerts_suppressed:,} windows folded)",
            ),
            ("dropped", f"{s.dropped:,}"),
            ("partial windows unscored", f"{s.partial_dropped:,}"),
            ("site-adapted", "yes" if s.site_adapted else "no"),
            *([("windows unlike the site", f"{s.novel_windows:,}")] if s.site_adapted else []),
            ("wall time", f"{s.wall_s:.2f} s"),
            ("packets/s", f"{s.packets_per_s:,.0f}"),
            ("windows/s", f"{s.windows_per_s:,.0f}"),
        ]
        for k, v in rows:
            t.add_row(k, v)
        described = False
        for sink in sinks:
            # a network output (queued) says what it sent, dropped, retried
            describe = getattr(sink, "describe", None)
            if describe is not None:
                described = True
                for k, v in describe():
                    t.add_row(k, v)
        if alerts and alerts != "-" and not described:
            t.add_row("alerts file", alerts)
        self.console.print(t)
        for w in s.warnings:
            self.console.print(f"warning: {w}", style="yellow", soft_wrap=True)


@app.command("detect")
def detect(
    model: DetectModelOpt,
    pcap: Annotated[
        Path | None, typer.Option("--pcap", help="Replay this pcap/pcapng file (or use --interface).")
    ] = None,
    interface: Annotated[
        str | None, typer.Option("--interface", "-i", help="Capture live on this interface (needs root).")
    ] = None,
    window: WindowOpt = None,
    threshold: ThresholdOpt = 0.5,
    alerts: Annotated[
        str | None,
        typer.Option(
            "--alerts",
            "-o",
            help="Where alerts go: a JSON-lines file, '-' (stdout), 'syslog' (RFC 5424 to /dev/log; "
            "syslog://HOST:PORT for UDP; ?facility=local5&ident=iomt-ids&socket=PATH) or "
            "redis://HOST:PORT/DB?key=suricata&mode=list|channel (LPUSH or PUBLISH). Network outputs are "
            "queued (never block the capture) and reconnect by themselves. Default: none written.",
        ),
    ] = None,
    fold_seconds: FoldSecondsOpt = 60.0,
    fold_idle: FoldIdleOpt = 10.0,
    duration: Annotated[
        float | None, typer.Option("--duration", min=0.0, help="Stop after this many seconds.")
    ] = None,
    max_packets: Annotated[
        int | None, typer.Option("--max-packets", min=1, help="Stop after this many packets.")
    ] = None,
    snaplen: Annotated[
        int, typer.Option("--snaplen", min=64, help="Live: bytes captured per packet.")
    ] = 65535,
    promisc: Annotated[bool, typer.Option("--promisc/--no-promisc", help="Live: promiscuous mode.")] = True,
    threads: ThreadsOpt = 0,
    eve: EveOpt = "extended",
    explain: ExplainOpt = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
) -> None:
    """Detect attacks in a pcap or on a live interface; write Suricata-EVE-shaped alert lines."""
    from iomt_ids.detection import DetectConfig, StopFlag, open_sink
    from iomt_ids.detection.runner import DEFAULT_WINDOWS, check_release, run_detection, stop_on_signals
    from iomt_ids.detection.site import load_detector
    from iomt_ids.detection.sources import LiveSource, PcapSource

    if (pcap is None) == (interface is None):
        raise ConfigError(
            "detect: give exactly one input, --pcap FILE or --interface IF; got "
            + ("both." if pcap is not None else "neither.")
        )
    config = DetectConfig(
        windows=tuple(window) if window else DEFAULT_WINDOWS,
        fold_seconds=fold_seconds,
        fold_idle=fold_idle,
        duration=duration or None,
        max_packets=max_packets,
    )
    if eve not in ("extended", "strict"):
        raise ConfigError(f"--eve must be 'extended' or 'strict'; got {eve!r}.")
    detector = load_detector(model, threshold=threshold, explain=explain, eve_strict=eve == "strict")
    bundle = detector.bundle
    detector.check_windows(config.windows)
    # a window batch is a few thousand rows through a small model: automatic picks one thread
    # (extra intra-op threads only add contention, 10x slower on a busy 2-core host)
    use_threads(threads, cap=1)
    check_release(bundle, config.windows[0], where=str(model))
    source = (
        PcapSource(pcap)
        if pcap is not None
        else LiveSource(interface or "", snaplen=snaplen, promisc=promisc)
    )
    # a path, '-', syslog[://...] or redis://... (a bad spec is a ConfigError: exit 2)
    sinks = [open_sink(alerts)] if alerts else []
    # the summary goes to stderr when the alerts take stdout
    view = _View(err=alerts == "-", quiet=quiet)
    view.start(source.name, detector, config.windows, threshold)
    stop = StopFlag()
    try:
        with stop_on_signals(stop), view.live():
            summary = run_detection(source, detector, sinks, config, stop=stop, on_progress=view.update)
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        sys.stdout.flush()
        raise typer.Exit(130) from None
    finally:
        for s in sinks:
            s.close()
    view.summary(summary, alerts, sinks)
    if summary.error:
        typer.secho(f"error: {summary.error}", err=True, fg="red")
        raise typer.Exit(1)
