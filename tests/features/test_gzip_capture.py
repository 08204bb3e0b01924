"""Gzip-compressed captures (``.pcap.gz``, ``.pcapng.gz``) read like the plain files."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import dpkt
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from iomt_ids.cli import _register, app
from iomt_ids.exceptions import CaptureError
from iomt_ids.features import extract_file, read_capture

from .pcapgen import (
    T0,
    arp_frame,
    icmp_frame,
    pcapng_epb,
    pcapng_idb,
    pcapng_shb,
    tcp_frame,
    udp_frame,
    write_pcap_dpkt,
)


def _packets() -> list[tuple[float, bytes]]:
    frames = [
        tcp_frame(flags=dpkt.tcp.TH_SYN),
        tcp_frame(flags=dpkt.tcp.TH_SYN | dpkt.tcp.TH_ACK, sport=80, dport=40000),
        udp_frame(5353, 53, b"q" * 17),
        icmp_frame(),
        arp_frame(),
    ]
    return [(T0 + i * 0.0125, frames[i % len(frames)]) for i in range(437)]


def _gzip(src: Path, dst: Path) -> Path:
    with src.open("rb") as fin, gzip.open(dst, "wb", compresslevel=9) as fout:
        shutil.copyfileobj(fin, fout)
    return dst


@pytest.fixture
def plain(tmp_path: Path) -> Path:
    return write_pcap_dpkt(tmp_path / "sample.pcap", _packets())


@pytest.mark.parametrize("window", [10, 100])
def test_gzipped_pcap_extracts_the_same_rows(tmp_path: Path, plain: Path, window: int) -> None:
    gz = _gzip(plain, tmp_path / "sample.pcap.gz")
    expected, plain_stats = extract_file(plain, window=window, progress=False)
    got, gz_stats = extract_file(gz, window=window, progress=False)
    assert len(expected) > 0
    pd.testing.assert_frame_equal(got, expected)
    assert gz_stats.packets_read == plain_stats.packets_read == 437
    assert gz_stats.bytes_read == plain_stats.bytes_read == plain.stat().st_size


def test_gzip_is_recognised_by_its_magic_not_its_name(tmp_path: Path, plain: Path) -> None:
    odd = _gzip(plain, tmp_path / "capture.pcap")  # gzip content under a plain name
    with read_capture(odd) as reader:
        assert reader.compressed and reader.format == "pcap"
        assert reader.file_size == plain.stat().st_size  # from the gzip trailer
        ts = np.concatenate([b.ts for b in reader])
    with read_capture(plain) as reader:
        assert not reader.compressed
        np.testing.assert_array_equal(ts, np.concatenate([b.ts for b in reader]))


def test_gzipped_pcapng_reads(tmp_path: Path) -> None:
    frames = [tcp_frame(), udp_frame(1000, 53, b"x"), arp_frame()]
    body = (
        pcapng_shb()
        + pcapng_idb()
        + b"".join(pcapng_epb(1_700_000_000_000_000 + i, f) for i, f in enumerate(frames))
    )
    ng = tmp_path / "s.pcapng"
    ng.write_bytes(body)
    gz = _gzip(ng, tmp_path / "s.pcapng.gz")
    with read_capture(gz) as reader:
        batches = list(reader)
        assert reader.format == "pcapng"
    assert [bytes(f) for b in batches for f in b.frames] == frames


def test_truncated_gzip_keeps_what_was_read(tmp_path: Path, plain: Path) -> None:
    gz = _gzip(plain, tmp_path / "sample.pcap.gz")
    cut = tmp_path / "cut.pcap.gz"
    cut.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])
    with read_capture(cut) as reader:
        n = sum(len(b) for b in reader)
    assert 0 < n < 437
    assert "corrupt_gzip" in reader.stats.skipped and "gzip stream broken" in reader.stats.errors[0]


def test_gzip_of_something_else_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.pcap.gz"
    with gzip.open(bad, "wb") as fh:
        fh.write(b"hello, this is not a capture")
    with pytest.raises(CaptureError, match="after gzip decompression"):
        read_capture(bad)


def test_cli_extract_takes_a_gzipped_capture(tmp_path: Path, plain: Path) -> None:
    _register()
    gz = _gzip(plain, tmp_path / "sample.pcap.gz")
    out_plain, out_gz = tmp_path / "plain.csv", tmp_path / "gz.csv"
    runner = CliRunner()
    for src, out in ((plain, out_plain), (gz, out_gz)):
        result = runner.invoke(app, ["extract", str(src), "-w", "10", "-o", str(out), "-q"])
        assert result.exit_code == 0, result.output
    assert out_gz.read_text() == out_plain.read_text()
