"""``iomt-ids lab run|list|clean|extract|timeline``: the traffic lab (``run``, ``timeline`` need root)."""

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


@lab_app.command("timeline")
def timeline(
    out: Annotated[
        Path,
        typer.Option("--out", help="Folder for calib.pcap, timeline.pcap, timeline.json, ward.json, logs/."),
    ],
    seed: Annotated[int, typer.Option("--seed", help="Seed of the ward, its rates and the attack plan.")] = 0,
    devices: Annotated[
        int | None, typer.Option("--devices", help="Number of devices (default: 3-6, drawn from the seed).")
    ] = None,
    benign_seconds: Annotated[
        float, typer.Option("--benign-seconds", help="Seconds of the benign-only calib.pcap.")
    ] = 120.0,
    attacks: Annotated[
        str | None,
        typer.Option("--attacks", help="Comma-separated attack stems, in order (default: all eight)."),
    ] = None,
    attack_seconds: Annotated[float, typer.Option("--attack-seconds", help="Seconds of each attack.")] = 15.0,
    gap_seconds: Annotated[
        float, typer.Option("--gap-seconds", help="Benign seconds after each attack (and before the first).")
    ] = 20.0,
    flood_pps: Annotated[
        int, typer.Option("--flood-pps", help="Flood rate in packets/s (the UDP DDoS splits it over two).")
    ] = 500,
) -> None:
    """Run one seeded ward with benign traffic all along and attacks one after another (needs root).

    Captures calib.pcap (benign only), then timeline.pcap (benign lead, then each
    attack followed by benign gap time), and writes the ground truth timeline.json
    (attack, attackers, target, start, end, tool, argv) and the ward in ward.json.
    """
    from iomt_ids.lab.timeline import TimelineConfig, parse_attacks, run_timeline

    cfg = TimelineConfig(
        out_dir=out, seed=seed, devices=devices, benign_seconds=benign_seconds,
        attacks=parse_attacks(attacks), attack_seconds=attack_seconds, gap_seconds=gap_seconds,
        flood_pps=flood_pps,
    )  # fmt: skip
    typer.echo(f"timeline seed {seed}: about {cfg.expected_seconds():.0f} s of capture -> {out}")
    result = run_timeline(cfg)
    for e in result.entries:
        typer.echo(
            f"{e['attack']:<24} {e['start']:.3f}-{e['end']:.3f} ({e['end'] - e['start']:5.1f} s) "
            f"from {','.join(e['attackers'])} on {e['target']}"
        )
    typer.echo(
        f"packets: calib {result.packets.get('calib', 0)}, timeline {result.packets.get('timeline', 0)}"
    )
    typer.echo(f"ground truth: {out / 'timeline.json'}")
