"""Legacy v1 (45-column) features: per-packet state records, averaged over W (spec §5).

Every accepted packet produces one record of running state; a v1 row is the
column-wise mean of W consecutive records. The quirks of CIC's original code are
kept on purpose, because models trained on the v1 CSVs expect them:
``Header_Length`` is the cumulative byte count of the packet's flow, ``Rate`` and
``Srate`` are packets per second of the flow so far and carry over to packets
that do not update them, ``Drate`` is always 0, the flag counters use the
original (shifted) mapping, the size statistics run over a 20-packet buffer,
``IAT`` restarts from 0 every 20th packet (so it holds an absolute timestamp
there), and ``Magnitue``/``Radius``/``Covariance``/``Variance``/``Weight`` come
from two identical "stream" lists. Never train new models on v1 ``IAT``.

The frame size is dpkt's ``len(eth)`` (the ``LV1`` row of the records), not the
captured length that v2 uses: Ethernet padding after an IPv4 packet is not
counted, so a padded 60-byte SYN has size 54; ARP frames keep their captured
length (spec §5). It feeds ``Header_Length``, ``Tot sum``, ``Min``, ``Max``,
``AVG``, ``Std``, ``Tot size``, ``Magnitue``, ``Radius``, ``Covariance`` and, via
"are the sizes all equal", ``Variance``.

The flow table keeps a few aggregates per flow instead of every packet, and is
bounded (:data:`MAX_FLOWS`, oldest flow evicted first), so memory stays bounded on
endless input. Statistics are computed incrementally, so values can differ from
CIC's NumPy results in the last bits.
"""

from __future__ import annotations

import math

import numpy as np

from iomt_ids.features.dissect import KIND_ARP, KIND_IPV4, KIND_TCP, KIND_UDP, PacketRecords

__all__ = ["MAX_FLOWS", "V1State", "v1_window_means"]

MAX_FLOWS = 200_000
_BUFFER = 20


def _pop_stats(n: int, s: float, sq: float) -> tuple[float, float]:
    mean = s / n
    return mean, max(sq / n - mean * mean, 0.0)


class V1State:
    """Running state of the v1 extractor for one stream (or one 10 MB chunk)."""

    def __init__(self) -> None:
        self.flows: dict[tuple[int, int, int, int, int], list[float]] = {}
        self.rate = 0.0
        self.ref_ts = 0.0
        # 20-packet size buffer B
        self.b_n = 0
        self.b_sum = 0.0
        self.b_sq = 0.0
        self.b_min = math.inf
        self.b_max = -math.inf
        # the "in"/"out" stream list (identical)
        self.s_n = 0
        self.s_sum = 0.0
        self.s_sq = 0.0
        self.s_first = 0.0
        self.s_varies = False

    def records(self, rec: PacketRecords) -> np.ndarray:
        """Return the (m, 45) per-packet v1 records of ``rec``, updating the state."""
        m = len(rec)
        out = np.zeros((m, 45), dtype=np.float64)
        rows = rec.ints.T.tolist()
        tss = rec.ts.tolist()
        flows = self.flows
        for i in range(m):
            _caplen, proto, ttl, _h, flags, sport, dport, src, dst, kind, size = rows[i]
            t = tss[i]
            r = out[i]
            tcp = kind & KIND_TCP
            udp = kind & KIND_UDP
            ipv = kind & KIND_IPV4
            # size buffer B and the stream lists
            self.b_n += 1
            self.b_sum += size
            self.b_sq += size * size
            self.b_min = min(self.b_min, size)
            self.b_max = max(self.b_max, size)
            bmean, bvar = _pop_stats(self.b_n, self.b_sum, self.b_sq)
            r[32], r[33], r[34], r[35], r[36] = self.b_sum, self.b_min, self.b_max, bmean, math.sqrt(bvar)
            if self.b_n == _BUFFER:
                iat = t  # the IAT reference restarts from 0
            else:
                iat = t - self.ref_ts
                if self.s_n == 0:
                    self.s_first = size
                elif size != self.s_first:
                    self.s_varies = True
                self.s_n += 1
                self.s_sum += size
                self.s_sq += size * size
            self.ref_ts = t
            if self.s_n:
                smean, svar = _pop_stats(self.s_n, self.s_sum, self.s_sq)
                r[40] = math.sqrt(2.0 * smean)  # Magnitue
                r[41] = math.sqrt(2.0 * svar)  # Radius
                r[42] = svar  # Covariance
                r[43] = 1.0 if self.s_varies and svar > 0 else 0.0  # Variance (a ratio)
                r[44] = float(self.s_n * self.s_n)  # Weight
            if self.b_n == _BUFFER:
                self.b_n, self.b_sum, self.b_sq = 0, 0.0, 0.0
                self.b_min, self.b_max = math.inf, -math.inf
                self.s_n, self.s_sum, self.s_sq, self.s_varies = 0, 0.0, 0.0, False
            r[37] = size  # Tot size
            r[38] = iat
            r[39] = self.b_n  # Number
            # flows
            if tcp or udp:
                a, b = (src, sport), (dst, dport)
                lo, hi = (a, b) if a <= b else (b, a)
                key = (lo[0], lo[1], hi[0], hi[1], 6 if tcp else 17)
                f = flows.get(key)
                if f is None:
                    if len(flows) >= MAX_FLOWS:
                        del flows[next(iter(flows))]
                    # first ts, count, bytes, FIN, SYN, RST, PSH, ACK counts
                    f = flows[key] = [t, 0, 0, 0, 0, 0, 0, 0]
                f[1] += 1
                f[2] += size
                r[0] = f[2]  # Header_Length: bytes of the flow so far
                duration = t - f[0]
                if duration != 0:
                    self.rate = f[1] / duration
                if tcp:
                    f[3] += flags & 1
                    f[4] += (flags >> 1) & 1
                    f[5] += (flags >> 2) & 1
                    f[6] += (flags >> 3) & 1
                    f[7] += (flags >> 4) & 1
                    # original mapping: ack_count<-FIN, syn_count<-SYN, fin_count<-RST, rst_count<-ACK
                    r[13], r[14], r[15], r[16] = f[3], f[4], f[5], f[7]
            r[1] = proto
            r[2] = ttl
            r[3] = r[4] = self.rate
            if tcp:
                for j, bit in enumerate((0x01, 0x02, 0x04, 0x08, 0x10, 0x40, 0x80)):
                    r[6 + j] = 1.0 if flags & bit else 0.0
                ports = (sport, dport)
                r[17] = 80 in ports
                r[18] = 443 in ports
                r[20] = 23 in ports
                r[21] = 25 in ports
                r[22] = 22 in ports
                r[23] = 21 in ports
                r[24] = 1.0
            elif udp:
                r[19] = sport == 53 or dport == 53
                r[25] = 1.0
                r[26] = sport == 67 or dport == 68
            if kind & KIND_ARP:
                r[27] = 1.0
            elif ipv:
                r[28] = proto == 1
                r[29] = proto == 2
                r[30] = r[31] = 1.0
        return out


def v1_window_means(records: np.ndarray, n: int) -> np.ndarray:
    """Mean of each run of ``n`` consecutive v1 records: (k·n, 45) -> (k, 45)."""
    k = len(records) // n
    cube = np.ascontiguousarray(records.reshape(k, n, -1).transpose(0, 2, 1))
    return cube.sum(axis=2) / n
