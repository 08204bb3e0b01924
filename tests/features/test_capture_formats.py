"""The same packets written as pcap, pcapng (one or several sections) and gzip read back identically.

Also pins the split of the readers: :mod:`iomt_ids.features.packets` is the public face,
the formats live in :mod:`~iomt_ids.features.pcap` and :mod:`~iomt_ids.features.pcapng`,
and the batch building they share in :mod:`~iomt_ids.features.batch`.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from iomt_ids.features import batch, packets, pcap, pcapng, read_capture
from iomt_ids.features.batch import PacketBatch

from .pcapgen import (
    arp_frame,
    icmp_frame,
    pcapng_epb,
    pcapng_idb,
    pcapng_shb,
    tcp_frame,
    udp_frame,
    write_pcap,
)

SEC = 1_700_000_000
# 15625 µs = 1/64 s: every timestamp is exact in float64 whatever the format computes
STEP_US = 15625
N = 37


def _frames() -> list[bytes]:
    base = [
        tcp_frame(flags=0x02),
        tcp_frame(flags=0x12, sport=80, dport=40000, opts=b"\x02\x04\x05\xb4", data=b"x" * 300),
        arp_frame(),
        udp_frame(5353, 53, b"q" * 17),
        icmp_frame(pad_to=60),
    ]
    return [base[i % len(base)] for i in range(N)]


def _us(i: int) -> int:
    return SEC * 1_000_000 + i * STEP_US


def _write_pcap(path: Path, endian: str = "<") -> Path:
    return write_pcap(path, [(*divmod(_us(i), 1_000_000), f) for i, f in enumerate(_frames())], endian=endian)


def _write_pcapng(path: Path, endian: str = "<") -> Path:
    blocks = [pcapng_shb(endian), pcapng_idb(endian)]
    blocks += [pcapng_epb(_us(i), f, endian) for i, f in enumerate(_frames())]
    path.write_bytes(b"".join(blocks))
    return path


#: packet index -> byte order of the section the multi-section file starts there (SHB + 2 IDBs)
SECTIONS = {0: "<", 12: ">", 25: "<"}
#: packet indexes where it declares one more interface in the middle of a section
NEW_IFACE_AT = (6, 30)


def _write_pcapng_sections(path: Path) -> Path:
    """Three sections (little, big, little endian), each with interfaces of different timestamp
    resolutions, one interface declared in the middle of a section, packets spread over them."""
    blocks: list[bytes] = []
    endian = "<"
    ifaces: list[int] = []  # per interface: timestamp units per second
    for i, frame in enumerate(_frames()):
        if i in SECTIONS:
            endian = SECTIONS[i]
            # microseconds (the default) and 2**-6 s units (if_tsresol 0x86): both exact here
            blocks += [pcapng_shb(endian), pcapng_idb(endian), pcapng_idb(endian, tsresol=0x86)]
            ifaces = [1_000_000, 64]
        if i in NEW_IFACE_AT:
            blocks.append(pcapng_idb(endian, tsresol=6))
            ifaces.append(1_000_000)
        iface = i % len(ifaces)
        blocks.append(pcapng_epb(_us(i) * ifaces[iface] // 1_000_000, frame, endian, iface=iface))
    path.write_bytes(b"".join(blocks))
    return path


def _gzip(path: Path) -> Path:
    out = path.with_name(path.name + ".gz")
    out.write_bytes(gzip.compress(path.read_bytes(), mtime=0))
    return out


def _batches(path: Path, batch_size: int) -> list[PacketBatch]:
    with read_capture(path, batch_size=batch_size) as reader:
        out = list(reader)
    assert reader.stats.errors == [] and reader.stats.skipped == {}
    assert reader.stats.packets_read == N
    assert reader.stats.bytes_read == reader.file_size
    return out


def _content(batches: list[PacketBatch]) -> list[tuple]:
    """What a batch means, independent of where its frames lie in the reader's buffer."""
    return [
        (
            b.linktype,
            b.ts.dtype,
            b.ts.tobytes(),
            list(b.frames),
            b.record_sizes.dtype,
            b.record_sizes.tolist(),
        )
        for b in batches
    ]


def _joined(batches: list[PacketBatch]) -> tuple:
    return (
        {b.linktype for b in batches},
        np.concatenate([b.ts for b in batches]).tobytes(),
        [f for b in batches for f in b.frames],
        np.concatenate([b.record_sizes for b in batches]).tolist(),
    )


@pytest.mark.parametrize("batch_size", [1, 5, 64, 65536])
def test_pcap_pcapng_and_gzip_give_identical_batches(tmp_path: Path, batch_size: int) -> None:
    paths = [
        _write_pcap(tmp_path / "le.pcap"),
        _write_pcap(tmp_path / "be.pcap", ">"),
        _write_pcapng(tmp_path / "le.pcapng"),
        _write_pcapng(tmp_path / "be.pcapng", ">"),
    ]
    paths += [_gzip(p) for p in paths]
    first = _content(_batches(paths[0], batch_size))
    assert [len(b[3]) for b in first] == [min(batch_size, N - i) for i in range(0, N, batch_size)]
    expected_ts = np.array([_us(i) / 1e6 for i in range(N)])
    np.testing.assert_array_equal(np.frombuffer(b"".join(b[2] for b in first)), expected_ts)
    assert [f for b in first for f in b[3]] == _frames()
    for path in paths[1:]:
        assert _content(_batches(path, batch_size)) == first, path.name


@pytest.mark.parametrize("batch_size", [1, 4, 64])
def test_pcapng_with_several_sections_and_interfaces_reads_as_the_pcap(
    tmp_path: Path, batch_size: int
) -> None:
    reference = _batches(_write_pcap(tmp_path / "ref.pcap"), 65536)
    path = _write_pcapng_sections(tmp_path / "sections.pcapng")
    for p in (path, _gzip(path)):
        got = _batches(p, batch_size)
        assert _joined(got) == _joined(reference), p.name
        # a batch ends where a section or an interface begins: none straddles a boundary
        ends = np.cumsum([len(b) for b in got]).tolist()
        assert (set(SECTIONS) - {0}) | set(NEW_IFACE_AT) <= set(ends)
        assert max(len(b) for b in got) <= batch_size


def test_packets_is_the_public_face_of_the_format_modules() -> None:
    assert packets.__all__ == [
        "LINKTYPE_ETHERNET",
        "LINKTYPE_LINUX_SLL",
        "LINKTYPE_LINUX_SLL2",
        "MAX_RECORD",
        "PAD",
        "SUPPORTED_LINKTYPES",
        "CaptureReader",
        "CaptureStats",
        "Frames",
        "PacketBatch",
        "read_capture",
    ]
    for name in ("Frames", "PacketBatch", "CaptureStats", "PAD", "SUPPORTED_LINKTYPES"):
        assert getattr(packets, name) is getattr(batch, name)
    assert set(pcap.PCAP_MAGICS) == {
        bytes.fromhex(m) for m in ("d4c3b2a1", "a1b2c3d4", "4d3cb2a1", "a1b23c4d")
    }
    assert pcapng.PCAPNG_MAGIC == bytes.fromhex("0a0d0d0a")


def test_pcapng_block_walk_stops_at_every_boundary() -> None:
    """The one walk of the pcapng reader: it stops at a full batch, an IDB, an SHB, the end, a bad block."""
    from iomt_ids.features.pcapng import _BAD, _END, _FULL, _INTERFACE, _SECTION, _walk_blocks

    epb = pcapng_epb(_us(0), tcp_frame())
    idb, shb_be = pcapng_idb(), pcapng_shb(">")
    data = epb * 3 + idb + epb + shb_be + b"\x00" * 8
    buf = memoryview(np.frombuffer(data + bytes(batch.PAD), dtype=np.uint8))
    end = len(data)
    offs, kinds, off, stop, _, _ = _walk_blocks(buf, 0, end, "<", 2)
    assert (offs, kinds, off, stop) == ([0, len(epb)], [6, 6], 2 * len(epb), _FULL)
    offs, _, off, stop, blen, _ = _walk_blocks(buf, off, end, "<", 10)
    assert (offs, off, stop, blen) == ([2 * len(epb)], 3 * len(epb), _INTERFACE, len(idb))
    offs, _, off, stop, blen, note = _walk_blocks(buf, off + blen, end, "<", 10)
    assert (len(offs), stop, blen, note) == (1, _SECTION, len(shb_be), ">")
    offs, _, off2, stop, _, _ = _walk_blocks(buf, off + blen, end, ">", 10)
    assert (offs, off2, stop) == ([], off + blen, _END)  # 8 bytes left: not a whole block header
    bad = struct.pack("<II", 6, 13) + b"\x00" * 16
    bad_buf = memoryview(np.frombuffer(bad + bytes(batch.PAD), dtype=np.uint8))
    *_, stop, _, note = _walk_blocks(bad_buf, 0, len(bad), "<", 10)
    assert stop == _BAD and note == "block type 0x00000006 with invalid length 13"
