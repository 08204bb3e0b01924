"""Run lab scenarios: build the lab, start background and attack, capture, clean up, record.

For each scenario :func:`run_scenario` builds a fresh lab (:class:`~iomt_ids.lab.netns.Lab`),
checks its isolation, starts the broker, the EHR/DNS server and the devices, starts
``tcpdump``, lets benign traffic run for ``warmup`` seconds, runs the attack steps
for ``seconds`` (re-running short scans), stops everything and tears the lab down,
whatever happens. :func:`run_lab` does that for several scenarios and keeps
``manifest.json`` in the output folder up to date after each one.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from iomt_ids.exceptions import CaptureError, ConfigError
from iomt_ids.lab.attacks import AttackStep, Scenario, build_scenarios
from iomt_ids.lab.capture import Capture, count_packets
from iomt_ids.lab.netns import Lab, check_environment
from iomt_ids.lab.services import make_certificate, write_mosquitto_conf
from iomt_ids.lab.topology import Topology, default_topology

__all__ = [
    "MANIFEST_NAME",
    "LabRunConfig",
    "ManifestEntry",
    "run_lab",
    "run_scenario",
    "run_steps",
    "tools_for",
]

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
_BASE_TOOLS = ("ip", "ss", "tcpdump", "mosquitto")
# hping3 exits 1 when no reply came back (e.g. a UDP flood on a port the kernel rate-limits).
_OK_CODES = {"hping3": (0, 1)}


@dataclass(frozen=True)
class LabRunConfig:
    """Settings of one lab run.

    Attributes
    ----------
    out_dir: folder for the pcaps, ``manifest.json`` and ``logs/``.
    scenarios: stems to run (all by default).
    seconds: attack duration per scenario (Benign runs ``duration_factor`` times longer).
    warmup: seconds of benign traffic captured before the attack starts.
    tail: seconds captured after the attack stops.
    max_packets: tcpdump stops after this many packets.
    seed: seed of the devices' readings and the MQTT tools.
    lab_id: fixed id put in the namespace names (``iomtlab-<lab_id>-<host>``); random if None.
    """

    out_dir: Path
    scenarios: tuple[str, ...] = ()
    seconds: float = 30.0
    warmup: float = 3.0
    tail: float = 1.0
    max_packets: int = 2_000_000
    seed: int = 0
    lab_id: str | None = None

    def __post_init__(self) -> None:
        if not 0 < self.seconds <= 3600:
            raise ConfigError(f"seconds must be in (0, 3600]; got {self.seconds!r} instead.")
        if self.warmup < 0 or self.tail < 0:
            raise ConfigError(f"warmup and tail must be >= 0; got {self.warmup!r} and {self.tail!r}.")
        if self.max_packets < 1:
            raise ConfigError(f"max_packets must be >= 1; got {self.max_packets!r} instead.")


@dataclass
class ManifestEntry:
    """What one scenario run produced (one row of ``manifest.json``)."""

    scenario: str
    label: str
    pcap: str
    tool: str
    description: str
    window: int
    steps: list[dict] = field(default_factory=list)
    capture: list[str] = field(default_factory=list)
    attack_seconds: float = 0.0
    started: str = ""
    duration_s: float = 0.0
    packets: dict[str, int] = field(default_factory=dict)
    status: str = "pending"
    error: str = ""


def tools_for(scenarios: list[Scenario]) -> tuple[str, ...]:
    """The commands a set of scenarios needs (for :func:`check_environment`)."""
    tools = list(_BASE_TOOLS)
    for s in scenarios:
        for step in s.steps:
            name = Path(step.argv[0]).name
            if step.argv[0] != sys.executable and name not in tools:
                tools.append(name)
    return tuple(tools)


def _tail(path: Path, n: int = 300) -> str:
    try:
        return path.read_text(errors="replace").strip()[-n:]
    except OSError:
        return ""


def _start_background(lab: Lab, topology: Topology, log_dir: Path, total: float, seed: int, cert) -> None:
    python = sys.executable
    server = topology.by_role("server")[0]
    broker = topology.by_role("broker")[0]
    conf = write_mosquitto_conf(log_dir / "mosquitto.conf", broker.address)
    lab.start(broker.name, ["mosquitto", "-c", str(conf)], log_name="broker-mosquitto")
    lab.wait_listening(broker.name, 1883)
    argv = [python, "-m", "iomt_ids.lab.services", "--bind", server.address, "--broker", broker.address]
    argv += ["--seconds", f"{total:g}"]
    if cert:
        argv += ["--cert", str(cert[0]), "--key", str(cert[1])]
    lab.start(server.name, argv, log_name="server-services")
    lab.wait_listening(server.name, 80)
    for i, dev in enumerate(topology.by_role("device")):
        lab.start(
            dev.name,
            [python, "-m", "iomt_ids.lab.devices", "--name", dev.name, "--kind", dev.kind]
            + ["--broker", broker.address, "--server", server.address, "--seconds", f"{total:g}"]
            + ["--seed", str(seed * 100 + i)],
            log_name=f"{dev.name}-device",
        )


def run_steps(
    lab: Lab,
    steps: tuple[AttackStep, ...] | list[AttackStep],
    seconds: float,
    log_dir: Path,
    what: str,
    records: list[dict],
    log_names: list[str],
    stop_when_done: bool = False,
) -> None:
    """Run attack steps together for ``seconds``; fill each record's ``runs`` and ``returncodes``.

    Steps marked ``repeat`` are started again when they end early (short scans). A step that exits
    with an error code raises :class:`CaptureError` naming ``what``, the command, the host and the tail
    of its log. ``stop_when_done`` ends the wait as soon as every step has exited. Steps still running
    at the deadline are stopped.
    """
    procs: list[subprocess.Popen | None] = [None] * len(steps)

    def launch(i: int) -> None:
        step = steps[i]
        procs[i] = lab.start(step.host, step.argv, targets=step.targets, log_name=log_names[i])
        records[i]["runs"] += 1

    for i in range(len(steps)):
        launch(i)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for i, step in enumerate(steps):
            proc = procs[i]
            if proc is None or proc.poll() is None:
                continue
            rc = proc.returncode
            records[i]["returncodes"].append(rc)
            procs[i] = None
            if rc not in _OK_CODES.get(Path(step.argv[0]).name, (0,)):
                raise CaptureError(
                    f"{what}: `{' '.join(step.argv)}` on {step.host} exited with {rc}: "
                    f"{_tail(log_dir / f'{log_names[i]}.log')}"
                )
            if step.repeat and deadline - time.monotonic() > 1.0:
                launch(i)
        if stop_when_done and all(p is None for p in procs):
            break
        time.sleep(0.05)
    for i, proc in enumerate(procs):
        if proc is not None:
            records[i]["returncodes"].append(Lab.stop_process(proc, grace=4.0))


def _run_steps(lab: Lab, scenario: Scenario, seconds: float, log_dir: Path) -> list[dict]:
    records = [{"host": s.host, "argv": list(s.argv), "runs": 0, "returncodes": []} for s in scenario.steps]
    names = [f"{s.host}-step{i}" for i, s in enumerate(scenario.steps)]
    run_steps(lab, scenario.steps, seconds, log_dir, f"scenario {scenario.stem}", records, names)
    return records


def run_scenario(
    scenario: Scenario, config: LabRunConfig, topology: Topology | None = None, cert=None
) -> ManifestEntry:
    """Run one scenario in a fresh lab and return its manifest entry.

    The lab is torn down however the run ends. A failure is recorded in the entry
    (``status="failed"``, ``error``) instead of raised, so a long run goes on.
    """
    topology = topology or default_topology()
    out_dir = Path(config.out_dir)
    pcap = out_dir / scenario.pcap_name
    log_dir = out_dir / "logs" / scenario.stem
    log_dir.mkdir(parents=True, exist_ok=True)
    for old in log_dir.glob("*.log"):
        old.unlink()
    seconds = config.seconds * scenario.duration_factor
    entry = ManifestEntry(
        scenario=scenario.stem,
        label=scenario.label,
        pcap=scenario.pcap_name,
        tool=scenario.tool,
        description=scenario.description,
        window=scenario.window,
        attack_seconds=seconds,
        started=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    t0 = time.monotonic()
    try:
        scenario.check(topology)  # before anything starts
        total = config.warmup + seconds + config.tail + 30.0
        with Lab(topology, log_dir, run_id=config.lab_id) as lab:
            problems = lab.isolation_problems()
            if problems:
                raise CaptureError(f"lab is not isolated, refusing to run: {'; '.join(problems)}")
            _start_background(lab, topology, log_dir, total, config.seed, cert)
            capture = Capture(lab, pcap, config.max_packets)
            entry.capture = list(capture.argv)
            capture.start()
            time.sleep(config.warmup)
            entry.steps = _run_steps(lab, scenario, seconds, log_dir)
            time.sleep(config.tail)
            capture.stop()
        entry.packets = count_packets(pcap)
        entry.status = "ok"
    except Exception as exc:  # recorded; the lab is already torn down
        logger.error("scenario %s failed: %s", scenario.stem, exc)
        entry.status = "failed"
        entry.error = f"{type(exc).__name__}: {exc}"
        if pcap.exists():
            try:
                entry.packets = count_packets(pcap)
            except CaptureError:
                pass
    entry.duration_s = round(time.monotonic() - t0, 2)
    logger.info("scenario %s: %s, %s packets", scenario.stem, entry.status, entry.packets.get("total"))
    return entry


def write_manifest(out_dir: Path, entries: list[ManifestEntry], config: LabRunConfig) -> Path:
    """Write ``manifest.json`` (run settings + one entry per scenario)."""
    path = Path(out_dir) / MANIFEST_NAME
    body = {
        "generator": "iomt-ids lab run",
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "scenarios": [asdict(e) for e in entries],
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=2), encoding="utf-8")
    tmp.replace(path)
    return path


def run_lab(config: LabRunConfig, topology: Topology | None = None) -> list[ManifestEntry]:
    """Run the configured scenarios one after the other; return their manifest entries.

    Raises
    ------
    CaptureError
        Not root, or a needed tool is missing (checked before anything starts).
    ConfigError
        An unknown scenario name.
    """
    topology = topology or default_topology()
    catalog = build_scenarios(topology, config.seconds)
    names = config.scenarios or tuple(catalog)
    unknown = [n for n in names if n not in catalog]
    if unknown:
        raise ConfigError(f"unknown lab scenario(s) {unknown}; choose among {list(catalog)}.")
    chosen = [catalog[n] for n in names]
    check_environment(tools_for(chosen))
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cert = make_certificate(out_dir / "logs" / "tls")
    entries: list[ManifestEntry] = []
    # SIGTERM would end Python without unwinding; turn it into KeyboardInterrupt so that the
    # running scenario's lab is torn down on the way out.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        for scenario in chosen:
            logger.info(
                "scenario %s (%s): %s", scenario.stem, scenario.tool or "background", scenario.description
            )
            entries.append(run_scenario(scenario, config, topology, cert))
            write_manifest(out_dir, entries, config)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return entries


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
