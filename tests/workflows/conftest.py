"""Fixtures of the scan tests: a real small bundle, a site bundle, and an archive of captures.

Everything is real: the bundle is a DNN trained (a few epochs) on windows of synthetic
benign and SYN-flood captures built with dpkt (``tests.detection.traffic``); the site
bundle is ``adapt_site`` over a benign capture. The archive mixes synthetic captures
(classic pcap with IPv6 and non-IP frames between the IPv4/ARP ones, pcapng whose link
type changes every few hundred packets, a gzip'ed pcap) with the lab captures shipped in
the package (``iomt_ids/datasets``).
"""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.detection import traffic
from tests.features import pcapgen

DATASETS = Path(__file__).resolve().parents[2] / "src" / "iomt_ids" / "datasets"
TIMELINE = DATASETS / "timelines" / "seed11" / "timeline.pcap.gz"
LAB_BENIGN = DATASETS / "lab" / "captures" / "Benign_lab.pcap"
FLOOD_CLASS = "TCP/IP DoS SYN"


def _templates(rng: np.random.Generator) -> dict[str, list[bytes]]:
    """Frame pools: benign chatter, SYN floods from two sources, frames the windows do not take."""
    benign = [f for _, f in traffic.benign(600, rng, traffic.T0)]
    flood = [f for _, f in traffic.syn_flood(256, rng, traffic.T0)]
    flood2 = [f for _, f in traffic.syn_flood(256, rng, traffic.T0, src="10.0.0.88")]
    other = [pcapgen.ipv6_frame(), pcapgen.eth(b"\x00" * 46, etype=0x88CC)]  # IPv6, LLDP
    return {"benign": benign, "flood": flood, "flood2": flood2, "other": other}


def synthetic_packets(n: int, seed: int = 0) -> list[tuple[float, bytes]]:
    """``n`` packets: benign, a flood, a quiet gap, benign, a second flood, benign; 3 % not IPv4/ARP."""
    rng = np.random.default_rng(seed)
    tpl = _templates(rng)
    # (pool, share of packets, mean gap in s); floods carry some benign background
    plan = [("benign", 0.2, 4e-3), ("flood", 0.3, 3e-5), ("benign", 0.1, 4e-3), ("gap", 0.0, 30.0),
            ("flood2", 0.25, 3e-5), ("benign", 0.15, 4e-3)]  # fmt: skip
    out: list[tuple[float, bytes]] = []
    t = traffic.T0
    for kind, share, gap in plan:
        if kind == "gap":
            t += gap
            continue
        m = int(round(share * n))
        ts = t + np.cumsum(rng.exponential(gap, m))
        pick = rng.integers(0, 1 << 30, m)
        mix = rng.random(m)
        for k in range(m):
            if mix[k] < 0.03:
                pool = tpl["other"]
            elif kind != "benign" and mix[k] < 0.08:
                pool = tpl["benign"]
            else:
                pool = tpl[kind]
            out.append((float(ts[k]), pool[int(pick[k]) % len(pool)]))
        t = float(ts[-1])
    return out


def write_pcap(path: Path, packets: list[tuple[float, bytes]]) -> Path:
    """Classic little-endian microsecond pcap, written in one go (fast for 10^5 packets)."""
    parts = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)]
    hdr = struct.Struct("<IIII")
    for ts, frame in packets:
        sec = int(ts)
        usec = min(int(round((ts - sec) * 1e6)), 999_999)
        parts.append(hdr.pack(sec, usec, len(frame), len(frame)))
        parts.append(frame)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(parts))
    return path


def write_pcapng_two_links(path: Path, packets: list[tuple[float, bytes]], run: int = 300) -> Path:
    """pcapng: interface 0 Ethernet (µs), interface 1 Linux cooked SLL (ns) declared after 500 packets;
    then runs of ``run`` packets alternate between them (every change ends a reader batch)."""
    parts = [pcapgen.pcapng_shb(), pcapgen.pcapng_idb(linktype=1)]
    for i, (ts, frame) in enumerate(packets):
        if i == 500:
            parts.append(pcapgen.pcapng_idb(linktype=113, tsresol=9))
        iface = 1 if i >= 500 and (i // run) % 2 else 0
        if iface:
            parts.append(pcapgen.pcapng_epb(int(round(ts * 1e9)), pcapgen.sll(frame), iface=1))
        else:
            parts.append(pcapgen.pcapng_epb(int(round(ts * 1e6)), frame, iface=0))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(parts))
    return path


@pytest.fixture(scope="session")
def scan_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real 19-class DNN bundle trained on W=10 and W=100 windows of a benign and a flood capture."""
    from iomt_ids.features.extract import extract_file
    from iomt_ids.workflows import fit_bundle

    root = tmp_path_factory.mktemp("train")
    rng = np.random.default_rng(7)
    pcaps = {
        "Benign": traffic.write_pcap(root / "benign.pcap", traffic.benign(3000, rng, traffic.T0)),
        FLOOD_CLASS: traffic.write_pcap(root / "flood.pcap", traffic.syn_flood(6000, rng, traffic.T0)),
    }
    frames, labels = [], []
    for label, path in pcaps.items():
        for w in (10, 100):
            rows, _ = extract_file(path, window=w, progress=False)
            frames.append(rows)
            labels += [label] * len(rows)
    bundle, _ = fit_bundle(
        pd.concat(frames, ignore_index=True), np.array(labels), task=19, model="dnn", preset="fast", epochs=20,
        device="cpu",
    )  # fmt: skip
    return bundle.save(tmp_path_factory.mktemp("bundle") / "run")


@pytest.fixture(scope="session")
def scan_site(scan_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``adapt_site`` of the bundle to a benign capture (no fine-tuning): a SiteDetector with persistence."""
    from iomt_ids.workflows import AdaptConfig, adapt_site

    root = tmp_path_factory.mktemp("site")
    calib = traffic.write_pcap(
        root / "calib.pcap", traffic.benign(4000, np.random.default_rng(3), traffic.T0)
    )
    out = root / "site"
    adapt_site(AdaptConfig(model=scan_bundle, out=out, benign=(calib,), finetune=False, progress=False))
    return out


@pytest.fixture(scope="session")
def scan_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A nested folder of captures: pcap, pcapng, pcap.gz, a shipped lab capture, and a README (not a capture).

    ``big/ward9.pcap`` has 150,000 packets: three reader batches (65,536 + 65,536 + 18,928).
    """
    root = tmp_path_factory.mktemp("scan_archive")
    write_pcap(root / "ward1" / "mon1.pcap", synthetic_packets(12_000, seed=1))
    write_pcapng_two_links(root / "ward1" / "sub" / "mon2.pcapng", synthetic_packets(9_000, seed=2))
    gz = root / "ward2" / "timeline.pcap.gz"
    gz.parent.mkdir(parents=True)
    shutil.copy(TIMELINE, gz)
    plain = write_pcap(root / "ward2" / "mon3.pcap", synthetic_packets(5_000, seed=3))
    with open(plain, "rb") as src, gzip.open(root / "ward2" / "mon3-copy.pcap.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    shutil.copy(LAB_BENIGN, root / "Benign_lab.pcap")
    write_pcap(root / "big" / "ward9.pcap", synthetic_packets(150_000, seed=9))
    (root / "README.txt").write_text("not a capture\n")
    return root
