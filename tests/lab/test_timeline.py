"""Timeline scenarios without root: the seeded ward, the attack plan, config checks, shipped timelines."""

from __future__ import annotations

import ipaddress
import json
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import iomt_ids
from iomt_ids.cli import _register, app
from iomt_ids.exceptions import ConfigError
from iomt_ids.features import read_capture
from iomt_ids.lab.devices import DEVICE_KINDS
from iomt_ids.lab.timeline import (
    DEVICE_RANGE,
    TIMELINE_ATTACKS,
    TimelineConfig,
    attack_plan,
    icmp_echo,
    parse_attacks,
    ward_names,
    ward_topology,
)
from iomt_ids.lab.topology import LAB_SUBNET, check_lab_target, find_ip_literals

TIMELINES = Path(iomt_ids.__file__).parent / "datasets" / "timelines"
SHIPPED = ("seed11", "seed22")
#: Seconds after an attack's end in which its attackers' kernels may still send (RST; ARP retries 1 s apart).
SLACK = 3.0


# -- the seeded ward ------------------------------------------------------------------------------
def test_ward_is_deterministic_per_seed_and_differs_across_seeds() -> None:
    a, b = ward_topology(11), ward_topology(11)
    assert a == b and a.to_dict() == b.to_dict()
    c = ward_topology(22)
    assert a.to_dict() != c.to_dict()
    addrs = lambda w: [h.address for h in w.topology.hosts]  # noqa: E731
    assert addrs(a) != addrs(c)
    assert [d.interval for d in a.devices] != [d.interval for d in c.devices]


@pytest.mark.parametrize("seed", range(40))
def test_every_ward_address_is_a_unique_lab_address(seed: int) -> None:
    ward = ward_topology(seed)
    addrs = [h.address for h in ward.topology.hosts]
    assert len(set(addrs)) == len(addrs)
    for a in addrs:
        assert check_lab_target(a) in LAB_SUBNET
    roles = Counter(h.role for h in ward.topology.hosts)
    assert roles["server"] == roles["broker"] == roles["station"] == 1
    assert roles["attacker"] >= 2
    assert DEVICE_RANGE[0] <= roles["device"] <= DEVICE_RANGE[1] == 6
    assert all(d.kind in DEVICE_KINDS and d.interval > 0 and d.qos in (0, 1) for d in ward.devices)
    assert {d.qos for d in ward.devices} == {0, 1}  # mixed QoS
    kinds = [d.kind for d in ward.devices]
    assert len(set(kinds)) == min(len(kinds), len(DEVICE_KINDS))  # mixed kinds
    for v in ward_names(ward.address("server"), ward.address("broker")).values():
        assert v in addrs


def test_device_count_comes_from_the_seed_unless_given() -> None:
    counts = {len(ward_topology(s).devices) for s in range(60)}
    assert counts == set(range(DEVICE_RANGE[0], DEVICE_RANGE[1] + 1))
    assert len(ward_topology(3, devices=9).devices) == 9
    assert len(ward_topology(3, devices=1).devices) == 1


@pytest.mark.parametrize("devices", [0, 13, -1])
def test_bad_device_count_is_refused(devices: int) -> None:
    with pytest.raises(ConfigError, match=r"devices \(--devices\)"):
        ward_topology(1, devices)


# -- the attack plan ------------------------------------------------------------------------------
def test_attack_plan_order_tools_and_attackers() -> None:
    ward = ward_topology(11)
    attacker_addrs = {h.address for h in ward.topology.by_role("attacker")}
    plan = attack_plan(ward, seconds=15, flood_pps=500)
    assert tuple(a.stem for a in plan) == TIMELINE_ATTACKS
    tools = {a.stem: a.tool for a in plan}
    assert tools["Recon-Ping_Sweep"] == tools["Recon-Port_Scan"] == tools["Recon-OS_Scan"] == "nmap"
    assert tools["TCP_IP-DoS-SYN"] == tools["TCP_IP-DDoS-UDP"] == tools["TCP_IP-DoS-ICMP"] == "hping3"
    assert tools["MQTT-DoS-Connect_Flood"] == tools["MQTT-DoS-Publish_Flood"] == "mqtt_tools"
    by = {a.stem: a for a in plan}
    udp = by["TCP_IP-DDoS-UDP"]
    assert len(udp.attackers) == 2 and len(set(udp.attackers)) == 2 and len(udp.steps) == 2
    assert all("--udp" in s.argv for s in udp.steps)
    for a in plan:
        if a.stem != "TCP_IP-DDoS-UDP":
            assert len(a.attackers) == 1
        assert set(a.attackers) <= attacker_addrs
        check_lab_target(a.target)
        for step in a.steps:
            for lit in find_ip_literals(step.argv):
                check_lab_target(lit)
    assert by["Recon-Ping_Sweep"].target == str(LAB_SUBNET) and "-sn" in by["Recon-Ping_Sweep"].steps[0].argv
    assert "-sS" in by["Recon-Port_Scan"].steps[0].argv and "-O" in by["Recon-OS_Scan"].steps[0].argv
    assert all(s.repeat for a in plan if a.tool == "nmap" for s in a.steps)
    broker = ward.address("broker")
    assert by["TCP_IP-DoS-SYN"].target == broker and by["MQTT-DoS-Publish_Flood"].target == broker
    devices = {h.address for h in ward.topology.by_role("device")}
    assert by["TCP_IP-DDoS-UDP"].target in devices and by["TCP_IP-DoS-ICMP"].target in devices
    syn = by["TCP_IP-DoS-SYN"].steps[0].argv
    assert syn[syn.index("-c") + 1] == "7500" and syn[syn.index("-i") + 1] == "u2000"  # 500/s for 15 s
    assert udp.steps[0].argv[udp.steps[0].argv.index("-c") + 1] == "3750"  # 250/s each


def test_attack_plan_is_seeded_and_a_subset_keeps_its_choices() -> None:
    ward = ward_topology(7)
    full = {a.stem: a for a in attack_plan(ward)}
    assert attack_plan(ward) == attack_plan(ward)
    sub = attack_plan(ward, ("TCP_IP-DoS-ICMP", "Recon-Ping_Sweep"))
    assert [a.stem for a in sub] == ["TCP_IP-DoS-ICMP", "Recon-Ping_Sweep"]
    assert all(a == full[a.stem] for a in sub)


def test_parse_attacks_and_unknown_stem() -> None:
    assert parse_attacks(None) == parse_attacks("") == TIMELINE_ATTACKS
    assert parse_attacks("Recon-OS_Scan, TCP_IP-DoS-SYN") == ("Recon-OS_Scan", "TCP_IP-DoS-SYN")
    with pytest.raises(ConfigError, match=r"unknown attack\(s\) \['Nope'\].*valid stems: Recon-Ping_Sweep"):
        parse_attacks("Recon-OS_Scan,Nope")
    with pytest.raises(ConfigError, match="more than once"):
        parse_attacks("Recon-OS_Scan,Recon-OS_Scan")


def test_cli_unknown_attack_is_a_clear_error(tmp_path: Path) -> None:
    _register()
    result = CliRunner().invoke(app, ["lab", "timeline", "--out", str(tmp_path), "--attacks", "Bogus-Attack"])
    assert result.exit_code == 2
    assert "unknown attack(s) ['Bogus-Attack']" in result.output and "MQTT-DoS-Publish_Flood" in result.output
    assert not list(tmp_path.iterdir())


# -- configuration --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("benign_seconds", 0, "--benign-seconds"),
        ("benign_seconds", -5.0, "--benign-seconds"),
        ("attack_seconds", 0, "--attack-seconds"),
        ("attack_seconds", 601, "--attack-seconds"),
        ("gap_seconds", -1, "--gap-seconds"),
        ("gap_seconds", float("nan"), "--gap-seconds"),
        ("lead_seconds", -1, "--lead-seconds"),
        ("devices", 0, "--devices"),
        ("seed", -1, "--seed"),
        ("flood_pps", 1, "--flood-pps"),
        ("flood_pps", 2.5, "--flood-pps"),
        ("attacks", ("Nope",), "--attacks"),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, field: str, value: object, flag: str) -> None:
    with pytest.raises(ConfigError, match=rf"{field} \({flag}\)"):
        TimelineConfig(tmp_path, **{field: value})


def test_config_defaults() -> None:
    cfg = TimelineConfig(Path("x"))
    assert cfg.attacks == TIMELINE_ATTACKS and cfg.benign_seconds == 120 and cfg.gap_seconds == 20
    assert cfg.attack_seconds == 15 and cfg.lead == 20
    assert cfg.expected_seconds() == 120 + 20 + 8 * (15 + 20)


def test_icmp_echo_checksum_is_valid() -> None:
    pkt = icmp_echo(0x1234, 7, b"abcdefghijk")
    words = struct.unpack(f"!{(len(pkt) + 1) // 2}H", pkt + b"\x00" * (len(pkt) % 2))
    total = sum(words)
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    assert total == 0xFFFF and pkt[0] == 8


# -- the shipped timelines ------------------------------------------------------------------------
def _endpoints(path: Path) -> tuple[np.ndarray, list[tuple[str, str, int]]]:
    """Timestamps and (src, dst, IP protocol or -1 for ARP) of every IPv4/ARP frame of a capture."""
    ts_all, rows = [], []
    with read_capture(path) as reader:
        for batch in reader:
            assert batch.linktype == 1
            for ts, frame in zip(batch.ts, batch.frames, strict=True):
                etype = frame[12:14]
                if etype == b"\x08\x00":
                    rows.append(
                        (
                            str(ipaddress.IPv4Address(frame[26:30])),
                            str(ipaddress.IPv4Address(frame[30:34])),
                            frame[23],
                        )
                    )
                elif etype == b"\x08\x06":
                    rows.append(
                        (
                            str(ipaddress.IPv4Address(frame[28:32])),
                            str(ipaddress.IPv4Address(frame[38:42])),
                            -1,
                        )
                    )
                else:
                    continue
                ts_all.append(ts)
    return np.asarray(ts_all), rows


@pytest.fixture(scope="module", params=SHIPPED)
def shipped(request: pytest.FixtureRequest) -> dict:
    folder = TIMELINES / request.param
    for name in ("calib.pcap.gz", "timeline.pcap.gz", "timeline.json", "ward.json"):
        assert (folder / name).is_file(), f"{folder / name} is missing"
    ward = json.loads((folder / "ward.json").read_text())
    return {
        "folder": folder,
        "entries": json.loads((folder / "timeline.json").read_text()),
        "ward": ward,
        "attackers": {h["address"] for h in ward["hosts"] if h["role"] == "attacker"},
        "calib": _endpoints(folder / "calib.pcap.gz"),
        "timeline": _endpoints(folder / "timeline.pcap.gz"),
    }


def test_shipped_readme_exists() -> None:
    text = (TIMELINES / "README.md").read_text()
    assert "iomt-ids lab timeline" in text and "CICIoMT2024" in text


def test_shipped_ward_matches_the_code(shipped: dict) -> None:
    ward = shipped["ward"]
    body = {k: v for k, v in ward.items() if k != "run"}
    assert body == ward_topology(ward["seed"]).to_dict()
    assert ward["run"]["settings"]["seed"] == ward["seed"]


def test_shipped_timeline_json_schema(shipped: dict) -> None:
    entries = shipped["entries"]
    assert isinstance(entries, list) and [e["attack"] for e in entries] == list(TIMELINE_ATTACKS)
    prev_end = 0.0
    for e in entries:
        assert {"attack", "attackers", "target", "start", "end", "tool", "argv"} <= set(e)
        assert isinstance(e["start"], float) and isinstance(e["end"], float)
        assert prev_end < e["start"] < e["end"]
        prev_end = e["end"]
        assert e["tool"] in ("hping3", "nmap", "mqtt_tools")
        assert isinstance(e["argv"], list) and all(isinstance(a, str) for a in e["argv"])
        assert not any(a.startswith("/") for s in e.get("steps", [e]) for a in s["argv"])  # no absolute paths
        assert e["attackers"] and set(e["attackers"]) <= shipped["attackers"]
        for a in e["attackers"]:
            assert check_lab_target(a) in LAB_SUBNET
        check_lab_target(e["target"])
    assert len(next(e for e in entries if e["attack"] == "TCP_IP-DDoS-UDP")["attackers"]) == 2


def test_shipped_captures_hold_only_lab_addresses(shipped: dict) -> None:
    for name in ("calib", "timeline"):
        _, rows = shipped[name]
        assert rows
        for src, dst, proto in rows:
            if (src, dst, proto) == ("0.0.0.0", "224.0.0.22", 2):  # the kernel's IGMPv3 report
                continue
            # inside the lab subnet; the ping sweep also probes its network and broadcast addresses
            assert ipaddress.IPv4Address(src) in LAB_SUBNET and ipaddress.IPv4Address(dst) in LAB_SUBNET


def test_shipped_calibration_has_no_attacker(shipped: dict) -> None:
    _, rows = shipped["calib"]
    assert not [r for r in rows if r[0] in shipped["attackers"] or r[1] in shipped["attackers"]]


def test_shipped_attacker_packets_lie_in_their_intervals(shipped: dict) -> None:
    ts, rows = shipped["timeline"]
    entries = shipped["entries"]
    src = np.asarray([r[0] for r in rows])
    from_attackers = np.isin(src, list(shipped["attackers"]))
    assert ts.min() < entries[0]["start"] and ts.max() > entries[-1]["end"]
    covered = np.zeros(len(ts), dtype=bool)
    for e in entries:
        inside = (ts >= e["start"]) & (ts <= e["end"])
        mine = inside & np.isin(src, e["attackers"])
        assert mine.sum() >= 50, (e["attack"], int(mine.sum()))
        for a in e["attackers"]:  # each attacker of a DDoS takes part
            assert (inside & (src == a)).sum() >= 20, (e["attack"], a)
        covered |= (ts >= e["start"]) & (ts <= e["end"] + SLACK)
    stray = from_attackers & ~covered
    assert stray.sum() <= 0.001 * from_attackers.sum(), int(stray.sum())


def test_shipped_timelines_hold_attacker_packets_in_every_interval() -> None:
    """The post-run check `lab timeline` applies: every attack of the ground truth really sent packets."""
    from iomt_ids.lab.timeline import count_attacker_packets

    root = Path(__file__).resolve().parents[2] / "src" / "iomt_ids" / "datasets" / "timelines"
    for folder in sorted(root.glob("seed*")):
        entries = json.loads((folder / "timeline.json").read_text())
        counts = count_attacker_packets(folder / "timeline.pcap.gz", entries)
        assert len(counts) == 8 and min(counts) > 50, (folder.name, counts)
