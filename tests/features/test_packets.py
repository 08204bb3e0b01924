"""Capture reading: pcap/pcapng variants, link types, and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iomt_ids.exceptions import CaptureError
from iomt_ids.features import CaptureStats, Frames, extract_file, read_capture

from .pcapgen import (
    arp_frame,
    icmp_frame,
    ipv6_frame,
    pcapng_epb,
    pcapng_idb,
    pcapng_shb,
    pcapng_spb,
    sll,
    sll2,
    tcp_frame,
    udp_frame,
    write_pcap,
    write_pcap_dpkt,
)

SEC = 1_700_000_000
# 15625 µs = 1/64 s: every timestamp is exact in float64 whatever the format computes
STEP_US = 15625


def _frames() -> list[bytes]:
    base = [
        tcp_frame(flags=0x02),
        tcp_frame(flags=0x12, sport=80, dport=40000, opts=b"\x02\x04\x05\xb4"),
        arp_frame(),
        udp_frame(5353, 53, b"q" * 17),
        icmp_frame(),
        ipv6_frame(),
        tcp_frame(flags=0x10, pad_to=60),
    ]
    return [base[i % len(base)] for i in range(23)]


def _times(n: int) -> list[tuple[int, int]]:
    return [divmod(SEC * 1_000_000 + i * STEP_US, 1_000_000) for i in range(n)]


@pytest.fixture
def reference(tmp_path: Path) -> pd.DataFrame:
    frames = _frames()
    path = write_pcap_dpkt(
        tmp_path / "ref.pcap",
        [(s + u / 1e6, f) for (s, u), f in zip(_times(len(frames)), frames, strict=True)],
    )
    df, stats = extract_file(path, window=4, progress=False)
    assert stats.packets_read == 23 and stats.skipped == {"ipv6": 3}
    assert len(df) == 5
    return df


@pytest.mark.parametrize("endian", ["<", ">"])
@pytest.mark.parametrize("nano", [False, True])
def test_classic_pcap_byte_orders_and_resolutions(
    tmp_path: Path, reference: pd.DataFrame, endian: str, nano: bool
) -> None:
    frames = _frames()
    pkts = [(s, u * 1000 if nano else u, f) for (s, u), f in zip(_times(len(frames)), frames, strict=True)]
    path = write_pcap(tmp_path / "x.pcap", pkts, endian=endian, nano=nano)
    df, _ = extract_file(path, window=4, progress=False)
    pd.testing.assert_frame_equal(df, reference, check_exact=True)


@pytest.mark.parametrize("endian", ["<", ">"])
def test_pcapng_matches_pcap(tmp_path: Path, reference: pd.DataFrame, endian: str) -> None:
    frames = _frames()
    blocks = [pcapng_shb(endian), pcapng_idb(endian)]
    blocks += [pcapng_epb(SEC * 1_000_000 + i * STEP_US, f, endian) for i, f in enumerate(frames)]
    path = tmp_path / "x.pcapng"
    path.write_bytes(b"".join(blocks))
    df, stats = extract_file(path, window=4, progress=False)
    assert stats.packets_read == 23
    pd.testing.assert_frame_equal(df, reference, check_exact=True)


def test_pcapng_two_interfaces_with_different_resolutions(tmp_path: Path, reference: pd.DataFrame) -> None:
    frames = _frames()
    blocks = [pcapng_shb(), pcapng_idb(tsresol=6), pcapng_idb(tsresol=9)]
    for i, f in enumerate(frames):
        us = SEC * 1_000_000 + i * STEP_US
        blocks.append(pcapng_epb(us, f, iface=0) if i % 2 else pcapng_epb(us * 1000, f, iface=1))
    path = tmp_path / "two.pcapng"
    path.write_bytes(b"".join(blocks))
    df, _ = extract_file(path, window=4, progress=False)
    pd.testing.assert_frame_equal(df, reference, check_exact=True)


def test_pcapng_new_section_with_other_byte_order(tmp_path: Path, reference: pd.DataFrame) -> None:
    frames = _frames()
    blocks = [pcapng_shb("<"), pcapng_idb("<")]
    for i, f in enumerate(frames):
        if i == 10:
            blocks += [pcapng_shb(">"), pcapng_idb(">")]
        endian = "<" if i < 10 else ">"
        blocks.append(pcapng_epb(SEC * 1_000_000 + i * STEP_US, f, endian))
    path = tmp_path / "sections.pcapng"
    path.write_bytes(b"".join(blocks))
    df, _ = extract_file(path, window=4, progress=False)
    pd.testing.assert_frame_equal(df, reference, check_exact=True)


def test_pcapng_simple_packet_block_takes_previous_timestamp(tmp_path: Path) -> None:
    t = SEC * 1_000_000
    blocks = [pcapng_shb(), pcapng_idb(), pcapng_epb(t, arp_frame()), pcapng_spb(tcp_frame())]
    blocks += [pcapng_epb(t + STEP_US, arp_frame())]
    path = tmp_path / "spb.pcapng"
    path.write_bytes(b"".join(blocks))
    batches = list(read_capture(path))
    ts = np.concatenate([b.ts for b in batches])
    assert ts.tolist() == [SEC, SEC, SEC + STEP_US / 1e6]
    assert [len(f) for b in batches for f in b.frames] == [42, 54, 42]
    df, stats = extract_file(path, window=3, progress=False)
    assert stats.packets_accepted == 3 and df["TCP"].iloc[0] == pytest.approx(1 / 3)


@pytest.mark.parametrize(("linktype", "convert"), [(113, sll), (276, sll2)])
def test_linux_cooked_matches_ethernet(
    tmp_path: Path, reference: pd.DataFrame, linktype: int, convert
) -> None:  # noqa: ANN001
    frames = [convert(f) for f in _frames()]
    pkts = [(s, u, f) for (s, u), f in zip(_times(len(frames)), frames, strict=True)]
    path = write_pcap(tmp_path / "cooked.pcap", pkts, linktype=linktype)
    df, stats = extract_file(path, window=4, progress=False)
    assert stats.skipped == {"ipv6": 3}
    pd.testing.assert_frame_equal(df, reference, check_exact=True)


def test_batches_and_frames_view(tmp_path: Path) -> None:
    frames = _frames()
    path = write_pcap(tmp_path / "b.pcap", [(s, u, f) for (s, u), f in zip(_times(23), frames, strict=True)])
    batches = list(read_capture(path, batch_size=5))
    assert [len(b) for b in batches] == [5, 5, 5, 5, 3]
    got = [f for b in batches for f in b.frames]
    assert got == frames
    assert all(b.linktype == 1 for b in batches)
    assert batches[0].frames[1:3][0] == frames[1]
    packed = Frames.from_list(frames)
    assert list(packed) == frames and len(packed) == 23


def test_zero_packets(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "empty.pcap", [])
    reader = read_capture(path)
    assert list(reader) == [] and reader.stats.packets_read == 0
    df, stats = extract_file(path, progress=False)
    assert df.empty and list(df.columns)[0] == "Header_Length"
    assert stats == CaptureStats(bytes_read=24)
    assert "packets read 0" in stats.summary()


def test_truncated_file_keeps_rows_and_counts_the_record(tmp_path: Path) -> None:
    frames = [arp_frame()] * 20
    path = write_pcap(tmp_path / "t.pcap", [(s, u, f) for (s, u), f in zip(_times(20), frames, strict=True)])
    data = path.read_bytes()
    path.write_bytes(data[:-10])  # the last record loses 10 bytes
    df, stats = extract_file(path, window=10, progress=False)
    assert stats.packets_read == 19 and stats.skipped == {"truncated_record": 1}
    assert list(df["Number"]) == [10, 9]
    offset = len(data) - 58
    assert f"byte offset {offset:,}" in stats.errors[0] and "t.pcap" in stats.errors[0]


def test_garbage_after_valid_records_stops_cleanly(tmp_path: Path) -> None:
    frames = [arp_frame()] * 5
    path = write_pcap(tmp_path / "g.pcap", [(s, u, f) for (s, u), f in zip(_times(5), frames, strict=True)])
    path.write_bytes(path.read_bytes() + b"\xff" * 64)  # incl_len 0xffffffff
    df, stats = extract_file(path, window=10, progress=False)
    assert stats.packets_read == 5 and stats.skipped == {"corrupt_record": 1}
    assert "corrupt record at byte offset 314" in stats.errors[0]
    assert len(df) == 1


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "noise.pcap"
    path.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(CaptureError, match=r"noise\.pcap: not a pcap or pcapng capture \(byte offset 0"):
        read_capture(path)
    (tmp_path / "empty.pcap").write_bytes(b"")
    with pytest.raises(CaptureError, match="empty file"):
        extract_file(tmp_path / "empty.pcap", progress=False)
    (tmp_path / "short.pcap").write_bytes(b"\xd4\xc3\xb2\xa1\x02\x00")
    with pytest.raises(CaptureError, match="truncated pcap file header"):
        extract_file(tmp_path / "short.pcap", progress=False)
    with pytest.raises(CaptureError, match="cannot open"):
        read_capture(tmp_path / "missing.pcap")


def test_unknown_link_type_is_a_clear_error(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "wifi.pcap", [(SEC, 0, b"\x00" * 40)], linktype=105)
    with pytest.raises(CaptureError, match=r"wifi\.pcap: unsupported link type 105"):
        extract_file(path, progress=False)
    ng = tmp_path / "ppp.pcapng"
    ng.write_bytes(
        pcapng_shb() + pcapng_idb(linktype=9) + pcapng_epb(SEC * 10**6, b"\xff\x03\x00\x21" + b"\x45" * 30)
    )
    with pytest.raises(CaptureError, match=r"ppp\.pcapng: unsupported link type 9"):
        extract_file(ng, progress=False)


def test_pcapng_unsupported_interface_beside_ethernet_is_skipped(tmp_path: Path) -> None:
    t = SEC * 1_000_000
    ng = tmp_path / "mixed.pcapng"
    ng.write_bytes(
        pcapng_shb() + pcapng_idb(linktype=1) + pcapng_idb(linktype=9)
        + pcapng_epb(t, arp_frame(), iface=0) + pcapng_epb(t, b"\xff\x03" + bytes(30), iface=1)
        + pcapng_epb(t + 1, arp_frame(), iface=0)
    )  # fmt: skip
    df, stats = extract_file(ng, progress=False)
    assert stats.skipped == {"linktype_9": 1} and stats.packets_accepted == 2 and len(df) == 1


def test_pcapng_packet_without_interface_is_a_clear_error(tmp_path: Path) -> None:
    ng = tmp_path / "noidb.pcapng"
    ng.write_bytes(pcapng_shb() + pcapng_epb(SEC, arp_frame()))
    with pytest.raises(CaptureError, match="Interface Description Block"):
        extract_file(ng, progress=False)


def test_short_and_malformed_frames_are_counted(tmp_path: Path) -> None:
    ip_bad_ihl = bytearray(tcp_frame())
    ip_bad_ihl[14] = 0x42  # IHL 2 < 5
    frames = [
        b"\x00" * 10,
        bytes(ip_bad_ihl),
        arp_frame()[:30],
        tcp_frame()[:20],
        b"\x01" * 12 + b"\x88\xcc" + bytes(30),
    ]
    frames.append(arp_frame())
    path = write_pcap(tmp_path / "m.pcap", [(SEC, i, f) for i, f in enumerate(frames)])
    df, stats = extract_file(path, progress=False)
    assert stats.skipped == {"truncated_frame": 1, "malformed_ipv4": 2, "malformed_arp": 1, "non_ip": 1}
    assert stats.packets_accepted == 1 and len(df) == 1


def test_tcp_fragment_and_truncated_tcp_are_not_decoded(tmp_path: Path) -> None:
    frag = bytearray(tcp_frame())
    frag[20] = 0x00
    frag[21] = 0x10  # fragment offset 16 -> dpkt leaves the payload undecoded
    cut = tcp_frame(opts=b"\x01" * 12)[:60]  # options cut short by the snap length
    path = write_pcap(tmp_path / "f.pcap", [(SEC, 0, bytes(frag)), (SEC, 1, cut)])
    row = extract_file(path, progress=False)[0].iloc[0]
    assert row["TCP"] == 0.5  # the fragment is IPv4 proto 6 but not decoded TCP
    assert row["Protocol Type"] == 6
    assert row["Header_Length"] == (0 + 26) / 2  # 20 + the 6 option bytes captured


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_fuzzed_captures_never_crash(tmp_path: Path, fmt: str) -> None:
    frames = _frames()
    if fmt == "pcap":
        base = write_pcap(
            tmp_path / "base.pcap", [(s, u, f) for (s, u), f in zip(_times(23), frames, strict=True)]
        )
        data = base.read_bytes()
    else:
        blocks = [pcapng_shb(), pcapng_idb()] + [pcapng_epb(SEC * 10**6 + i, f) for i, f in enumerate(frames)]
        data = b"".join(blocks)
    rng = np.random.default_rng(1)
    outcomes = {"rows": 0, "error": 0}
    for trial in range(60):
        buf = bytearray(data)
        for pos in rng.integers(0, len(buf), size=int(rng.integers(1, 12))):
            buf[pos] = int(rng.integers(0, 256))
        if trial % 5 == 0:
            buf = buf[: int(rng.integers(1, len(buf)))]
        path = tmp_path / f"fuzz{trial}.{fmt}"
        path.write_bytes(bytes(buf))
        try:
            df, stats = extract_file(path, window=4, progress=False)
        except CaptureError as exc:
            assert path.name in str(exc)
            outcomes["error"] += 1
            continue
        outcomes["rows"] += 1
        assert len(df) == -(-stats.packets_accepted // 4)
        assert tuple(df.columns)[0] == "Header_Length"
    assert outcomes["rows"] > 0


def test_pcapng_truncated_block_is_counted(tmp_path: Path) -> None:
    blocks = [pcapng_shb(), pcapng_idb()] + [pcapng_epb(SEC * 10**6 + i, arp_frame()) for i in range(6)]
    path = tmp_path / "cut.pcapng"
    path.write_bytes(b"".join(blocks)[:-20])
    df, stats = extract_file(path, window=10, progress=False)
    assert stats.packets_read == 5 and stats.skipped == {"truncated_record": 1}
    assert "cut.pcapng: file ends inside a record" in stats.errors[0]
    assert list(df["Number"]) == [5]


def test_read_capture_checks_the_pcap_header_on_open(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "radiotap.pcap", [], linktype=127)
    with pytest.raises(CaptureError, match=r"radiotap\.pcap: unsupported link type 127"):
        read_capture(path)
    ok = write_pcap(tmp_path / "eth.pcap", [])
    with read_capture(ok) as reader:
        assert (reader.format, reader.linktype) == ("pcap", 1)


def test_pcapng_ethernet_and_sll_interfaces_interleaved(tmp_path: Path, reference: pd.DataFrame) -> None:
    frames = _frames()
    blocks = [pcapng_shb(), pcapng_idb(linktype=1), pcapng_idb(linktype=113)]
    for i, f in enumerate(frames):
        us = SEC * 1_000_000 + i * STEP_US
        blocks.append(pcapng_epb(us, sll(f), iface=1) if i % 3 == 0 else pcapng_epb(us, f, iface=0))
    path = tmp_path / "mixed-links.pcapng"
    path.write_bytes(b"".join(blocks))
    assert {b.linktype for b in read_capture(path)} == {1, 113}
    df, _ = extract_file(path, window=4, progress=False)
    pd.testing.assert_frame_equal(df, reference, check_exact=True)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_speculative_walk_finds_every_record_of_floods(tmp_path: Path, seed: int) -> None:
    """Runs of equal-length records (floods) broken by odd ones: the same frames as dpkt reads."""
    import dpkt

    rng = np.random.default_rng(seed)
    sizes = [42, 54, 60, 66, 1514]
    frames: list[bytes] = []
    while len(frames) < 30_000:
        size = sizes[int(rng.integers(0, len(sizes)))]
        run = int(rng.choice([1, 2, 5, 40, 3000]))
        frames += [arp_frame(pad_to=size)[:size]] * run
    pkts = [(SEC + i // 1000, i % 1000, f) for i, f in enumerate(frames)]
    path = write_pcap(tmp_path / "flood.pcap", pkts)
    got = [f for b in read_capture(path, batch_size=4096) for f in b.frames]
    with open(path, "rb") as fh:
        expected = [buf for _, buf in dpkt.pcap.Reader(fh)]
    assert len(got) == len(expected) and got == expected
