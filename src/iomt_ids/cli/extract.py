"""``iomt-ids extract``: a capture file -> a CICIoMT2024 feature CSV."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from iomt_ids.cli import app
from iomt_ids.cli.parsing import check_file_output


class ReleaseChoice(StrEnum):
    v2 = "v2"
    v1 = "v1"


@app.command("extract")
def extract(
    capture: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="pcap or pcapng file.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Feature CSV to write.")],
    window: Annotated[
        int, typer.Option("--window", "-w", min=1, help="Packets per window (10 or 100).")
    ] = 10,
    release: Annotated[
        ReleaseChoice, typer.Option("--release", help="v2 (39 columns) or legacy v1 (45).")
    ] = ReleaseChoice.v2,
    cic_chunks: Annotated[
        bool,
        typer.Option(
            "--cic-chunks", help="Reset state every 10 MB of pcap, as CIC's tcpdump -C 10 split did."
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Extract window features from a capture into a CSV with the dataset's header.

    The output's folder must exist.
    """
    check_file_output(output, "--output")
    from iomt_ids.features.extract import extract_to_csv
    from iomt_ids.features.windows import CIC_CHUNK_BYTES

    t0 = time.perf_counter()
    rows, stats = extract_to_csv(
        capture,
        output,
        window=window,
        release=release.value,
        progress=not quiet,
        chunk_bytes=CIC_CHUNK_BYTES if cic_chunks else None,
    )
    dt = max(time.perf_counter() - t0, 1e-9)
    skipped = ", ".join(f"{k} {v:,}" for k, v in sorted(stats.skipped.items())) or "none"
    typer.echo(
        f"{capture.name}: {stats.packets_read:,} packets, {stats.packets_accepted:,} accepted "
        f"(IPv4/ARP), skipped: {skipped}"
    )
    typer.echo(
        f"{rows:,} windows of {window} ({release.value}) -> {output}  "
        f"[{dt:.2f} s, {stats.packets_read / dt:,.0f} packets/s, {stats.bytes_read / dt / 1e6:,.1f} MB/s]"
    )
    for line in stats.errors:
        typer.secho(f"warning: {line}", err=True, fg="yellow")
    if stats.packets_read and not stats.packets_accepted:
        typer.secho(
            "warning: no IPv4/ARP Ethernet packets: the CSV has only the header", err=True, fg="yellow"
        )
