"""The lab's scenarios as data: which tool runs where, with which arguments, against whom.

One :class:`Scenario` per CICIoMT2024 class (18 attacks + Benign), named by its
dataset stem. Each step is a real tool (``hping3``, ``nmap``, ``arpspoof`` from
Debian, or the lab's own MQTT tools) with its full argument list, bounded in
packets (``-c``) and time, and paced (``-i u...``, ``--max-rate``, ``--rate``).
:func:`build_scenarios` checks every target, and every IPv4 literal in every
argument list, to be a lab address before any scenario can run.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from iomt_ids.data.labels import STEM_TO_CLASS19
from iomt_ids.exceptions import ConfigError
from iomt_ids.lab.topology import Topology, check_lab_target, find_ip_literals

__all__ = [
    "DDOS_ATTACKERS",
    "FLOOD_PPS_DDOS",
    "FLOOD_PPS_DOS",
    "AttackStep",
    "Scenario",
    "build_scenarios",
    "scenario_names",
]

#: Packets per second of one hping3 flood (DoS, one attacker).
FLOOD_PPS_DOS = 2000
#: Packets per second of each of the DDoS attackers.
FLOOD_PPS_DDOS = 1000
#: Number of attacker namespaces in a DDoS.
DDOS_ATTACKERS = 4

_HPING_MODES: dict[str, list[str]] = {
    "SYN": ["-S", "-p", "1883"],
    "TCP": ["-P", "-A", "-p", "1883", "-d", "64"],
    "UDP": ["--udp", "-p", "5683", "-d", "64"],
    "ICMP": ["--icmp", "-d", "56"],
}
#: MQTT tool -> (DoS rate, rate of each DDoS attacker), per second.
_MQTT_RATES = {"connect-flood": (120.0, 40.0), "publish-flood": (400.0, 120.0)}


@dataclass(frozen=True)
class AttackStep:
    """One tool run from one attacker namespace.

    Attributes
    ----------
    host: the attacker host name (e.g. ``"att1"``).
    argv: the full command line.
    targets: the lab addresses or networks the tool is aimed at.
    repeat: run it again when it ends early, until the scenario's time is up (short scans).
    """

    host: str
    argv: tuple[str, ...]
    targets: tuple[str, ...]
    repeat: bool = False

    def check(self, topology: Topology) -> None:
        """Raise :class:`ConfigError` unless every target and address in ``argv`` is a lab address."""
        topology.host(self.host)
        if not self.targets:
            raise ConfigError(f"attack step {self.argv[:2]} on {self.host!r} names no target.")
        for t in (*self.targets, *find_ip_literals(self.argv)):
            check_lab_target(t, topology.subnet)


@dataclass(frozen=True)
class Scenario:
    """One lab scenario, named like the dataset (``stem``).

    Attributes
    ----------
    stem: dataset stem, a key of ``STEM_TO_CLASS19`` (e.g. ``TCP_IP-DDoS-SYN``).
    tool: the tool that makes the attack (``hping3``, ``nmap``, ``arpspoof``, ``mqtt_tools``, "").
    description: one line.
    steps: the attack steps, started together (none for Benign).
    window: packet window the dataset uses to extract this class (100 for TCP/IP floods, else 10).
    duration_factor: multiplies the run's seconds (Benign runs longer to have enough rows).
    """

    stem: str
    tool: str
    description: str
    steps: tuple[AttackStep, ...] = field(default=())
    window: int = 10
    duration_factor: float = 1.0

    @property
    def label(self) -> str:
        """The 19-class label."""
        return STEM_TO_CLASS19[self.stem]

    @property
    def pcap_name(self) -> str:
        """File name of the capture, e.g. ``TCP_IP-DDoS-SYN_lab.pcap``."""
        return f"{self.stem}_lab.pcap"

    def check(self, topology: Topology) -> None:
        """Check the stem and every step's targets."""
        if self.stem not in STEM_TO_CLASS19:
            raise ConfigError(f"scenario stem {self.stem!r} is not a dataset stem {sorted(STEM_TO_CLASS19)}.")
        for step in self.steps:
            step.check(topology)


def _hping(stem: str, mode: str, attackers: list[str], target: str, pps: int, seconds: float) -> Scenario:
    count = max(1, int(pps * seconds))
    interval = f"u{max(1, 1_000_000 // pps)}"
    steps = tuple(
        AttackStep(
            h,
            ("hping3", "-q", "-n", *_HPING_MODES[mode], "-i", interval, "-c", str(count), target),
            (target,),
        )
        for h in attackers
    )
    kind = "DDoS" if len(attackers) > 1 else "DoS"
    return Scenario(
        stem,
        "hping3",
        f"{mode} flood ({kind}) from {len(attackers)} attacker(s) at {pps} pkt/s each on {target}",
        steps,
        window=100,
    )


def _mqtt(
    stem: str, tool: str, attackers: list[str], broker: str, rate: float, seconds: float, python: str
) -> Scenario:
    count = max(1, int(rate * seconds))
    steps = tuple(
        AttackStep(
            h,
            (python, "-m", "iomt_ids.lab.mqtt_tools", tool, "--broker", broker, "--rate", f"{rate:g}")
            + ("--count", str(count), "--seconds", f"{seconds:g}", "--seed", str(i)),
            (broker,),
        )
        for i, h in enumerate(attackers)
    )
    return Scenario(
        stem, "mqtt_tools", f"MQTT {tool} from {len(attackers)} attacker(s) at {rate:g}/s each", steps
    )


def _nmap(stem: str, args: list[str], targets: list[str], description: str) -> Scenario:
    step = AttackStep("att1", ("nmap", "-n", *args, *targets), tuple(targets), repeat=True)
    return Scenario(stem, "nmap", description, (step,))


def build_scenarios(topology: Topology, seconds: float, python: str | None = None) -> dict[str, Scenario]:
    """Return every lab scenario, keyed by stem, with arguments sized for ``seconds``.

    Parameters
    ----------
    topology:
        The lab; attackers are its ``attacker`` hosts (DDoS uses up to :data:`DDOS_ATTACKERS`).
    seconds:
        Attack duration; packet counts are rate x seconds.
    python:
        Interpreter that runs the lab's MQTT tools (this one by default).

    Raises
    ------
    ConfigError
        A bad duration, too few attackers, or a target that is not a lab address.
    """
    if not 0 < seconds <= 3600:
        raise ConfigError(f"seconds must be in (0, 3600]; got {seconds!r} instead.")
    python = python or sys.executable
    attackers = [h.name for h in topology.by_role("attacker")]
    if not attackers:
        raise ConfigError("the topology has no attacker host.")
    ddos = attackers[:DDOS_ATTACKERS]
    one = attackers[:1]
    broker = topology.by_role("broker")[0].address
    server = topology.by_role("server")[0].address
    devices = [h.address for h in topology.by_role("device")]
    hosts = [server, broker, *devices]
    out: list[Scenario] = [Scenario("Benign", "", "device telemetry, DNS, HTTP(S) only", duration_factor=5.0)]
    out.append(
        Scenario(
            "ARP_Spoofing",
            "arpspoof",
            "arpspoof poisoning each device and the broker (both directions)",
            tuple(
                AttackStep("att1", ("arpspoof", "-i", "eth0", "-t", dev, "-r", broker), (dev, broker))
                for dev in devices
            ),
        )
    )
    for tool, stem_part in (("connect-flood", "Connect_Flood"), ("publish-flood", "Publish_Flood")):
        dos_rate, ddos_rate = _MQTT_RATES[tool]
        out.append(_mqtt(f"MQTT-DDoS-{stem_part}", tool, ddos, broker, ddos_rate, seconds, python))
        out.append(_mqtt(f"MQTT-DoS-{stem_part}", tool, one, broker, dos_rate, seconds, python))
    out.append(_mqtt("MQTT-Malformed_Data", "malformed", one, broker, 30.0, seconds, python))
    out.append(
        _nmap(
            "Recon-OS_Scan",
            ["-Pn", "-O", "--osscan-guess", "--max-os-tries", "1", "--max-rate", "500"],
            hosts,
            "nmap OS detection of the server, broker and devices",
        )
    )
    out.append(
        _nmap(
            "Recon-Ping_Sweep",
            ["-sn", "-PE", "--send-ip", "--max-rate", "300"],
            [str(topology.subnet)],
            "nmap ICMP echo sweep of the lab subnet",
        )
    )
    out.append(
        _nmap(
            "Recon-Port_Scan",
            ["-Pn", "-sS", "-T4", "--max-retries", "1", "--max-rate", "500", "-p", "1-2000"],
            hosts,
            "nmap SYN scan of ports 1-2000 of the server, broker and devices",
        )
    )
    out.append(
        _nmap(
            "Recon-VulScan",
            ["-Pn", "-sV", "--script", "vuln and not external and not dos", "--script-timeout", "15s"]
            + ["--host-timeout", "60s", "-p", "53,80,443,1883"],
            [server, broker],
            "nmap version detection and NSE vuln scripts (no external, no dos) on the server and broker",
        )
    )
    for kind, who, pps in (("DDoS", ddos, FLOOD_PPS_DDOS), ("DoS", one, FLOOD_PPS_DOS)):
        for mode in ("ICMP", "SYN", "TCP", "UDP"):
            out.append(_hping(f"TCP_IP-{kind}-{mode}", mode, who, broker, pps, seconds))
    by_stem = {s.stem: s for s in out}
    scenarios = {stem: by_stem[stem] for stem in STEM_TO_CLASS19}  # dataset order
    for s in scenarios.values():
        s.check(topology)
    return scenarios


def scenario_names() -> tuple[str, ...]:
    """The stems of all lab scenarios, in dataset order."""
    return tuple(STEM_TO_CLASS19)
