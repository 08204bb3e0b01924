"""One short scenario end to end (root), and cleanup when a scenario fails."""

from __future__ import annotations

import ipaddress
import json
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import dpkt
import pytest

from iomt_ids.data.labels import parse_file_name
from iomt_ids.lab.attacks import AttackStep, Scenario
from iomt_ids.lab.netns import clean_stale_namespaces, lab_namespaces
from iomt_ids.lab.runner import LabRunConfig, run_lab, run_scenario
from iomt_ids.lab.topology import LAB_SUBNET

pytestmark = [pytest.mark.root, pytest.mark.usefixtures("needs_lab")]


def _ipv4_endpoints(pcap: Path) -> set[str]:
    seen: set[str] = set()
    with pcap.open("rb") as fh:
        for _, buf in dpkt.pcap.Reader(fh):
            eth = dpkt.ethernet.Ethernet(buf)
            if isinstance(eth.data, dpkt.ip.IP):
                seen |= {socket.inet_ntoa(eth.data.src), socket.inet_ntoa(eth.data.dst)}
            elif isinstance(eth.data, dpkt.arp.ARP):
                seen |= {socket.inet_ntoa(eth.data.spa), socket.inet_ntoa(eth.data.tpa)}
    return seen


def test_ping_sweep_end_to_end(tmp_path: Path) -> None:
    lab_id = "t" + uuid.uuid4().hex[:8]
    cfg = LabRunConfig(tmp_path, ("Recon-Ping_Sweep",), seconds=3, warmup=1, tail=0.5, lab_id=lab_id)
    (entry,) = run_lab(cfg)
    assert entry.status == "ok", entry.error
    pcap = tmp_path / "Recon-Ping_Sweep_lab.pcap"
    assert pcap.stat().st_size > 24 and entry.packets["total"] > 50 and entry.packets["arp"] > 0
    assert parse_file_name(pcap.name + ".csv").label == "Recon ping sweep"
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    (row,) = manifest["scenarios"]
    assert row["scenario"] == "Recon-Ping_Sweep" and row["packets"] == entry.packets
    assert row["steps"][0]["argv"][:2] == ["nmap", "-n"] and row["steps"][0]["runs"] >= 1
    assert row["capture"][0] == "tcpdump"
    # No packet in the capture has an address outside the lab, except the kernel's own IGMP
    # reports when an interface comes up (0.0.0.0 -> 224.0.0.22, link-local, never routed).
    link_local = ipaddress.IPv4Network("224.0.0.0/24")
    endpoints = {ipaddress.IPv4Address(a) for a in _ipv4_endpoints(pcap)}
    outside = {a for a in endpoints if a not in LAB_SUBNET and a not in link_local and str(a) != "0.0.0.0"}
    assert endpoints and not outside, sorted(outside)
    assert not [n for n in lab_namespaces() if lab_id in n]


def test_failing_scenario_is_recorded_and_cleaned_up(tmp_path: Path) -> None:
    lab_id = "t" + uuid.uuid4().hex[:8]
    broken = Scenario(
        "Recon-Port_Scan",
        "nmap",
        "nmap with an unknown option: exits with an error",
        (AttackStep("att1", ("nmap", "--no-such-option", "10.77.0.10"), ("10.77.0.10",)),),
    )
    entry = run_scenario(broken, LabRunConfig(tmp_path, seconds=3, warmup=0.5, tail=0, lab_id=lab_id))
    assert entry.status == "failed" and "exited with" in entry.error
    assert not [n for n in lab_namespaces() if lab_id in n]
    alive = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if b"--no-such-option" in cmdline.read_bytes():
                alive.append(cmdline)
        except OSError:
            pass
    assert alive == []


def test_sigterm_mid_run_tears_the_lab_down(tmp_path: Path) -> None:
    lab_id = "t" + uuid.uuid4().hex[:8]
    code = (
        "from iomt_ids.lab.runner import LabRunConfig, run_lab\n"
        f"run_lab(LabRunConfig({str(tmp_path)!r}, ('TCP_IP-DoS-ICMP',), seconds=60, lab_id={lab_id!r}))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 30
        while not [n for n in lab_namespaces() if lab_id in n] and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [n for n in lab_namespaces() if lab_id in n], "the lab never came up"
        time.sleep(2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) != 0
        left = [n for n in lab_namespaces() if lab_id in n]
    finally:
        if proc.poll() is None:
            proc.kill()
        clean_stale_namespaces(lab_id)  # only matters if the test failed
    assert left == []


def test_clean_removes_a_stale_namespace_and_its_processes() -> None:
    lab_id = "t" + uuid.uuid4().hex[:8]
    ns = f"iomtlab-{lab_id}-x"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    sleeper = subprocess.Popen(["ip", "netns", "exec", ns, "sleep", "300"])
    time.sleep(0.3)
    assert clean_stale_namespaces(lab_id) == [ns]
    assert sleeper.wait(timeout=5) != 0
    assert ns not in lab_namespaces()
