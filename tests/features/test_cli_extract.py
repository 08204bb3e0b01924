"""``iomt-ids extract`` through Typer's CliRunner (and the real entry point for exit codes)."""

from __future__ import annotations

import sys
from pathlib import Path

import dpkt
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from iomt_ids.cli import _register, app, main
from iomt_ids.features import V1_COLUMNS, V2_COLUMNS, detect_release, extract_file

from .pcapgen import T0, arp_frame, ipv6_frame, tcp_frame, write_pcap, write_pcap_dpkt

runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def _commands() -> None:
    _register()


@pytest.fixture
def capture(tmp_path: Path) -> Path:
    packets = [(T0 + i * 0.001, tcp_frame(flags=dpkt.tcp.TH_SYN)) for i in range(100)]
    packets += [(T0 + 0.1, arp_frame())] * 5 + [(T0 + 0.2, ipv6_frame())]
    return write_pcap_dpkt(tmp_path / "Sample_test.pcap", packets)


def test_extract_writes_the_dataset_csv(tmp_path: Path, capture: Path) -> None:
    out = tmp_path / "features.csv"
    result = runner.invoke(app, ["extract", str(capture), "--window", "10", "-o", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "106 packets, 105 accepted" in result.output and "ipv6 1" in result.output
    assert "11 windows of 10 (v2)" in result.output and "packets/s" in result.output
    header = out.read_text().splitlines()[0]
    assert header == ",".join(V2_COLUMNS)
    assert detect_release(header.split(","), str(out)) == "v2"
    back = pd.read_csv(out)
    expected, _ = extract_file(capture, window=10, progress=False)
    np.testing.assert_array_equal(back.to_numpy(dtype=np.float64), expected.to_numpy())  # floats round-trip
    lines = out.read_text().splitlines()
    last = dict(zip(V2_COLUMNS, lines[-1].split(","), strict=True))
    assert last["Rate"] == "inf" and last["Number"] == "5" and last["Protocol Type"] == "0"
    assert last["Std"] == "0.0" and last["ARP"] == "1.0"


def test_extract_v1_and_window_100(tmp_path: Path, capture: Path) -> None:
    out = tmp_path / "v1.csv"
    result = runner.invoke(
        app, ["extract", str(capture), "-w", "100", "-o", str(out), "--release", "v1", "-q"]
    )
    assert result.exit_code == 0, result.output
    back = pd.read_csv(out)
    assert tuple(back.columns) == V1_COLUMNS and len(back) == 2
    expected, _ = extract_file(capture, window=100, release="v1", progress=False)
    np.testing.assert_array_equal(back.to_numpy(dtype=np.float64), expected.to_numpy())
    assert back["Protocol Type"].iloc[0] == pytest.approx(6 * 100 / 100) and back["Number"].iloc[0] == 9.5


def test_extract_zero_packets_writes_header_only(tmp_path: Path) -> None:
    empty = write_pcap(tmp_path / "empty.pcap", [])
    out = tmp_path / "e.csv"
    result = runner.invoke(app, ["extract", str(empty), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    assert "0 packets" in result.output and "0 windows" in result.output
    assert out.read_text().strip() == ",".join(V2_COLUMNS)


def test_extract_unsupported_link_type_raises_capture_error(tmp_path: Path) -> None:
    ppp = write_pcap(tmp_path / "ppp.pcap", [(1, 0, b"\xff\x03" + bytes(40))], linktype=9)
    result = runner.invoke(app, ["extract", str(ppp), "-o", str(tmp_path / "x.csv"), "-q"])
    assert result.exit_code == 2
    assert "ppp.pcap: unsupported link type 9" in result.output
    assert not (tmp_path / "x.csv").exists()


def test_entry_point_exits_2_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # noqa: ANN001
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"this is not a capture")
    monkeypatch.setattr(sys, "argv", ["iomt-ids", "extract", str(junk), "-o", str(tmp_path / "j.csv"), "-q"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "junk.pcap: not a pcap or pcapng capture" in err[0]


def test_extract_bad_window_is_a_usage_error(tmp_path: Path, capture: Path) -> None:
    result = runner.invoke(app, ["extract", str(capture), "-w", "0", "-o", str(tmp_path / "x.csv")])
    assert result.exit_code == 2


def test_extract_cic_chunks_flag(tmp_path: Path) -> None:
    n = 175_000  # 58-byte records: about 10.15 MB, so tcpdump -C 10 would cut one chunk boundary
    frame = arp_frame()
    cap = write_pcap(tmp_path / "big.pcap", [(1_700_000_000 + i // 1000, i % 1000, frame) for i in range(n)])
    out = tmp_path / "c.csv"
    result = runner.invoke(app, ["extract", str(cap), "-o", str(out), "-q", "--cic-chunks"])
    assert result.exit_code == 0, result.output
    # before writing a packet, a new file starts once the current one exceeds 10,000,000 bytes
    first = next(k for k in range(n) if 24 + k * 58 > 10_000_000)
    numbers = pd.read_csv(out)["Number"].tolist()
    expected = [10] * (first // 10) + [first % 10] + [10] * ((n - first) // 10) + [(n - first) % 10]
    assert numbers == [x for x in expected if x]
    plain = runner.invoke(app, ["extract", str(cap), "-o", str(tmp_path / "p.csv"), "-q"])
    assert plain.exit_code == 0 and len(pd.read_csv(tmp_path / "p.csv")) == n // 10
