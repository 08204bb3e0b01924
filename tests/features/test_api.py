"""The public surface of iomt_ids.features stays importable and in step with __all__."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import iomt_ids.features as features
from iomt_ids.features import META_COLUMNS, V2_COLUMNS, WindowBatch, iter_windows

from .pcapgen import T0, arp_frame, tcp_frame, write_pcap_dpkt


def test_all_names_exist_and_are_unique() -> None:
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


def test_write_features_csv_round_trips_and_keeps_v1_fractions(tmp_path: Path) -> None:
    import io

    import pandas as pd

    from iomt_ids.features import V1_COLUMNS, write_features_csv

    rng = np.random.default_rng(0)
    v1 = pd.DataFrame(rng.random((5, len(V1_COLUMNS))) * 100, columns=list(V1_COLUMNS))
    v1.loc[0, "Protocol Type"] = 1.05
    v1.loc[1, "Std"] = np.nan
    v1.loc[2, "Rate"] = np.inf
    buf = io.BytesIO()
    write_features_csv(v1, buf)
    back = pd.read_csv(io.BytesIO(buf.getvalue()))
    np.testing.assert_array_equal(back.to_numpy(), v1.to_numpy())
    v2 = pd.DataFrame(np.ones((2, len(V2_COLUMNS))), columns=list(V2_COLUMNS))
    v2.loc[1, "Number"] = 7
    buf = io.BytesIO()
    write_features_csv(v2, buf)
    lines = buf.getvalue().decode().splitlines()
    row = dict(zip(V2_COLUMNS, lines[2].split(","), strict=True))
    assert row["Number"] == "7" and row["AVG"] == "1.0" and row["Protocol Type"] == "1"
