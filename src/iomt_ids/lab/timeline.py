"""Timeline scenarios: one seeded ward, benign traffic all along, attacks one after another.

Where ``iomt-ids lab run`` captures one scenario per fresh lab, a *timeline* keeps
one lab up for the whole run, as a deployed IDS would see a ward:

* :func:`ward_topology` draws the ward from a seed: addresses in the lab subnet, the
  number and kinds of devices, each device's publish interval and QoS, the ICMP
  monitoring and dashboard polling periods, and two or three attackers.
* :func:`attack_plan` turns a list of dataset stems (:data:`TIMELINE_ATTACKS` by
  default) into bounded tool runs against targets drawn from the ward.
* :func:`run_timeline` (root) builds the lab, starts the benign traffic (broker,
  EHR/DNS/HTTP(S) server with the nurse-station subscriber, devices, ICMP monitor
  in the server, dashboard polling from a nurse station), captures ``calib.pcap``
  (benign only), then ``timeline.pcap``: benign lead time, then each attack
  followed by benign gap time. It writes the ground truth ``timeline.json`` (one
  interval per attack, wall-clock epoch seconds, the clock of tcpdump's
  timestamps) and the seeded ward ``ward.json``.

Everything except :func:`run_timeline` is pure. Every tool target and every IPv4
literal of every command line is checked to be a lab address before it starts.
The module also runs as ``python -m iomt_ids.lab.timeline {serve,ping,poll} ...``:
the ward's EHR server (whose DNS answers the seeded addresses), the ICMP monitor
and the dashboard poller, started inside the lab namespaces.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import random
import signal
import socket
import struct
import sys
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from iomt_ids.exceptions import CaptureError, ConfigError
from iomt_ids.lab.attacks import AttackStep, _hping, _mqtt
from iomt_ids.lab.topology import LAB_SUBNET, LabHost, Topology, check_lab_target

if TYPE_CHECKING:
    from iomt_ids.lab.netns import Lab

__all__ = [
    "DEFAULT_FLOOD_PPS",
    "TIMELINE_ATTACKS",
    "DeviceProfile",
    "PlannedAttack",
    "TimelineConfig",
    "TimelineResult",
    "Ward",
    "attack_plan",
    "parse_attacks",
    "run_timeline",
    "ward_topology",
]

logger = logging.getLogger(__name__)

#: The default attacks of a timeline, in order (dataset file-name stems).
TIMELINE_ATTACKS: tuple[str, ...] = (
    "Recon-Ping_Sweep",
    "Recon-Port_Scan",
    "Recon-OS_Scan",
    "TCP_IP-DoS-SYN",
    "TCP_IP-DDoS-UDP",
    "TCP_IP-DoS-ICMP",
    "MQTT-DoS-Connect_Flood",
    "MQTT-DoS-Publish_Flood",
)
#: Packets per second of a flood (the DDoS splits it between its two attackers).
DEFAULT_FLOOD_PPS = 500
#: Name prefix of each device kind (host names are ``<prefix><n>``).
KIND_PREFIX: dict[str, str] = {
    "heart_rate": "hr",
    "spo2": "spo",
    "infusion_pump": "pump",
    "blood_pressure": "bp",
}
#: Seeded range (seconds) of each kind's telemetry interval.
INTERVAL_RANGES: dict[str, tuple[float, float]] = {
    "heart_rate": (0.5, 1.5),
    "spo2": (1.0, 3.0),
    "infusion_pump": (2.0, 5.0),
    "blood_pressure": (5.0, 15.0),
}
#: Seeded range (seconds) of the mean time between a device's DNS + HTTP(S) exchanges.
WEB_INTERVAL_RANGE = (20.0, 45.0)
#: Seeded range of the number of devices when not given.
DEVICE_RANGE = (3, 6)
_BASE_TOOLS = ("ip", "ss", "tcpdump", "mosquitto")


# -- the seeded ward ------------------------------------------------------------------------------
@dataclass(frozen=True)
class DeviceProfile:
    """How one device of the ward behaves.

    Attributes
    ----------
    name: its host name.
    kind: a key of :data:`iomt_ids.lab.devices.DEVICE_KINDS`.
    interval: seconds between two telemetry messages.
    qos: MQTT QoS of its telemetry (0 or 1).
    web_interval: mean seconds between two DNS + HTTP(S) exchanges with the EHR server.
    """

    name: str
    kind: str
    interval: float
    qos: int
    web_interval: float


@dataclass(frozen=True)
class Ward:
    """A seeded ward: the lab topology plus the rates of its benign traffic.

    Attributes
    ----------
    seed: the seed it was drawn from.
    topology: server, broker, nurse station (role ``station``), devices, attackers.
    devices: one profile per device host, in topology order.
    ping_interval: seconds between two ICMP echo rounds of the server over devices and broker.
    poll_interval: seconds between two dashboard polls (DNS + HTTP GET) from the nurse station.
    """

    seed: int
    topology: Topology
    devices: tuple[DeviceProfile, ...]
    ping_interval: float
    poll_interval: float

    def address(self, role: str) -> str:
        """Address of the (first) host of ``role``."""
        return self.topology.by_role(role)[0].address

    def to_dict(self) -> dict:
        """The ward as JSON-ready data (what ``ward.json`` holds)."""
        profiles = {d.name: d for d in self.devices}
        hosts = []
        for h in self.topology.hosts:
            row: dict = {"name": h.name, "role": h.role, "address": h.address}
            if h.name in profiles:
                p = profiles[h.name]
                row |= {
                    "kind": p.kind,
                    "interval_s": p.interval,
                    "qos": p.qos,
                    "web_interval_s": p.web_interval,
                }
            hosts.append(row)
        return {
            "seed": self.seed,
            "subnet": str(self.topology.subnet),
            "hosts": hosts,
            "ping_interval_s": self.ping_interval,
            "poll_interval_s": self.poll_interval,
        }


def _seed_int(seed: int, field_name: str = "seed") -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ConfigError(f"{field_name} (--seed) must be an integer in [0, 2**32); got {seed!r} instead.")
    return seed


def ward_topology(seed: int, devices: int | None = None) -> Ward:
    """Draw a ward from ``seed``: addresses, devices, rates and attackers.

    Host numbers come from role ranges of ``10.77.0.0/24``: server 1-19, broker
    20-39, nurse station 40-59, devices 60-159, attackers 160-253. Device kinds
    are mixed (each kind once before any repeats), QoS 0 and 1 both occur when
    there are two devices or more.

    Parameters
    ----------
    seed:
        Seed of every draw; the same seed gives the same ward.
    devices:
        Number of devices (1-12); drawn from :data:`DEVICE_RANGE` when None.

    Returns
    -------
    Ward

    Raises
    ------
    ConfigError
        A bad seed or device count.

    Examples
    --------
    >>> ward_topology(11) == ward_topology(11)
    True
    """
    seed = _seed_int(seed)
    if devices is not None and (isinstance(devices, bool) or not 1 <= devices <= 12):
        raise ConfigError(f"devices (--devices) must be between 1 and 12; got {devices!r} instead.")
    rng = random.Random(f"ward-{seed}")
    n = devices if devices is not None else rng.randint(*DEVICE_RANGE)
    n_attackers = rng.randint(2, 3)
    kinds = list(KIND_PREFIX)
    rng.shuffle(kinds)
    chosen = (kinds * (n // len(kinds) + 1))[: min(n, len(kinds))]
    chosen += [rng.choice(list(KIND_PREFIX)) for _ in range(n - len(chosen))]
    qos = [rng.randint(0, 1) for _ in range(n)]
    if n >= 2 and len(set(qos)) == 1:
        qos[rng.randrange(n)] = 1 - qos[0]
    dev_numbers = sorted(rng.sample(range(60, 160), n))
    att_numbers = sorted(rng.sample(range(160, 254), n_attackers))
    net = LAB_SUBNET.network_address

    def addr(k: int) -> str:
        return str(net + k)

    hosts = [
        LabHost("server", addr(rng.randint(1, 19)), "server"),
        LabHost("broker", addr(rng.randint(20, 39)), "broker"),
        LabHost("station", addr(rng.randint(40, 59)), "station"),
    ]
    counts: dict[str, int] = {}
    profiles = []
    for kind, number, q in zip(chosen, dev_numbers, qos, strict=True):
        counts[kind] = counts.get(kind, 0) + 1
        name = f"{KIND_PREFIX[kind]}{counts[kind]}"
        lo, hi = INTERVAL_RANGES[kind]
        profiles.append(
            DeviceProfile(
                name, kind, round(rng.uniform(lo, hi), 2), q, round(rng.uniform(*WEB_INTERVAL_RANGE), 1)
            )
        )
        hosts.append(LabHost(name, addr(number), "device", kind))
    hosts += [LabHost(f"att{i + 1}", addr(k), "attacker") for i, k in enumerate(att_numbers)]
    return Ward(
        seed=seed,
        topology=Topology(tuple(hosts)),
        devices=tuple(profiles),
        ping_interval=round(rng.uniform(3.0, 6.0), 1),
        poll_interval=round(rng.uniform(2.0, 5.0), 1),
    )


# -- the attack plan --------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlannedAttack:
    """One attack of a timeline: its tool runs, attackers and target.

    Attributes
    ----------
    stem: dataset stem (e.g. ``TCP_IP-DoS-SYN``).
    tool: ``hping3``, ``nmap`` or ``mqtt_tools``.
    description: one line.
    steps: the tool runs, started together (one per attacker).
    attackers: the attackers' addresses, in step order.
    target: the target address (the lab subnet for a ping sweep).
    """

    stem: str
    tool: str
    description: str
    steps: tuple[AttackStep, ...]
    attackers: tuple[str, ...]
    target: str

    def check(self, topology: Topology) -> None:
        """Raise :class:`ConfigError` unless every target and address of every step is a lab address."""
        check_lab_target(self.target, topology.subnet)
        for a in self.attackers:
            check_lab_target(a, topology.subnet)
        for step in self.steps:
            step.check(topology)


def parse_attacks(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """Parse ``--attacks`` (comma-separated stems) and check every stem.

    Returns :data:`TIMELINE_ATTACKS` for None or an empty value.

    Raises
    ------
    ConfigError
        An unknown or repeated stem; the message names it and lists the valid stems.
    """
    if value is None:
        return TIMELINE_ATTACKS
    items = [value] if isinstance(value, str) else list(value)
    stems = tuple(s.strip() for item in items for s in item.split(",") if s.strip())
    if not stems:
        return TIMELINE_ATTACKS
    unknown = [s for s in stems if s not in TIMELINE_ATTACKS]
    if unknown:
        raise ConfigError(
            f"unknown attack(s) {unknown} in attacks (--attacks); valid stems: {', '.join(TIMELINE_ATTACKS)}."
        )
    repeated = sorted({s for s in stems if stems.count(s) > 1})
    if repeated:
        raise ConfigError(f"attacks (--attacks) names {repeated} more than once; name each attack once.")
    return stems


def _nmap_step(host: str, args: list[str], target: str) -> AttackStep:
    return AttackStep(host, ("nmap", "-n", *args, target), (target,), repeat=True)


def attack_plan(
    ward: Ward,
    attacks: tuple[str, ...] = TIMELINE_ATTACKS,
    seconds: float = 15.0,
    flood_pps: int = DEFAULT_FLOOD_PPS,
    python: str | None = None,
) -> tuple[PlannedAttack, ...]:
    """Turn attack stems into tool runs against targets drawn from the ward.

    Attackers and targets are drawn from ``ward.seed`` (so a ward always gets the
    same plan): scans hit a device or the broker (OS scan: the server or the
    broker), the SYN flood and the MQTT floods hit the broker, the UDP and ICMP
    floods hit a device. Floods run at ``flood_pps`` packets per second (the UDP
    DDoS at half of it from each of two attackers) for at most ``seconds``; the
    MQTT connect flood opens ``flood_pps / 5`` connections per second and the
    publish flood sends ``flood_pps / 2`` messages per second. Scans are re-run
    until ``seconds`` are up.

    Parameters
    ----------
    ward:
        The seeded ward (needs two attackers or more).
    attacks:
        Stems, from :data:`TIMELINE_ATTACKS`, in run order.
    seconds:
        Duration of each attack.
    flood_pps:
        Flood rate, packets per second.
    python:
        Interpreter that runs the lab's MQTT tools (this one by default).

    Returns
    -------
    tuple of PlannedAttack
        In the order of ``attacks``; every target already checked.

    Raises
    ------
    ConfigError
        An unknown stem, too few attackers, or a bad duration or rate.
    """
    attacks = parse_attacks(tuple(attacks))
    if not 0 < seconds <= 600:
        raise ConfigError(f"attack_seconds (--attack-seconds) must be in (0, 600]; got {seconds!r} instead.")
    if not 2 <= flood_pps <= 5000:
        raise ConfigError(f"flood_pps (--flood-pps) must be in [2, 5000]; got {flood_pps!r} instead.")
    python = python or sys.executable
    topo = ward.topology
    attackers = [h.name for h in topo.by_role("attacker")]
    if len(attackers) < 2:
        raise ConfigError(f"a timeline needs two attackers or more; the ward has {len(attackers)}.")
    addr = {h.name: h.address for h in topo.hosts}
    server, broker = ward.address("server"), ward.address("broker")
    devices = [h.address for h in topo.by_role("device")]
    rng = random.Random(f"attacks-{ward.seed}")
    # one draw per default attack, in a fixed order, so a subset gets the same choices
    one = {stem: rng.choice(attackers) for stem in TIMELINE_ATTACKS}
    pair = rng.sample(attackers, 2)
    port_target = rng.choice([*devices, broker])
    os_target = rng.choice([server, broker])
    udp_target, icmp_target = rng.choice(devices), rng.choice(devices)
    scan_rate = str(min(500, flood_pps))
    out: list[PlannedAttack] = []
    for stem in attacks:
        if stem == "Recon-Ping_Sweep":
            target = str(topo.subnet)
            args = ["-sn", "-PE", "--send-ip", "--max-rate", str(min(300, flood_pps))]
            steps = (_nmap_step(one[stem], args, target),)
            tool, desc = "nmap", f"nmap ICMP echo sweep of {target}"
        elif stem == "Recon-Port_Scan":
            target = port_target
            args = ["-Pn", "-sS", "-T4", "--max-retries", "1", "--max-rate", scan_rate, "-p", "1-2000"]
            steps = (_nmap_step(one[stem], args, target),)
            tool, desc = "nmap", f"nmap SYN scan of ports 1-2000 of {target}"
        elif stem == "Recon-OS_Scan":
            target = os_target
            args = ["-Pn", "-O", "--osscan-guess", "--max-os-tries", "1", "--max-rate", scan_rate]
            steps = (_nmap_step(one[stem], args, target),)
            tool, desc = "nmap", f"nmap OS detection of {target}"
        elif stem.startswith("TCP_IP-"):
            mode = stem.rsplit("-", 1)[1]
            target = {"SYN": broker, "UDP": udp_target, "ICMP": icmp_target}[mode]
            who = pair if "-DDoS-" in stem else [one[stem]]
            sc = _hping(stem, mode, who, target, max(1, flood_pps // len(who)), seconds)
            steps, tool, desc = sc.steps, sc.tool, sc.description
        else:  # MQTT floods
            target = broker
            name = "connect-flood" if stem.endswith("Connect_Flood") else "publish-flood"
            rate = max(1.0, flood_pps / (5 if name == "connect-flood" else 2))
            sc = _mqtt(stem, name, [one[stem]], broker, rate, seconds, python)
            steps, tool, desc = sc.steps, sc.tool, sc.description + f" on {broker}"
        planned = PlannedAttack(stem, tool, desc, tuple(steps), tuple(addr[s.host] for s in steps), target)
        planned.check(topo)
        out.append(planned)
    return tuple(out)


# -- configuration ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TimelineConfig:
    """Settings of one timeline run.

    Attributes
    ----------
    out_dir: folder for ``calib.pcap``, ``timeline.pcap``, ``timeline.json``, ``ward.json``, ``logs/``.
    seed: seed of the ward, the attack plan, the devices' readings.
    devices: number of devices; drawn from the seed when None.
    benign_seconds: length of the benign-only calibration capture.
    attacks: stems to run, in order (:data:`TIMELINE_ATTACKS` by default).
    attack_seconds: duration of each attack.
    gap_seconds: benign seconds after each attack.
    lead_seconds: benign seconds before the first attack; ``gap_seconds`` when None.
    flood_pps: flood rate (packets per second).
    max_packets: each tcpdump stops after this many packets.
    lab_id: fixed id in the namespace names (``iomtlab-<lab_id>-<host>``); random when None.
    """

    out_dir: Path
    seed: int = 0
    devices: int | None = None
    benign_seconds: float = 120.0
    attacks: tuple[str, ...] = TIMELINE_ATTACKS
    attack_seconds: float = 15.0
    gap_seconds: float = 20.0
    lead_seconds: float | None = None
    flood_pps: int = DEFAULT_FLOOD_PPS
    max_packets: int = 2_000_000
    lab_id: str | None = None

    def __post_init__(self) -> None:
        _seed_int(self.seed)
        if self.devices is not None and (isinstance(self.devices, bool) or not 1 <= self.devices <= 12):
            raise ConfigError(f"devices (--devices) must be between 1 and 12; got {self.devices!r} instead.")
        _check_range("benign_seconds", "--benign-seconds", self.benign_seconds, 0, 3600, open_low=True)
        _check_range("attack_seconds", "--attack-seconds", self.attack_seconds, 0, 600, open_low=True)
        _check_range("gap_seconds", "--gap-seconds", self.gap_seconds, 0, 600)
        if self.lead_seconds is not None:
            _check_range("lead_seconds", "--lead-seconds", self.lead_seconds, 0, 600)
        if (
            isinstance(self.flood_pps, bool)
            or not isinstance(self.flood_pps, int)
            or not 2 <= self.flood_pps <= 5000
        ):
            raise ConfigError(
                f"flood_pps (--flood-pps) must be an integer in [2, 5000]; got {self.flood_pps!r}."
            )
        if (
            isinstance(self.max_packets, bool)
            or not isinstance(self.max_packets, int)
            or self.max_packets < 1
        ):
            raise ConfigError(f"max_packets must be an integer >= 1; got {self.max_packets!r} instead.")
        object.__setattr__(self, "attacks", parse_attacks(self.attacks))

    @property
    def lead(self) -> float:
        """Benign seconds before the first attack."""
        return self.gap_seconds if self.lead_seconds is None else self.lead_seconds

    def expected_seconds(self) -> float:
        """About how long the run takes (calibration + timeline, without setup)."""
        return self.benign_seconds + self.lead + len(self.attacks) * (self.attack_seconds + self.gap_seconds)


def _check_range(
    name: str, flag: str, value: object, low: float, high: float, open_low: bool = False
) -> None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value == value  # not NaN
    if ok:
        ok = (value > low if open_low else value >= low) and value <= high  # type: ignore[operator]
    if not ok:
        bracket = "(" if open_low else "["
        raise ConfigError(
            f"{name} ({flag}) must be a number in {bracket}{low:g}, {high:g}]; got {value!r} instead."
        )


# -- running (root) ---------------------------------------------------------------------------------
@dataclass
class TimelineResult:
    """What a timeline run wrote.

    Attributes
    ----------
    out_dir: the output folder.
    entries: the ground truth, one dict per attack (what ``timeline.json`` holds).
    packets: packets captured, ``{"calib": n, "timeline": n}``.
    ward: the seeded ward.
    """

    out_dir: Path
    entries: list[dict] = field(default_factory=list)
    packets: dict[str, int] = field(default_factory=dict)
    ward: Ward | None = None


def _argv_for_record(argv: tuple[str, ...] | list[str]) -> list[str]:
    """A command line for the JSON files: the interpreter's absolute path becomes ``python``."""
    return ["python" if a == sys.executable else a for a in argv]


def _tools_needed(plan: tuple[PlannedAttack, ...]) -> tuple[str, ...]:
    tools = list(_BASE_TOOLS)
    for attack in plan:
        for step in attack.steps:
            if step.argv[0] != sys.executable and step.argv[0] not in tools:
                tools.append(step.argv[0])
    return tuple(tools)


def _start_benign(
    lab: Lab, ward: Ward, log_dir: Path, total: float, seed: int, cert: tuple[Path, Path] | None
) -> None:
    """Start the ward's benign traffic: broker, server, devices, ICMP monitor, dashboard poller."""
    from iomt_ids.lab.services import write_mosquitto_conf

    python = sys.executable
    server, broker = ward.address("server"), ward.address("broker")
    conf = write_mosquitto_conf(log_dir / "mosquitto.conf", broker)
    lab.start("broker", ["mosquitto", "-c", str(conf)], log_name="broker-mosquitto")
    lab.wait_listening("broker", 1883)
    # the ward's own server: the EHR/HTTP(S)/nurse-station services, with DNS answering the ward's addresses
    argv = [python, "-m", "iomt_ids.lab.timeline", "serve", "--bind", server, "--broker", broker]
    argv += ["--seconds", f"{total:g}"]
    if cert:
        argv += ["--cert", str(cert[0]), "--key", str(cert[1])]
    lab.start("server", argv, log_name="server-services")
    lab.wait_listening("server", 80)
    hosts = {h.name: h for h in ward.topology.hosts}
    for i, dev in enumerate(ward.devices):
        lab.start(
            dev.name,
            [python, "-m", "iomt_ids.lab.devices", "--name", dev.name, "--kind", dev.kind]
            + [
                "--broker",
                broker,
                "--server",
                server,
                "--seconds",
                f"{total:g}",
                "--seed",
                str(seed * 100 + i),
            ]
            + [
                "--interval",
                f"{dev.interval:g}",
                "--qos",
                str(dev.qos),
                "--web-interval",
                f"{dev.web_interval:g}",
            ],
            targets=[hosts[dev.name].address],
            log_name=f"{dev.name}-device",
        )
    watched = [h.address for h in ward.topology.by_role("device")] + [broker]
    lab.start(
        "server",
        [python, "-m", "iomt_ids.lab.timeline", "ping", "--targets", ",".join(watched)]
        + ["--interval", f"{ward.ping_interval:g}", "--seconds", f"{total:g}"],
        targets=watched,
        log_name="server-ping",
    )
    lab.start(
        "station",
        [python, "-m", "iomt_ids.lab.timeline", "poll", "--server", server]
        + ["--devices", ",".join(d.name for d in ward.devices)]
        + ["--interval", f"{ward.poll_interval:g}", "--seconds", f"{total:g}"],
        targets=[server],
        log_name="station-poll",
    )


def _run_attack(lab: Lab, attack: PlannedAttack, seconds: float, log_dir: Path) -> dict:
    """Run one attack's steps for ``seconds`` (re-running scans); return its ground-truth entry."""
    from iomt_ids.lab.runner import run_steps

    records = [
        {"host": s.host, "address": a, "argv": _argv_for_record(s.argv), "runs": 0, "returncodes": []}
        for s, a in zip(attack.steps, attack.attackers, strict=True)
    ]
    logs = [f"{attack.stem}-{s.host}-step{i}" for i, s in enumerate(attack.steps)]
    start = time.time()
    run_steps(
        lab, attack.steps, seconds, log_dir, f"attack {attack.stem}", records, logs, stop_when_done=True
    )
    end = time.time()
    return {
        "attack": attack.stem,
        "attackers": list(attack.attackers),
        "target": attack.target,
        "start": round(start, 6),
        "end": round(end, 6),
        "tool": attack.tool,
        "argv": records[0]["argv"],
        "description": attack.description,
        "steps": records,
    }


def count_attacker_packets(pcap: Path, entries: list[dict]) -> list[int]:
    """Per timeline entry, the packets in ``pcap`` sent by its attackers within its [start, end]."""
    import ipaddress

    from iomt_ids.features.dissect import SRC, dissect
    from iomt_ids.features.packets import read_capture

    counts = [0] * len(entries)
    spans = [
        (
            e["start"],
            e["end"],
            np.array([int(ipaddress.IPv4Address(a)) for a in e["attackers"]], dtype=np.int64),
        )
        for e in entries
    ]
    for batch in read_capture(pcap):
        rec, _ = dissect(batch.ts, batch.frames, batch.linktype)
        for i, (start, end, who) in enumerate(spans):
            inside = (rec.ts >= start) & (rec.ts <= end)
            if inside.any():
                counts[i] += int(np.isin(rec.ints[SRC][inside], who).sum())
    return counts


def _write_json(path: Path, body: object) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_timeline(config: TimelineConfig) -> TimelineResult:
    """Run a timeline in one lab: calibration capture, then attacks among benign traffic (root).

    Writes, under ``config.out_dir``: ``calib.pcap``, ``timeline.pcap``,
    ``timeline.json`` (list of ``{"attack", "attackers", "target", "start", "end",
    "tool", "argv", "description", "steps"}``; ``start`` is taken just before the
    first attack process starts, ``end`` right after the last one is stopped, both
    ``time.time()``), ``ward.json`` (the seeded ward and the run's settings) and
    ``logs/``. The lab is torn down however the run ends (SIGTERM included).

    Raises
    ------
    CaptureError
        Not root, a tool missing, the lab not isolated, tcpdump failing, or an
        attack tool exiting with an error.
    ConfigError
        A bad setting (see :class:`TimelineConfig`).
    """
    from iomt_ids.lab.capture import Capture
    from iomt_ids.lab.netns import Lab, check_environment
    from iomt_ids.lab.services import make_certificate

    ward = ward_topology(config.seed, config.devices)
    plan = attack_plan(ward, config.attacks, config.attack_seconds, config.flood_pps)
    check_environment(_tools_needed(plan))
    out_dir = Path(config.out_dir)
    log_dir = out_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    for old in log_dir.glob("*.log"):
        old.unlink()
    for name in ("timeline.json", "ward.json"):
        (out_dir / name).unlink(missing_ok=True)
    cert = make_certificate(log_dir / "tls")
    result = TimelineResult(out_dir, ward=ward)
    total = config.expected_seconds() + 60.0 + 2 * config.attack_seconds
    settings = {k: v for k, v in asdict(config).items() if k not in ("out_dir", "lab_id")}
    settings["attacks"] = list(config.attacks)
    settings["lead_seconds"] = config.lead
    run_info: dict = {
        "generator": "iomt-ids lab timeline",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.system()} {platform.release()} {platform.machine()}",
        "settings": settings,
    }
    logger.info(
        "timeline seed %d: %d devices, %d attackers, %d attacks, about %.0f s",
        ward.seed, len(ward.devices), len(ward.topology.by_role("attacker")), len(plan),
        config.expected_seconds(),
    )  # fmt: skip
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with Lab(ward.topology, log_dir, run_id=config.lab_id) as lab:
            problems = lab.isolation_problems()
            if problems:
                raise CaptureError(f"lab is not isolated, refusing to run: {'; '.join(problems)}")
            _start_benign(lab, ward, log_dir, total, config.seed, cert)
            time.sleep(min(3.0, config.benign_seconds))  # devices connect, first DNS lookups
            logger.info("calibration: %.0f s of benign traffic -> calib.pcap", config.benign_seconds)
            calib = Capture(lab, out_dir / "calib.pcap", config.max_packets)
            calib.start()
            t0 = time.time()
            time.sleep(config.benign_seconds)
            result.packets["calib"] = calib.stop()
            run_info["calib"] = {"pcap": "calib.pcap", "start": round(t0, 6), "end": round(time.time(), 6)}
            (log_dir / "hub-tcpdump.log").replace(log_dir / "hub-tcpdump-calib.log")
            logger.info("calibration done: %d packets", result.packets["calib"])
            timeline = Capture(lab, out_dir / "timeline.pcap", config.max_packets)
            timeline.start()
            t0 = time.time()
            logger.info("timeline: %.0f s of benign lead time", config.lead)
            time.sleep(config.lead)
            for k, attack in enumerate(plan, 1):
                logger.info(
                    "attack %d/%d %s from %s on %s (%.0f s)",
                    k, len(plan), attack.stem, ",".join(attack.attackers), attack.target,
                    config.attack_seconds,
                )  # fmt: skip
                entry = _run_attack(lab, attack, config.attack_seconds, log_dir)
                result.entries.append(entry)
                _write_json(out_dir / "timeline.json", result.entries)
                took = entry["end"] - entry["start"]
                logger.info("attack %s done in %.1f s; %.0f s benign", attack.stem, took, config.gap_seconds)
                time.sleep(config.gap_seconds)
            result.packets["timeline"] = timeline.stop()
            run_info["timeline"] = {
                "pcap": "timeline.pcap",
                "start": round(t0, 6),
                "end": round(time.time(), 6),
            }
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    run_info["packets"] = result.packets
    # the ground truth holds only attacks that really sent packets: check them in the capture
    silent = []
    for entry, n in zip(result.entries, count_attacker_packets(out_dir / "timeline.pcap", result.entries),
                        strict=True):  # fmt: skip
        entry["attacker_packets"] = n
        if n == 0:
            silent.append(entry["attack"])
    _write_json(out_dir / "timeline.json", result.entries)
    _write_json(out_dir / "ward.json", {**ward.to_dict(), "run": run_info})
    logger.info("timeline written to %s: %s packets", out_dir, result.packets)
    if silent:
        raise CaptureError(
            f"{out_dir / 'timeline.json'}: attack(s) {silent} sent no packet inside their interval (the tool "
            "failed or its namespace was removed, e.g. by 'iomt-ids lab clean' or another lab test running at "
            "the same time); the timeline is not a valid ground truth. Run it again on an otherwise idle machine."
        )
    return result


# -- benign helpers run inside the lab (python -m iomt_ids.lab.timeline ...) -------------------------
def _icmp_checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


def icmp_echo(ident: int, seq: int, payload: bytes) -> bytes:
    """An ICMP echo request (type 8) with its checksum.

    >>> icmp_echo(1, 1, b"")[:4].hex()
    '0800f7fd'
    """
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    csum = _icmp_checksum(header + payload)
    return struct.pack("!BBHHH", 8, 0, csum, ident, seq) + payload


def ping_loop(targets: list[str], interval: float, seconds: float) -> int:
    """Send one ICMP echo to each target every ``interval`` s for ``seconds`` (raw socket); return sent."""
    for t in targets:
        check_lab_target(t)
    ident = os.getpid() & 0xFFFF
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as sock:
        sock.settimeout(0.2)
        start = time.monotonic()
        seq = 0
        while time.monotonic() - start < seconds:
            seq = (seq + 1) & 0xFFFF
            for t in targets:
                payload = struct.pack("!d", time.time()) + bytes(range(24))
                try:
                    sock.sendto(icmp_echo(ident, seq, payload), (t, 0))
                    sent += 1
                except OSError as exc:
                    logger.debug("ping %s failed: %s", t, exc)
            next_round = start + seq * interval
            while (now := time.monotonic()) < next_round:
                sock.settimeout(max(0.01, min(0.5, next_round - now)))
                try:
                    sock.recv(2048)  # replies (and any other ICMP): drained, not needed
                except (TimeoutError, OSError):
                    pass
    return sent


def poll_loop(server: str, devices: list[str], interval: float, seconds: float) -> int:
    """Dashboard: every ``interval`` s resolve the EHR server and GET one device's status; return polls."""
    from iomt_ids.lab.dnsmsg import resolve

    check_lab_target(server)
    polls = 0
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        device = devices[polls % len(devices)] if devices else "ward"
        ip = resolve("ehr.ward.lab", server) or server
        check_lab_target(ip)
        req = urllib.request.Request(f"http://{ip}/status/{device}", headers={"Host": "ehr.ward.lab"})
        try:
            urllib.request.urlopen(req, timeout=2).read()
        except OSError as exc:
            logger.debug("poll of %s failed: %s", device, exc)
        polls += 1
        time.sleep(max(0.0, start + polls * interval - time.monotonic()))
    return polls


def ward_names(server: str, broker: str) -> dict[str, str]:
    """The names the ward's DNS server answers (the seeded server and broker addresses)."""
    for a in (server, broker):
        check_lab_target(a)
    return {"ehr.ward.lab": server, "updates.ward.lab": server, "mqtt.ward.lab": broker}


def ward_serve(bind: str, broker: str, cert: Path | None, key: Path | None, seconds: float) -> None:
    """Run the ward's EHR server for ``seconds``: :func:`iomt_ids.lab.services.serve` with DNS answering
    the seeded ward's server and broker addresses (:func:`ward_names`)."""
    from iomt_ids.lab.services import serve

    serve(bind, broker, cert, key, seconds, names=ward_names(bind, broker))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ward server (``serve``), ICMP monitor (``ping``), dashboard poller (``poll``)."""
    p = argparse.ArgumentParser(description="iomt-ids lab timeline helpers")
    sub = p.add_subparsers(dest="cmd", required=True)
    serve = sub.add_parser("serve", help="EHR server: DNS, HTTP(S), nurse-station subscriber")
    serve.add_argument("--bind", required=True)
    serve.add_argument("--broker", required=True)
    serve.add_argument("--cert", type=Path)
    serve.add_argument("--key", type=Path)
    serve.add_argument("--seconds", type=float, default=600.0)
    ping = sub.add_parser("ping", help="ICMP echo monitoring")
    ping.add_argument("--targets", required=True, help="comma-separated lab addresses")
    poll = sub.add_parser("poll", help="dashboard polling over DNS + HTTP")
    poll.add_argument("--server", required=True)
    poll.add_argument("--devices", default="")
    for sp in (ping, poll):
        sp.add_argument("--interval", type=float, default=5.0)
        sp.add_argument("--seconds", type=float, default=60.0)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    if a.cmd == "serve":
        ward_serve(a.bind, a.broker, a.cert, a.key, a.seconds)
        return
    if a.interval <= 0 or a.seconds <= 0:
        raise ConfigError(f"--interval and --seconds must be > 0; got {a.interval} and {a.seconds}.")
    if a.cmd == "ping":
        ping_loop([t for t in a.targets.split(",") if t], a.interval, a.seconds)
    else:
        poll_loop(a.server, [d for d in a.devices.split(",") if d], a.interval, a.seconds)


if __name__ == "__main__":
    main()
