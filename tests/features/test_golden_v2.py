"""Spec §9 acceptance checks: small pcaps written with dpkt, rows computed by hand."""

from __future__ import annotations

import math
from pathlib import Path

import dpkt
import numpy as np
import pandas as pd
import pytest

from iomt_ids.features import V2_COLUMNS, extract_file

from .checks import assert_v2_invariants
from .pcapgen import (
    T0,
    arp_frame,
    icmp_frame,
    igmp_frame,
    ipv6_frame,
    tcp_frame,
    udp_frame,
    write_pcap_dpkt,
)


def _extract(tmp_path: Path, packets: list[tuple[float, bytes]], window: int = 10) -> pd.DataFrame:
    path = write_pcap_dpkt(tmp_path / "golden.pcap", packets)
    df, stats = extract_file(path, window=window, progress=False)
    assert stats.packets_read == len(packets)
    assert_v2_invariants(df)
    return df


def _dpkt_ts(path: Path) -> list[float]:
    with open(path, "rb") as fh:
        return [float(ts) for ts, _ in dpkt.pcap.Reader(fh)]


def test_ten_arp_frames_1ms_apart(tmp_path: Path) -> None:
    packets = [(T0 + i * 0.001, arp_frame()) for i in range(10)]
    df = _extract(tmp_path, packets)
    assert len(df) == 1
    row = df.iloc[0]
    assert len(arp_frame()) == 42
    expected = {
        "Protocol Type": 0, "Time_To_Live": 0, "ARP": 1, "IPv": 0, "LLC": 0, "Header_Length": 0,
        "Tot sum": 420, "Min": 42, "Max": 42, "AVG": 42, "Tot size": 42, "Std": 0, "Variance": 0,
        "Number": 10, "TCP": 0, "UDP": 0, "ICMP": 0,
    }  # fmt: skip
    for col, value in expected.items():
        assert row[col] == value, col
    ts = _dpkt_ts(tmp_path / "golden.pcap")  # the floats dpkt gives, µs-quantised
    assert row["Rate"] == 10 / (ts[9] - ts[0])
    assert row["Rate"] == pytest.approx(10 / 0.009, rel=1e-4)
    # first window of a stream: iat_1 = 0, then 9 gaps of 1 ms
    assert row["IAT"] == pytest.approx(0.0009, rel=1e-4)


def test_second_window_iat_is_the_full_gap(tmp_path: Path) -> None:
    packets = [(T0 + i * 0.001, arp_frame()) for i in range(20)]
    df = _extract(tmp_path, packets)
    assert list(df["Number"]) == [10, 10]
    assert df["IAT"].iloc[0] == pytest.approx(0.0009, rel=1e-4)
    assert df["IAT"].iloc[1] == pytest.approx(0.001, rel=1e-4)
    # IAT crosses the window boundary: Rate != 1/IAT for the second window
    assert df["Rate"].iloc[1] == pytest.approx(10 / 0.009, rel=1e-4)


def test_iat_across_windows_irregular_gaps(tmp_path: Path) -> None:
    gaps = [0.0, 0.5, 0.25, 0.125, 1.0, 2.0]  # binary fractions: exact in float and in µs
    times = np.cumsum(gaps) + T0
    packets = [(float(t), arp_frame()) for t in times]
    df = _extract(tmp_path, packets, window=3)
    assert list(df["Number"]) == [3, 3]
    assert df["IAT"].iloc[0] == (0.0 + 0.5 + 0.25) / 3
    assert df["IAT"].iloc[1] == (0.125 + 1.0 + 2.0) / 3  # 0.125: gap from the previous window's last packet
    assert df["Rate"].iloc[1] == 3 / (1.0 + 2.0)


def test_hundred_syn_same_timestamp(tmp_path: Path) -> None:
    frame = tcp_frame(flags=dpkt.tcp.TH_SYN)
    assert len(frame) == 54
    df = _extract(tmp_path, [(T0, frame)] * 100, window=100)
    assert len(df) == 1
    row = df.iloc[0]
    assert math.isinf(row["Rate"]) and row["Rate"] > 0
    assert row["syn_flag_number"] == 1 and row["syn_count"] == 100
    assert row["ack_count"] == 0 and row["fin_count"] == 0 and row["rst_count"] == 0
    assert row["Header_Length"] == 20 and row["IAT"] == 0 and row["TCP"] == 1
    assert row["Protocol Type"] == 6 and row["Time_To_Live"] == 64
    assert row["HTTP"] == 1 and row["HTTPS"] == 0  # dport 80
    assert row["Tot sum"] == 5400 and row["Std"] == 0


def test_protocol_type_tie_goes_to_smallest(tmp_path: Path) -> None:
    packets = [(T0 + i * 0.01, tcp_frame()) for i in range(5)]
    packets += [(T0 + 0.05 + i * 0.01, arp_frame()) for i in range(5)]
    row = _extract(tmp_path, packets).iloc[0]
    assert row["Protocol Type"] == 0
    assert row["TCP"] == 0.5 and row["ARP"] == 0.5 and row["IPv"] == 0.5
    assert row["Time_To_Live"] == 32  # ARP contributes 0
    # 6 TCP + 4 ARP: the majority wins
    packets = [(T0 + i * 0.01, tcp_frame()) for i in range(6)]
    packets += [(T0 + 0.06 + i * 0.01, arp_frame()) for i in range(4)]
    assert _extract(tmp_path, packets).iloc[0]["Protocol Type"] == 6


def test_tcp_options_header_length(tmp_path: Path) -> None:
    ts_opt = b"\x01\x01\x08\x0a" + bytes(8)  # NOP NOP timestamps: 12 bytes -> data offset 8
    packets = [(T0 + i * 0.001, tcp_frame(flags=0x10, opts=ts_opt)) for i in range(5)]
    packets += [(T0 + 0.005 + i * 0.001, tcp_frame(flags=0x10)) for i in range(5)]
    row = _extract(tmp_path, packets).iloc[0]
    assert row["Header_Length"] == (5 * 32 + 5 * 20) / 10
    assert row["Min"] == 54 and row["Max"] == 66
    assert row["ack_flag_number"] == 1 and row["ack_count"] == 10


def test_udp_dns_and_dhcp_ports(tmp_path: Path) -> None:
    frames = [
        udp_frame(5353, 53, b"q" * 20),  # DNS
        udp_frame(53, 40000, b"r" * 20),  # DNS (source port)
        udp_frame(68, 67, b"d" * 20),  # DHCP client -> server
        udp_frame(67, 68, b"d" * 20),  # DHCP server -> client
        udp_frame(67, 67, b"d" * 20),  # relay-to-server: not the v2 pair rule
        tcp_frame(sport=40000, dport=53),  # TCP on 53 is not DNS
        tcp_frame(sport=40000, dport=443),  # HTTPS
        tcp_frame(sport=22, dport=40000),  # SSH
        tcp_frame(sport=40000, dport=23),  # Telnet
        tcp_frame(sport=40000, dport=21),  # "IRC" (sic: FTP control)
    ]
    row = _extract(tmp_path, [(T0 + i * 0.001, f) for i, f in enumerate(frames)]).iloc[0]
    assert row["DNS"] == pytest.approx(0.2)
    assert row["DHCP"] == pytest.approx(0.2)
    assert row["UDP"] == pytest.approx(0.5) and row["TCP"] == pytest.approx(0.5)
    assert row["HTTPS"] == pytest.approx(0.1) and row["SSH"] == pytest.approx(0.1)
    assert row["Telnet"] == pytest.approx(0.1) and row["IRC"] == pytest.approx(0.1)
    assert row["HTTP"] == 0 and row["SMTP"] == 0
    assert row["Header_Length"] == pytest.approx((5 * 8 + 5 * 20) / 10)
    assert row["Protocol Type"] == 6  # 5 TCP vs 5 UDP: tie -> 6 < 17


def test_flags_icmp_igmp_ttl(tmp_path: Path) -> None:
    frames = [
        tcp_frame(flags=dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK, ttl=128),
        tcp_frame(flags=dpkt.tcp.TH_RST, ttl=128),
        tcp_frame(flags=dpkt.tcp.TH_PUSH | dpkt.tcp.TH_ACK, ttl=128),
        tcp_frame(flags=dpkt.tcp.TH_ECE | dpkt.tcp.TH_CWR | dpkt.tcp.TH_SYN, ttl=128),
        icmp_frame(ttl=64),
        icmp_frame(ttl=64),
        igmp_frame(),  # TTL 1
        arp_frame(),
        ipv6_frame(),  # dropped: no record, no window slot
        udp_frame(1883, 40000, b"m" * 10, ttl=63),
    ]
    path = write_pcap_dpkt(tmp_path / "flags.pcap", [(T0 + i * 0.001, f) for i, f in enumerate(frames)])
    df, stats = extract_file(path, window=10, progress=False)
    assert stats.packets_accepted == 9 and stats.skipped == {"ipv6": 1}
    assert_v2_invariants(df)
    row = df.iloc[0]
    assert row["Number"] == 9
    assert row["fin_flag_number"] == pytest.approx(1 / 9) and row["fin_count"] == 1
    assert row["rst_flag_number"] == pytest.approx(1 / 9) and row["rst_count"] == 1
    assert row["psh_flag_number"] == pytest.approx(1 / 9)
    assert row["ack_flag_number"] == pytest.approx(2 / 9) and row["ack_count"] == 2
    assert row["syn_count"] == 1 and row["ece_flag_number"] == pytest.approx(1 / 9)
    assert row["cwr_flag_number"] == pytest.approx(1 / 9)
    assert row["ICMP"] == pytest.approx(2 / 9) and row["IGMP"] == pytest.approx(1 / 9)
    assert row["Time_To_Live"] == pytest.approx((4 * 128 + 2 * 64 + 1 + 0 + 63) / 9)
    assert row["Protocol Type"] == 6


def test_padded_frames_count_captured_length(tmp_path: Path) -> None:
    # a 54-byte ACK padded to 60 on the wire counts 60 (the dataset's minimum is 60, never 54)
    packets = [(T0 + i * 0.001, tcp_frame(flags=0x10, pad_to=60)) for i in range(3)]
    packets += [(T0 + 0.003, arp_frame(pad_to=60))]
    row = _extract(tmp_path, packets).iloc[0]
    assert row["Min"] == 60 and row["Max"] == 60 and row["Header_Length"] == 15


def test_partial_final_window_and_single_packet_std(tmp_path: Path) -> None:
    packets = [(T0 + i * 0.001, arp_frame()) for i in range(25)]
    df = _extract(tmp_path, packets)
    assert list(df["Number"]) == [10, 10, 5]
    assert df["Tot sum"].iloc[2] == 5 * 42
    packets = [(T0 + i * 0.001, arp_frame()) for i in range(11)]
    df = _extract(tmp_path, packets)
    last = df.iloc[1]
    assert last["Number"] == 1
    assert math.isnan(last["Std"]) and math.isnan(last["Variance"])
    assert math.isinf(last["Rate"])
    assert last["IAT"] == pytest.approx(0.001, rel=1e-4)  # the gap from the previous window


def test_window_of_one_packet(tmp_path: Path) -> None:
    packets = [(T0 + i * 0.25, tcp_frame()) for i in range(4)]
    df = _extract(tmp_path, packets, window=1)
    assert len(df) == 4 and (df["Number"] == 1).all()
    assert df["Std"].isna().all() and np.isinf(df["Rate"]).all()
    assert list(df["IAT"]) == [0.0, 0.25, 0.25, 0.25]


def test_columns_and_dtypes(tmp_path: Path) -> None:
    df = _extract(tmp_path, [(T0, arp_frame())])
    assert tuple(df.columns) == V2_COLUMNS and len(V2_COLUMNS) == 39
