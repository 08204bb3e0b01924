"""WindowExtractor: streaming equivalence, meta, chunk resets, v1 rows, bounded state."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from iomt_ids.exceptions import BadValueError, ConfigError
from iomt_ids.features import (
    META_COLUMNS,
    V1_COLUMNS,
    WindowBatch,
    WindowExtractor,
    extract_file,
    read_capture,
)

from .checks import assert_v2_invariants
from .pcapgen import (
    T0,
    arp_frame,
    icmp_frame,
    ipv6_frame,
    tcp_frame,
    udp_frame,
    write_pcap_dpkt,
)

C = bytes([10, 0, 0, 3])
D = bytes([10, 0, 0, 4])


def _mixed(n: int, seed: int = 0) -> tuple[np.ndarray, list[bytes]]:
    rng = np.random.default_rng(seed)
    pool = [
        tcp_frame(flags=0x02),
        tcp_frame(flags=0x18, sport=1883, dport=50000, data=b"x" * 30, src=C, dst=D),
        tcp_frame(flags=0x10, opts=b"\x01\x01\x08\x0a" + bytes(8), pad_to=70),
        udp_frame(5353, 53, b"q" * 20),
        udp_frame(68, 67, b"d" * 200),
        icmp_frame(),
        arp_frame(),
        ipv6_frame(),
    ]
    frames = [pool[i] for i in rng.integers(0, len(pool), size=n)]
    ts = T0 + np.cumsum(rng.exponential(1e-3, size=n))
    ts[rng.integers(0, n, size=n // 20)] -= 1e-4  # a few timestamps go backwards
    return ts, frames


def _feed_in(ex: WindowExtractor, ts: np.ndarray, frames: list[bytes], sizes: list[int]) -> WindowBatch:
    out, start, i = [], 0, 0
    while start < len(frames):
        step = sizes[i % len(sizes)]
        out.append(ex.feed(ts[start : start + step], frames[start : start + step]))
        start += step
        i += 1
    out.append(ex.flush())
    return WindowBatch.concat(out)


@pytest.mark.parametrize("release", ["v2", "v1"])
@pytest.mark.parametrize("window", [1, 10, 100])
def test_small_batches_equal_one_batch_equal_file_path(tmp_path: Path, release: str, window: int) -> None:
    ts, frames = _mixed(1234)
    one = _feed_in(WindowExtractor(window, release), ts, frames, [len(frames)])
    small = _feed_in(WindowExtractor(window, release), ts, frames, [1, 3, 7, 50, 2])
    pd.testing.assert_frame_equal(small.features, one.features, check_exact=True)
    pd.testing.assert_frame_equal(small.meta, one.meta, check_exact=True)
    path = write_pcap_dpkt(tmp_path / "m.pcap", list(zip(ts.tolist(), frames, strict=True)))
    # the file path rounds timestamps to µs: compare against feed() of what the file holds
    batches = list(read_capture(path, batch_size=97))
    fts = np.concatenate([b.ts for b in batches])
    via_feed = _feed_in(WindowExtractor(window, release), fts, frames, [len(frames)])
    df, stats = extract_file(path, window=window, release=release, progress=False, batch_size=97)
    pd.testing.assert_frame_equal(df, via_feed.features, check_exact=True)
    assert len(df) == math.ceil(stats.packets_accepted / window)
    if release == "v2":
        assert_v2_invariants(df)
    else:
        assert tuple(df.columns) == V1_COLUMNS


def test_meta_dominant_flow_and_ids() -> None:
    ex = WindowExtractor(window=10)
    frames = [tcp_frame(sport=1234, dport=443, src=C, dst=D)] * 6 + [udp_frame(53, 5353)] * 4
    frames += [arp_frame(spa=D, tpa=C)] * 3 + [icmp_frame()] * 2
    ts = T0 + np.arange(len(frames)) * 0.01
    batch = ex.feed(ts, frames)
    tail = ex.flush()
    both = WindowBatch.concat([batch, tail])
    assert tuple(both.meta.columns) == META_COLUMNS
    first, second = both.meta.iloc[0], both.meta.iloc[1]
    assert (first["window_id"], first["n_packets"]) == (0, 10)
    assert (first["src_ip"], first["dest_ip"], first["src_port"], first["dest_port"], first["proto"]) == (
        "10.0.0.3", "10.0.0.4", 1234, 443, "TCP",
    )  # fmt: skip
    assert first["start_ts"] == ts[0] and first["end_ts"] == ts[9]
    assert (second["window_id"], second["n_packets"]) == (1, 5)
    # the pinger (2 echo requests) outranks the more frequent ARP sender; ICMP has no ports
    flow = tuple(second[c] for c in ("src_ip", "dest_ip", "src_port", "dest_port", "proto"))
    assert flow == ("192.168.1.10", "192.168.1.20", 0, 0, "ICMP")
    assert len(ex.flush()) == 0  # nothing left
    assert ex.stats.packets_read == 15 and ex.stats.packets_accepted == 15
    # a tie goes to the flow seen first
    ex = WindowExtractor(window=4)
    got = ex.feed(T0 + np.arange(4.0), [icmp_frame(), udp_frame(1, 2), udp_frame(1, 2), icmp_frame()])
    assert got.meta["proto"].tolist() == ["ICMP"]


def test_feed_returns_empty_batches_with_columns() -> None:
    ex = WindowExtractor(window=10)
    got = ex.feed([T0], [arp_frame()])
    assert len(got) == 0 and list(got.features.columns)[:2] == ["Header_Length", "Protocol Type"]
    assert list(got.meta.columns) == list(META_COLUMNS)
    assert len(ex.feed([], [])) == 0
    assert len(ex.feed([T0 + 1], [ipv6_frame()])) == 0 and ex.stats.skipped == {"ipv6": 1}


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="window must be an integer >= 1; got 0"):
        WindowExtractor(window=0)
    with pytest.raises(ConfigError, match="release must be 'v1' or 'v2'; got 'v3'"):
        WindowExtractor(release="v3")
    with pytest.raises(BadValueError, match="2 timestamps for 1 frames"):
        WindowExtractor().feed([T0, T0], [arp_frame()])


def test_state_is_bounded_by_the_window() -> None:
    ex = WindowExtractor(window=10)
    ts, frames = _mixed(5000)
    for start in range(0, 5000, 333):
        ex.feed(ts[start : start + 333], frames[start : start + 333])
        assert len(ex._carry) < 10
        assert ex._carry.ints.base is None  # a copy, not a view pinning the whole batch


def test_chunk_resets_like_tcpdump_c(tmp_path: Path) -> None:
    # 42-byte ARP frames take 58 bytes each in a pcap; with a 500-byte limit a chunk holds 9 packets
    packets = [(T0 + i * 0.001, arp_frame()) for i in range(20)]
    path = write_pcap_dpkt(tmp_path / "c.pcap", packets)
    df, _ = extract_file(path, window=10, progress=False, chunk_bytes=500)
    assert list(df["Number"]) == [9, 9, 2]
    assert df["IAT"].iloc[1] == pytest.approx(8 * 0.001 / 9, rel=1e-3)  # chunk restarts: first iat 0
    no_reset, _ = extract_file(path, window=10, progress=False)
    assert list(no_reset["Number"]) == [10, 10]
    # same rows when fed one packet at a time
    ex = WindowExtractor(window=10, chunk_bytes=500)
    rows = [ex.feed([t], [f]) for t, f in packets] + [ex.flush()]
    pd.testing.assert_frame_equal(WindowBatch.concat(rows).features, df, check_exact=True)


def test_v1_constant_54_byte_packets_w100() -> None:
    """Spec §5 check: Tot sum 567, Number 9.5, Weight 141.55, Magnitue sqrt(108)."""
    ex = WindowExtractor(window=100, release="v1")
    frames = [tcp_frame(flags=0x02)] * 200
    ts = T0 + np.arange(200) * 0.001
    df = WindowBatch.concat([ex.feed(ts, frames), ex.flush()]).features
    assert tuple(df.columns) == V1_COLUMNS and len(df) == 2
    row = df.iloc[0]
    assert row["Tot sum"] == pytest.approx(567)
    assert row["Number"] == pytest.approx(9.5)
    assert row["Weight"] == pytest.approx(141.55)
    assert row["Magnitue"] == pytest.approx(math.sqrt(108))
    assert row["AVG"] == 54 and row["Std"] == 0 and row["Tot size"] == 54
    assert row["Variance"] == 0 and row["Radius"] == 0 and row["Drate"] == 0
    assert row["IPv"] == 1 and row["LLC"] == 1 and row["TCP"] == 1 and row["HTTP"] == 1
    assert row["Protocol Type"] == 6 and row["Duration"] == 64
    assert row["Srate"] == row["Rate"] and row["Rate"] > 0
    # the IAT leak: every 20th record (and the first) holds the absolute timestamp
    assert row["IAT"] > 0.05 * T0 * 0.99
    # one flow: Header_Length is the cumulative byte count, mean over packets 1..100
    assert row["Header_Length"] == pytest.approx(54 * 50.5)
    # the original counter mapping: syn_count counts SYN packets of the flow so far
    assert row["syn_count"] == pytest.approx(50.5) and row["ack_count"] == 0


def test_v1_with_w10_alternates() -> None:
    ex = WindowExtractor(window=10, release="v1")
    frames = [arp_frame()] * 40
    df = ex.feed(T0 + np.arange(40) * 0.001, frames).features
    assert df["Number"].tolist() == [5.5, 13.5, 5.5, 13.5]
    assert df["Weight"].tolist() == pytest.approx([38.5, 244.6, 38.5, 244.6])


@pytest.mark.parametrize("n", [10, 100, 7])
def test_std_variance_iat_are_bitwise_pandas(n: int) -> None:
    """Std/Variance/IAT equal pandas' Series.std/var/mean of each window, bit for bit."""
    from iomt_ids.features.dissect import N_INT, PacketRecords
    from iomt_ids.features.windows import v2_window_rows

    rng = np.random.default_rng(n)
    k = 200
    ints = np.zeros((N_INT, k * n), np.int64)
    ints[0] = rng.integers(42, 1515, k * n)  # frame lengths
    ts = np.sort(T0 + rng.random(k * n) * 10)
    iat = np.r_[0.0, np.diff(ts)]
    out = v2_window_rows(PacketRecords(ts, ints), iat, n)
    for i in range(0, k, 17):
        sizes = pd.Series(ints[0][i * n : (i + 1) * n])
        assert out[i, 34] == sizes.std() and out[i, 38] == sizes.var()
        assert out[i, 36] == pd.Series(iat[i * n : (i + 1) * n]).mean()
        assert out[i, 33] == sizes.mean()
