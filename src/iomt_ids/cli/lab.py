"""``iomt-ids lab run`` and ``iomt-ids lab list``: the traffic lab (needs root for ``run``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from iomt_ids.cli import app

lab_app = typer.Typer(
    help="Traffic lab: real attack tools against simulated medical devices in isolated network "
    "namespaces, captured to pcaps named like the dataset (needs root).",
    no_args_is_help=True,
)
app.add_typer(lab_app, name="lab")


def _split(values: list[str] | None) -> tuple[str, ...]:
    return tuple(v.strip() for item in values or [] for v in item.split(",") if v.strip())


@lab_app.command("list")
def list_scenarios(
    seconds: Annotated[
        float, typer.Option("--seconds", min=0.1, help="Attack seconds to size the tools.")
    ] = 30.0,
) -> None:
    """List the scenarios with their tools and arguments (no root needed)."""
    from iomt_ids.lab.attacks import build_scenarios
    from iomt_ids.lab.topology import default_topology

    for s in build_scenarios(default_topology(), seconds).values():
        typer.echo(f"{s.stem}  [{s.label}]  W={s.window}: {s.description}")
        for step in s.steps:
            typer.echo(f"    {step.host}: {' '.join(step.argv)}")


@lab_app.command("clean")
def clean() -> None:
    """Delete lab namespaces (iomtlab-*) left behind by a killed run (needs root)."""
    from iomt_ids.lab.netns import check_environment, clean_stale_namespaces

    check_environment(("ip",))
    removed = clean_stale_namespaces()
    typer.echo(f"removed {len(removed)} lab namespace(s)" + (f": {' '.join(removed)}" if removed else ""))


@lab_app.command("run")
def run(
    out: Annotated[Path, typer.Option("--out", help="Folder for <stem>_lab.pcap files and manifest.json.")],
    scenarios: Annotated[
        list[str] | None,
        typer.Option("--scenarios", help="Scenario stems, repeated or comma-separated (default: all)."),
    ] = None,
    seconds: Annotated[float, typer.Option("--seconds", min=1.0, max=3600.0, help="Attack seconds.")] = 30.0,
    warmup: Annotated[
        float, typer.Option("--warmup", min=0.0, help="Benign seconds before the attack.")
    ] = 3.0,
    max_packets: Annotated[
        int, typer.Option("--max-packets", min=1, help="tcpdump stops after this many packets.")
    ] = 2_000_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of device readings and MQTT tools.")] = 0,
) -> None:
    """Run lab scenarios and capture one pcap per scenario (needs root)."""
    from iomt_ids.lab.runner import LabRunConfig, run_lab

    cfg = LabRunConfig(
        out_dir=out, scenarios=_split(scenarios), seconds=seconds, warmup=warmup,
        max_packets=max_packets, seed=seed,
    )  # fmt: skip
    entries = run_lab(cfg)
    for e in entries:
        typer.echo(f"{e.scenario:<26} {e.status:<6} {e.packets.get('total', 0):>9} packets  {e.pcap}")
    failed = [e for e in entries if e.status != "ok"]
    for e in failed:
        typer.secho(f"{e.scenario}: {e.error}", err=True, fg="red")
    typer.echo(f"manifest: {out / 'manifest.json'}")
    if failed:
        raise typer.Exit(1)


@lab_app.command("extract")
def extract(
    run_dir: Annotated[
        Path, typer.Argument(exists=True, file_okay=False, help="Folder written by 'iomt-ids lab run'.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for <stem>_lab.pcap.csv and manifest.json.")],
    release: Annotated[str, typer.Option("--release", help="v2 (39 columns) or v1 (45).")] = "v2",
) -> None:
    """Extract a lab run's pcaps with the dataset's windows (100 for TCP/IP floods, else 10)."""
    from iomt_ids.lab.dataset import extract_run

    for e in extract_run(run_dir, out, release):
        typer.echo(f"{e.get('csv', e['pcap']):<36} W={e.get('window', '-')!s:<4} rows={e.get('rows', 0)}")
