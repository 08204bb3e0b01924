"""Leak audit: planted leaks in generated data are found; the real sample shows the documented ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from iomt_ids.evaluation.audit import audit_dataset
from tests.conftest import synthetic_rows


def _leaky_dataset(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        for stem, w in (("Benign", 10), ("TCP_IP-DDoS-SYN1", 100), ("TCP_IP-DDoS-SYN2", 100)):
            n = 150
            df = synthetic_rows("v2", n, seed=hash((stem, split)) % 1000)
            df["Number"] = float(w)
            for flag, count in (("ack_flag_number", "ack_count"), ("syn_flag_number", "syn_count"),
                                ("fin_flag_number", "fin_count"), ("rst_flag_number", "rst_count")):  # fmt: skip
                df[flag] = rng.integers(0, w + 1, n) / w  # steps of 1/W
                df[count] = df[flag] * w
            for col in ("psh_flag_number", "ece_flag_number", "cwr_flag_number", "HTTP", "HTTPS", "DNS", "Telnet",
                        "SMTP", "SSH", "IRC", "TCP", "UDP", "DHCP", "ARP", "ICMP", "IGMP", "IPv"):  # fmt: skip
                df[col] = rng.integers(0, 11, n) / 10
            df["LLC"] = df["IPv"]
            df["Std"] = np.abs(df["Std"])
            df["Variance"] = df["Std"] ** 2
            df["Tot size"] = df["AVG"]
            df["Header_Length"] = np.cumsum(np.abs(df["Header_Length"]))  # cumulative: position leak
            df["SSH"] = 0.0  # constant
            df.to_csv(root / split / f"{stem}_{split}.pcap.csv", index=False)
    return root


def test_audit_finds_planted_leaks(tmp_path: Path) -> None:
    res = audit_dataset(_leaky_dataset(tmp_path / "ds"), tmp_path / "out")
    assert "SSH" in res.constant
    assert ("IPv", "LLC") in [tuple(p) for p in res.duplicates] and ("AVG", "Tot size") in [
        tuple(p) for p in res.duplicates
    ]
    assert res.formulas["Variance = Std^2 (share of rows)"] == 1.0
    assert res.formulas["ack_count = ack_flag_number x Number (share of rows)"] == 1.0
    assert res.window_sizes["Benign"] == {"W=10": 1.0} and res.window_sizes["DDoS"] == {"W=100": 1.0}
    # most 100-packet rows have a flag fraction off the 0.1 grid; no 10-packet row has
    assert res.granularity["W=100 rows revealed by a fraction not on the 0.1 grid"] > 0.9
    assert res.granularity["W<100 rows with such a fraction"] == 0.0
    assert res.probes["Number"]["window size"] == 1.0
    assert res.probes["syn_count"]["window size"] > res.probes["Rate"]["window size"]
    assert res.multi_capture_classes == {"TCP/IP DDoS SYN": ["TCP_IP-DDoS-SYN1", "TCP_IP-DDoS-SYN2"]}
    assert res.position_rho["Header_Length"] > 0.9 and res.position_rho["Rate"] < 0.3
    assert set(res.leaky) >= {"Number", "ack_count"} and set(res.redundant) == {"Tot size", "LLC", "Variance"}
    md = (tmp_path / "out" / "audit.md").read_text()
    assert "| Number |" in md and "Documented leaks" in md
    assert (tmp_path / "out" / "audit.json").stat().st_size > 0


def test_audit_cli(tmp_path: Path) -> None:
    from iomt_ids.cli import _register, app

    _register()
    data = _leaky_dataset(tmp_path / "ds")
    res = CliRunner().invoke(app, ["audit", "--data", str(data)])
    assert res.exit_code == 0, res.output
    assert "IPv = LLC" in res.output and "feature set 'robust' drops: Number" in res.output
    missing = CliRunner().invoke(app, ["audit", "--data", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


@pytest.mark.slow
def test_audit_on_real_sample_shows_the_documented_leaks(sample_dir: Path) -> None:
    res = audit_dataset(sample_dir)
    assert ("AVG", "Tot size") in [tuple(p) for p in res.duplicates]
    assert res.window_sizes["DDoS"]["W=100"] > 0.99 and res.window_sizes["MQTT"]["W=10"] > 0.99
    assert res.probes["Number"]["window size"] > 0.99
    assert set(res.multi_capture_classes) == {"TCP/IP DDoS ICMP", "TCP/IP DDoS UDP"}
