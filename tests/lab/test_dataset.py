"""Lab run -> feature CSVs (no root): dataset names, per-class windows, loadable rows."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import dpkt
import pytest

from iomt_ids.data.labels import parse_file_name
from iomt_ids.data.loader import load_csv_files
from iomt_ids.exceptions import DatasetNotFoundError
from iomt_ids.lab.dataset import extract_run, window_for


def _write_syn_pcap(path: Path, n: int) -> None:
    with path.open("wb") as fh:
        w = dpkt.pcap.Writer(fh)
        for i in range(n):
            tcp = dpkt.tcp.TCP(sport=1024 + i, dport=1883, flags=dpkt.tcp.TH_SYN, seq=i)
            ip = dpkt.ip.IP(
                src=socket.inet_aton("10.77.0.101"), dst=socket.inet_aton("10.77.0.10"), p=6, data=tcp
            )
            ip.len = len(ip)
            eth = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, type=0x0800, data=ip)
            w.writepkt(bytes(eth), ts=1_700_000_000 + i * 0.001)


def test_extract_run_names_and_windows(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    _write_syn_pcap(run / "TCP_IP-DoS-SYN_lab.pcap", 250)
    _write_syn_pcap(run / "Recon-Port_Scan_lab.pcap", 25)
    manifest = {
        "config": {"out_dir": str(run)},
        "scenarios": [
            {"scenario": "TCP_IP-DoS-SYN", "pcap": "TCP_IP-DoS-SYN_lab.pcap", "status": "ok"},
            {"scenario": "Recon-Port_Scan", "pcap": "Recon-Port_Scan_lab.pcap", "status": "ok"},
            {"scenario": "Recon-VulScan", "pcap": "Recon-VulScan_lab.pcap", "status": "failed"},
        ],
    }
    (run / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "csv"
    entries = extract_run(run, out)
    assert [(e.get("window"), e.get("rows")) for e in entries] == [(100, 3), (10, 3), (None, None)]
    csvs = sorted(out.glob("*.pcap.csv"))
    assert [p.name for p in csvs] == ["Recon-Port_Scan_lab.pcap.csv", "TCP_IP-DoS-SYN_lab.pcap.csv"]
    assert parse_file_name(csvs[1]).label == "TCP/IP DoS SYN"
    data = load_csv_files(csvs)
    assert len(data) == 6 and data.release == "v2"
    assert sorted(set(data.frame["Number"])) == [5.0, 10.0, 50.0, 100.0]
    shipped = json.loads((out / "manifest.json").read_text())
    assert shipped["config"]["out_dir"] == "run"


def test_extract_run_without_manifest_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="iomt-ids lab run"):
        extract_run(tmp_path, tmp_path / "out")


def test_window_for_follows_the_dataset() -> None:
    assert window_for("TCP_IP-DDoS-UDP") == 100 and window_for("Benign") == 10
