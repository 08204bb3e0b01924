"""The public surface of iomt_ids.features stays importable and in step with __all__."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import iomt_ids.features as features
from iomt_ids.features import META_COLUMNS, V2_COLUMNS, WindowBatch, iter_windows

from .pcapgen import T0, arp_frame, tcp_frame, write_pcap_dpkt


def test_all_names_exist_and_are_sorted() -> None:
    assert all(hasattr(features, name) for name in features.__all__)
    assert len(set(features.__all__)) == len(features.__all__)
    public = {
        n for n in dir(features) if not n.startswith("_") and not isinstance(getattr(features, n), type(np))
    }
    assert {"WindowExtractor", "read_capture", "extract_file", "extract_to_csv", "CaptureStats"} <= public


def test_iter_windows_streams_file_windows_with_meta(tmp_path: Path) -> None:
    packets = [(T0 + i * 0.01, tcp_frame(sport=5000, dport=1883)) for i in range(15)]
    packets += [(T0 + 1, arp_frame())] * 10
    path = write_pcap_dpkt(tmp_path / "s.pcap", packets)
    batches = list(iter_windows(path, window=10, meta=True, batch_size=4))
    both = WindowBatch.concat(batches)
    assert tuple(both.features.columns) == V2_COLUMNS and tuple(both.meta.columns) == META_COLUMNS
    assert both.meta["window_id"].tolist() == [0, 1, 2]
    assert both.meta["n_packets"].tolist() == [10, 10, 5]
    assert both.meta["proto"].tolist() == ["TCP", "TCP", "ARP"]  # 5 TCP + 5 ARP: the first seen wins
    assert both.meta["dest_port"].tolist()[0] == 1883
