"""v1 frame length is dpkt's ``len(eth)`` (spec §5), and the v1 flag counters use the original mapping.

CIC's v1 extractor sizes a frame with ``len(dpkt.ethernet.Ethernet(buf))``: for
IPv4 dpkt cuts the payload to the IP total length, so Ethernet padding is not
counted (a padded 60-byte SYN is 54); ARP keeps the captured length. v2 uses the
captured length. The references below are plain dpkt loops over the same frames.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import dpkt
import numpy as np
import pytest

from iomt_ids.features import V1_COLUMNS, WindowBatch, WindowExtractor
from iomt_ids.features.dissect import LV1, L, dissect
from iomt_ids.features.packets import Frames

from .pcapgen import T0, arp_frame, eth, icmp_frame, ip4, sll, tcp_frame, udp_frame

SIZE_COLUMNS = (
    "Header_Length", "Tot sum", "Min", "Max", "AVG", "Std", "Tot size", "Magnitue", "Radius", "Covariance",
)  # fmt: skip


def _small_udp(pad_to: int = 60) -> bytes:
    """A 44-byte UDP frame (2 bytes of data), padded to ``pad_to``."""
    dg = dpkt.udp.UDP(sport=5000, dport=5683, data=b"hi", ulen=10)
    return eth(ip4(dg, dpkt.ip.IP_PROTO_UDP), pad_to=pad_to)


def _truncated_tcp() -> bytes:
    """A 200-byte TCP segment captured with a 100-byte snap length (IP total length > captured)."""
    return tcp_frame(flags=0x18, data=b"x" * 146)[:100]


FRAMES = {
    "syn_padded": (tcp_frame(flags=0x02, pad_to=60), 54),
    "syn_unpadded": (tcp_frame(flags=0x02), 54),
    "synack_padded": (tcp_frame(sport=80, dport=40000, flags=0x12, pad_to=60), 54),
    "ack_padded_trailer": (tcp_frame(flags=0x10) + b"\xaa" * 6, 54),
    "syn_options_padded": (tcp_frame(flags=0x02, opts=b"\x02\x04\x05\xb4", pad_to=60), 58),
    "tcp_data": (tcp_frame(flags=0x18, data=b"y" * 100), 154),
    "tcp_truncated": (_truncated_tcp(), 100),
    "udp_small_padded": (_small_udp(), 44),
    "udp_small_unpadded": (_small_udp(0), 44),
    "udp_large": (udp_frame(5000, 1883, data=b"z" * 300), 342),
    "icmp_padded": (icmp_frame(pad_to=60), 46),
    "arp_unpadded": (arp_frame(), 42),
    "arp_padded": (arp_frame(pad_to=60), 60),
}


def _dpkt_len(buf: bytes) -> int:
    return len(dpkt.ethernet.Ethernet(buf))


@pytest.mark.parametrize("name", list(FRAMES))
def test_record_lengths_match_dpkt(name: str) -> None:
    """``LV1`` is dpkt's ``len(eth)``; ``L`` stays the captured length."""
    buf, expected = FRAMES[name]
    assert _dpkt_len(buf) == expected  # the reference itself
    rec, skipped = dissect(np.array([T0]), Frames.from_list([buf]), 1)
    assert not skipped and len(rec) == 1
    assert int(rec.ints[LV1, 0]) == expected
    assert int(rec.ints[L, 0]) == len(buf)


def test_padding_is_dropped_for_ipv4_only() -> None:
    """The point of the rule: padded IPv4 shrinks, padded ARP does not."""
    assert _dpkt_len(FRAMES["syn_padded"][0]) == 54 < len(FRAMES["syn_padded"][0]) == 60
    assert _dpkt_len(FRAMES["udp_small_padded"][0]) == 44 < 60
    assert _dpkt_len(FRAMES["arp_padded"][0]) == len(FRAMES["arp_padded"][0]) == 60


def test_sll_v1_length_matches_ethernet() -> None:
    """A Linux cooked capture of the same frames gets the same v1 length (payload cut + 14)."""
    bufs = [b for b, _ in FRAMES.values()]
    want = [e for _, e in FRAMES.values()]
    rec, _ = dissect(T0 + np.arange(len(bufs)), Frames.from_list([sll(b) for b in bufs]), 113)
    assert rec.ints[LV1].tolist() == want
    assert rec.ints[L].tolist() == [len(b) for b in bufs]


def test_random_ipv4_and_arp_frames_match_dpkt() -> None:
    """Random IPv4 headers (IHL, total length, protocol, padding, truncation) and ARP against dpkt."""
    rng = np.random.default_rng(11)
    frames = []
    for _ in range(3000):
        if rng.random() < 0.8:
            ihl = int(rng.choice([5, 5, 5, 6, 8, 15]))
            body = rng.integers(0, 256, int(rng.integers(0, 90)), dtype=np.uint8).tobytes()
            tot = int(rng.choice([0, int(rng.integers(0, 120)), 4 * ihl + len(body)]))
            hdr = bytearray(20)
            hdr[0] = 0x40 | ihl
            hdr[2:4] = tot.to_bytes(2, "big")
            hdr[8] = 64
            hdr[9] = int(rng.choice([6, 17, 1, 2, 0, 47, 255]))  # no SCTP/IP-in-IP (see dissect's notes)
            if rng.random() < 0.3:
                hdr[6:8] = int(rng.integers(1, 0x2000)).to_bytes(2, "big")  # a later fragment
            frame = tcp_frame()[:14] + bytes(hdr) + body
            if rng.random() < 0.5:
                frame += b"\x00" * max(0, 60 - len(frame))
        else:
            frame = arp_frame(pad_to=int(rng.choice([0, 60])))[: int(rng.choice([200, 42, 45]))]
        frames.append(frame)
    want = []
    for buf in frames:
        e = dpkt.ethernet.Ethernet(buf)
        if isinstance(e.data, dpkt.ip.IP | dpkt.arp.ARP):
            want.append(len(e))
    rec, _ = dissect(T0 + np.arange(len(frames)), Frames.from_list(frames), 1)
    assert len(rec) == len(want) > 1500
    assert rec.ints[LV1].tolist() == want


def _reference_v1_sizes(frames: Sequence[bytes], by_dpkt: bool = True) -> np.ndarray:
    """Plain per-packet v1 size columns (``SIZE_COLUMNS`` order) from dpkt, as spec §5 states them."""
    flows: dict[tuple, int] = {}
    buf_b: list[int] = []
    stream: list[int] = []
    out = []
    for buf in frames:
        e = dpkt.ethernet.Ethernet(buf)
        if not isinstance(e.data, dpkt.ip.IP | dpkt.arp.ARP):
            continue
        size = len(e) if by_dpkt else len(buf)
        flow_bytes = 0
        ip = e.data
        if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.tcp.TCP | dpkt.udp.UDP):
            ends = sorted([(ip.src, ip.data.sport), (ip.dst, ip.data.dport)])
            key = (*ends, ip.p)
            flows[key] = flow_bytes = flows.get(key, 0) + size
        buf_b.append(size)
        last = len(buf_b) == 20
        if not last:
            stream.append(size)
        b = np.array(buf_b, dtype=float)
        s = np.array(stream, dtype=float)
        mag = rad = cov = 0.0
        if len(s):
            mag = math.sqrt(s.mean() + s.mean())
            rad = math.sqrt(s.var() + s.var())
            cov = float(((s - s.mean()) * (s - s.mean())).mean())
        out.append([flow_bytes, b.sum(), b.min(), b.max(), b.mean(), b.std(), size, mag, rad, cov])
        if last:
            buf_b, stream = [], []
    return np.array(out)


def _mixed_frames(m: int, seed: int) -> list[bytes]:
    rng = np.random.default_rng(seed)
    pool = [b for b, _ in FRAMES.values()]
    return [pool[i] for i in rng.integers(0, len(pool), m)]


@pytest.mark.parametrize("window", [10, 100])
def test_v1_size_columns_follow_dpkt_len(window: int) -> None:
    """The ten size-derived v1 columns equal a plain dpkt computation, and differ from the captured-length rule."""
    frames = _mixed_frames(3 * window, seed=window)
    ex = WindowExtractor(window=window, release="v1")
    df = WindowBatch.concat([ex.feed(T0 + np.arange(len(frames)) * 0.001, frames), ex.flush()]).features
    assert tuple(df.columns) == V1_COLUMNS and len(df) == 3
    ref = _reference_v1_sizes(frames)
    old = _reference_v1_sizes(frames, by_dpkt=False)
    want = ref.reshape(3, window, -1).mean(axis=1)
    wrong = old.reshape(3, window, -1).mean(axis=1)
    got = df[list(SIZE_COLUMNS)].to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-9)
    for j, col in enumerate(SIZE_COLUMNS):
        assert not np.allclose(got[:, j], wrong[:, j], rtol=1e-9, atol=0), col


def test_v1_padded_syn_flood_is_54_and_v2_is_60() -> None:
    """A flood of padded 60-byte SYNs: v1 sizes are 54 (spec §5 sample values), v2 keeps 60."""
    frames = [tcp_frame(flags=0x02, pad_to=60)] * 200
    ts = T0 + np.arange(200) * 0.001
    v1 = WindowExtractor(window=100, release="v1").feed(ts, frames).features.iloc[0]
    assert v1["Tot sum"] == pytest.approx(567) and v1["Magnitue"] == pytest.approx(math.sqrt(108))
    assert v1["Min"] == v1["Max"] == v1["AVG"] == v1["Tot size"] == 54
    assert v1["Header_Length"] == pytest.approx(54 * 50.5)
    v2 = WindowExtractor(window=100, release="v2").feed(ts, frames).features.iloc[0]
    assert v2["Min"] == v2["Max"] == v2["AVG"] == 60 and v2["Tot sum"] == 6000


def test_v1_arp_padded_keeps_60() -> None:
    frames = [arp_frame(pad_to=60)] * 10 + [arp_frame()] * 10
    df = WindowExtractor(window=10, release="v1").feed(T0 + np.arange(20) * 0.001, frames).features
    assert df["Tot size"].tolist() == [60, 42]
    assert df["Header_Length"].tolist() == [0, 0]


# ---------------------------------------------------------------------------------------------
# the v1 counter mapping, with windows where every flag count differs
# ---------------------------------------------------------------------------------------------

# one TCP flow, one flag per packet, each flag a different number of times, in this order:
# ACK 5, PSH 4, RST 3, SYN 2, FIN 1 (15 packets). The running counts averaged over the 15
# records are then ACK 65/15, PSH 34/15, RST 15/15, SYN 5/15, FIN 1/15: all different.
_FLAG_RUN = [0x10] * 5 + [0x08] * 4 + [0x04] * 3 + [0x02] * 2 + [0x01] * 1


def _counter_reference(flags: Sequence[int]) -> dict[str, float]:
    """Window means of the running per-flow counters under the original mapping (spec §5)."""
    run = dict.fromkeys(("FIN", "SYN", "RST", "PSH", "ACK"), 0)
    acc = dict.fromkeys(run, 0)
    bits = {"FIN": 0x01, "SYN": 0x02, "RST": 0x04, "PSH": 0x08, "ACK": 0x10}
    for f in flags:
        for name, bit in bits.items():
            run[name] += bool(f & bit)
            acc[name] += run[name]
    n = len(flags)
    return {
        "ack_count": acc["FIN"] / n,
        "syn_count": acc["SYN"] / n,
        "fin_count": acc["RST"] / n,
        "rst_count": acc["ACK"] / n,
    }


def test_v1_counter_mapping_distinguishes_every_counter() -> None:
    """ack_count counts FIN, syn_count SYN, fin_count RST, rst_count ACK; every value distinct.

    With W = 15 and the run above, each flag's counter has its own window mean, so any
    swap of the mapping (including the fixed S3 mapping, or a counter fed by PSH) fails.
    W = 1 gives the running counts themselves; the last record holds the totals.
    """
    frames = [tcp_frame(flags=f, pad_to=60) for f in _FLAG_RUN]
    ts = T0 + np.arange(len(frames)) * 0.001
    row = WindowExtractor(window=15, release="v1").feed(ts, frames).features.iloc[0]
    got = {c: float(row[c]) for c in ("ack_count", "syn_count", "fin_count", "rst_count")}
    assert got == pytest.approx(
        {"ack_count": 1 / 15, "syn_count": 5 / 15, "fin_count": 1.0, "rst_count": 65 / 15}
    )
    assert got == pytest.approx(_counter_reference(_FLAG_RUN))
    # the flag fractions keep the plain mapping
    fractions = [row[f"{f}_flag_number"] for f in ("fin", "syn", "rst", "psh", "ack")]
    assert fractions == pytest.approx([1 / 15, 2 / 15, 3 / 15, 4 / 15, 5 / 15])
    per = WindowExtractor(window=1, release="v1").feed(ts, frames).features
    totals = per[["ack_count", "syn_count", "fin_count", "rst_count"]].iloc[-1].tolist()
    assert totals == [1, 2, 3, 5]  # FIN, SYN, RST, ACK totals; PSH (4) has no v1 column
    assert per["rst_count"].tolist()[:5] == [1, 2, 3, 4, 5] and per["ack_count"].tolist()[:14] == [0] * 14


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_v1_counters_match_reference_on_shuffled_flags(seed: int) -> None:
    """Shuffled single-flag packets of one flow against the plain running-count reference."""
    rng = np.random.default_rng(seed)
    flags = [int(f) for f in rng.permutation(_FLAG_RUN)]
    frames = [tcp_frame(flags=f) for f in flags]
    row = WindowExtractor(window=15, release="v1").feed(T0 + np.arange(15) * 0.001, frames).features.iloc[0]
    want = _counter_reference(flags)
    assert {c: float(row[c]) for c in want} == pytest.approx(want)


def test_v1_counters_are_per_flow_and_tcp_only() -> None:
    """Two interleaved flows keep separate counters; UDP and ARP records carry 0."""
    a = [tcp_frame(sport=40000, flags=0x02)] * 3  # flow A: 3 SYN
    b = [tcp_frame(sport=40001, flags=0x10)] * 2  # flow B: 2 ACK
    frames = [a[0], b[0], a[1], b[1], a[2], _small_udp(), arp_frame()]
    per = WindowExtractor(window=1, release="v1").feed(T0 + np.arange(7) * 0.001, frames).features
    assert per["syn_count"].tolist() == [1, 0, 2, 0, 3, 0, 0]
    assert per["rst_count"].tolist() == [0, 1, 0, 2, 0, 0, 0]
    assert per["ack_count"].tolist() == [0] * 7 and per["fin_count"].tolist() == [0] * 7
