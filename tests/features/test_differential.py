"""Randomised differential test: the bulk dissector against a plain dpkt loop on odd frames."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from iomt_ids.features import extract_file
from iomt_ids.features.reference import reference_v2_rows

from .pcapgen import write_pcap


def _random_frame(rng: np.random.Generator) -> bytes:
    etype = int(rng.choice([0x0800, 0x0800, 0x0800, 0x0806, 0x86DD, 0x8100, 0x0042]))
    head = bytes(12) + struct.pack(">H", etype)
    if etype == 0x0806:
        return head + rng.bytes(int(rng.integers(0, 50)))
    if etype != 0x0800:
        return head + rng.bytes(int(rng.integers(0, 60)))
    ihl = int(rng.choice([5, 5, 5, 6, 8, 15, 4, 0]))
    proto = int(rng.choice([6, 6, 17, 17, 1, 2, 47, 132]))
    payload_len = int(rng.integers(0, 80))
    total = int(rng.choice([20 * 0 + ihl * 4 + payload_len, 0, int(rng.integers(0, 200))]))
    frag = int(rng.choice([0, 0, 0, 0x2000, 0x0010, 0x4000]))
    ip = struct.pack(">BBHHHBBH4s4s", 0x40 | ihl, 0, total, 1, frag, int(rng.integers(1, 256)), proto, 0,
                     rng.bytes(4), rng.bytes(4))  # fmt: skip
    ip += rng.bytes(max(0, ihl * 4 - 20))
    if proto == 6:
        doff = int(rng.choice([5, 5, 8, 15, 3]))
        l4 = struct.pack(">HHIIBBHHH", int(rng.integers(0, 100)), int(rng.choice([80, 443, 22, 1883])), 0, 0,
                         doff << 4, int(rng.integers(0, 256)), 0, 0, 0)  # fmt: skip
        l4 += rng.bytes(max(0, doff * 4 - 20))
    elif proto == 17:
        l4 = struct.pack(">HHHH", int(rng.choice([53, 67, 68, 5353])), int(rng.choice([53, 67, 68])), 8, 0)
    else:
        l4 = b""
    frame = head + ip + l4 + rng.bytes(payload_len)
    cut = int(rng.integers(14, len(frame) + 1)) if rng.random() < 0.3 else len(frame)
    return frame[:cut] + (bytes(int(rng.integers(0, 10))) if rng.random() < 0.2 else b"")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_frames_match_plain_dpkt(tmp_path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    frames = [_random_frame(rng) for _ in range(600)]
    t0 = 1_700_000_000
    path = write_pcap(
        tmp_path / "rand.pcap", [(t0 + i // 7, (i * 7919) % 1_000_000, f) for i, f in enumerate(frames)]
    )
    df, stats = extract_file(path, window=10, progress=False)
    ref = reference_v2_rows(path, window=10)
    assert stats.packets_accepted > 100
    assert ref.shape == df.shape
    np.testing.assert_array_equal(df.to_numpy(), ref)  # bit for bit
