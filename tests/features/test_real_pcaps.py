"""Every real third-party pcap in ../shared/data/pcaps extracts, or fails with a clear message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from iomt_ids.exceptions import CaptureError
from iomt_ids.features import WindowBatch, WindowExtractor, extract_file, read_capture
from iomt_ids.features.reference import reference_v2_rows

from .checks import assert_v2_invariants

PCAPS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "pcaps"
NAMES = sorted(p.name for p in PCAPS.glob("*.pcap*")) if PCAPS.is_dir() else []
UNSUPPORTED = {"dlt_ppp.pcap": 9, "BGP_Cisco_hdlc_slarp.pcap": 9}


def _path(name: str) -> Path:
    if not PCAPS.is_dir():
        pytest.skip(f"real pcaps not found at {PCAPS} (only present beside the checkout)")
    return PCAPS / name


def test_real_pcaps_are_present_or_skipped() -> None:
    if not PCAPS.is_dir():
        pytest.skip(f"real pcaps not found at {PCAPS}")
    assert len(NAMES) >= 13


@pytest.mark.parametrize("name", NAMES or ["<none>"])
@pytest.mark.parametrize("window", [10, 100])
def test_real_pcap_extracts_or_fails_clearly(name: str, window: int) -> None:
    path = _path(name)
    if name in UNSUPPORTED:
        with pytest.raises(CaptureError, match=rf"{name}: unsupported link type {UNSUPPORTED[name]}"):
            extract_file(path, window=window, progress=False)
        return
    df, stats = extract_file(path, window=window, progress=False)
    assert stats.packets_read > 0
    assert stats.packets_accepted + sum(stats.skipped.values()) >= stats.packets_read
    assert len(df) == -(-stats.packets_accepted // window)
    assert_v2_invariants(df)
    # an independent plain-dpkt implementation gives the same rows
    ref = reference_v2_rows(path, window=window)
    assert ref.shape == df.shape
    np.testing.assert_array_equal(df.to_numpy(), ref)  # bit for bit
    # v1 runs too
    v1, _ = extract_file(path, window=window, release="v1", progress=False)
    assert len(v1) == len(df) and np.isfinite(v1.to_numpy()).all()


def test_real_pcap_streaming_matches_file_path() -> None:
    path = _path("coap_mqtt.pcap")
    df, _ = extract_file(path, window=10, progress=False)
    ex = WindowExtractor(window=10)
    parts = []
    for batch in read_capture(path, batch_size=333):
        for start in range(0, len(batch), 50):
            parts.append(
                ex.feed(batch.ts[start : start + 50], list(batch.frames[start : start + 50]), batch.linktype)
            )
    parts.append(ex.flush())
    got = WindowBatch.concat(parts)
    np.testing.assert_array_equal(got.features.to_numpy(), df.to_numpy())
    assert got.meta["window_id"].tolist() == list(range(len(df)))
    assert set(got.meta["proto"]) <= {"TCP", "UDP", "ICMP", "IGMP", "ARP"} | {str(i) for i in range(256)}
    assert got.meta["src_ip"].str.count(r"\.").eq(3).all()
