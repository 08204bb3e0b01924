"""Packet capture -> CICIoMT2024 window features.

* :mod:`~iomt_ids.features.schema`: the ordered column contracts (v1, v2).
* :mod:`~iomt_ids.features.packets`: read pcap / pcapng files in batches.
* :mod:`~iomt_ids.features.windows`: :class:`WindowExtractor`, packets -> rows.
* :mod:`~iomt_ids.features.extract`: whole files to a DataFrame or a CSV.
"""

from __future__ import annotations

from iomt_ids.features.extract import extract_file, extract_to_csv, iter_windows, write_features_csv
from iomt_ids.features.packets import (
    SUPPORTED_LINKTYPES,
    CaptureReader,
    CaptureStats,
    Frames,
    PacketBatch,
    read_capture,
)
from iomt_ids.features.schema import RELEASES, V1_COLUMNS, V2_COLUMNS, columns_for, detect_release
from iomt_ids.features.windows import CIC_CHUNK_BYTES, META_COLUMNS, WindowBatch, WindowExtractor

__all__ = [
    "CIC_CHUNK_BYTES",
    "META_COLUMNS",
    "RELEASES",
    "SUPPORTED_LINKTYPES",
    "V1_COLUMNS",
    "V2_COLUMNS",
    "CaptureReader",
    "CaptureStats",
    "Frames",
    "PacketBatch",
    "WindowBatch",
    "WindowExtractor",
    "columns_for",
    "detect_release",
    "extract_file",
    "extract_to_csv",
    "iter_windows",
    "read_capture",
    "write_features_csv",
]
